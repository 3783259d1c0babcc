"""Tests of the two-phase-commit sink protocol, driven as the engine drives a writer.

A "checkpoint" is the serialized operator state taken right after ``snapshot_state``; a
"failure" is ``close()`` without the notification; a restore builds a new writer from the
serialized blobs of every old subtask.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import anyio
import pytest

from streamlet.operators.base import OperatorContext
from streamlet.operators.sinks.two_phase import (
    TRANSACTIONS_STATE,
    RestoredTransactionError,
    TwoPhaseCommitSink,
    TwoPhaseCommitSinkWriter,
    check_plain_name,
)
from streamlet.state.descriptors import ListStateDescriptor
from streamlet.state.errors import StateError
from streamlet.state.operator_state import OperatorStateBackend

pytestmark = pytest.mark.asyncio


class Ledger:
    """The "outside system": open, prepared and committed transactions, and a call log.

    Shared by every copy of the sink (it stands for a client connection).
    """

    def __init__(self) -> None:
        self.open: dict[str, list[Any]] = {}
        self.prepared: dict[str, list[Any]] = {}
        self.committed: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.next_id = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Ledger:
        return self

    def visible(self) -> list[Any]:
        return [record for txn in sorted(self.committed) for record in self.committed[txn]]

    def names(self, call: str) -> list[str]:
        return [txn for name, txn in self.calls if name == call]


class LedgerSink(TwoPhaseCommitSink[Any, str]):
    """Mixes sync and async hooks on purpose: both shapes must work."""

    name = "Ledger Sink"

    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger

    def begin_transaction(self) -> str:
        ledger = self.ledger
        ledger.next_id += 1
        txn = f"t{ledger.next_id:03d}"
        ledger.open[txn] = []
        ledger.calls.append(("begin", txn))
        return txn

    async def write(self, transaction: str, records: list[Any]) -> None:
        await anyio.lowlevel.checkpoint()
        self.ledger.open[transaction].extend(records)

    def pre_commit(self, transaction: str) -> None:
        self.ledger.calls.append(("pre_commit", transaction))
        self.ledger.prepared[transaction] = self.ledger.open.pop(transaction)

    async def commit(self, transaction: str) -> None:
        self.ledger.calls.append(("commit", transaction))
        if transaction in self.ledger.prepared:  # idempotent: committed before = no-op
            self.ledger.committed[transaction] = self.ledger.prepared.pop(transaction)

    def abort(self, transaction: str) -> None:
        self.ledger.calls.append(("abort", transaction))
        self.ledger.open.pop(transaction, None)
        self.ledger.prepared.pop(transaction, None)


def make_ctx(
    index: int = 0,
    parallelism: int = 1,
    blobs: list[bytes] | None = None,
    attempt: int = 0,
) -> OperatorContext:
    backend = OperatorStateBackend("sink")
    if blobs is not None:
        backend.restore(blobs, index, parallelism)
    return OperatorContext(
        operator_name="Ledger Sink",
        operator_uid="sink",
        subtask_index=index,
        parallelism=parallelism,
        max_parallelism=128,
        job_name="test",
        attempt=attempt,
        operator_state=backend,
        restored=blobs is not None,
    )


async def open_writer(sink: LedgerSink, ctx: OperatorContext) -> TwoPhaseCommitSinkWriter:
    writer = sink.create_writer()
    await writer.open(ctx)
    return writer


async def checkpoint(writer: TwoPhaseCommitSinkWriter, checkpoint_id: int) -> bytes:
    await writer.snapshot_state(checkpoint_id)
    return writer.ctx.operator_state.snapshot_sync().serialize()


def stored_entries(blob: bytes) -> list[dict[str, Any]]:
    backend = OperatorStateBackend("sink")
    backend.restore([blob], 0, 1)
    return list(backend.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE)).get())


async def test_records_become_visible_only_when_their_checkpoint_completes() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch([1, 2])
    await checkpoint(writer, 1)
    await writer.process_batch([3])
    assert ledger.visible() == []
    await writer.notify_checkpoint_complete(1)
    assert ledger.visible() == [1, 2]
    await writer.close()
    assert ledger.visible() == [1, 2]
    assert ledger.open == {} and ledger.prepared == {}


async def test_snapshot_stores_pending_and_in_progress_transactions() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch(["a"])
    await checkpoint(writer, 4)
    await writer.process_batch(["b", "c"])
    blob = await checkpoint(writer, 5)
    assert stored_entries(blob) == [
        {"status": "pending", "checkpoint_id": 4, "transaction": "t001", "records": 1},
        {"status": "pending", "checkpoint_id": 5, "transaction": "t002", "records": 2},
        {"status": "in_progress", "checkpoint_id": 5, "transaction": "t003"},
    ]
    await writer.close()


async def test_completion_commits_every_older_pending_transaction_in_order() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    for checkpoint_id in (1, 2, 3):
        await writer.process_batch([checkpoint_id])
        await checkpoint(writer, checkpoint_id)
    await writer.notify_checkpoint_complete(2)
    assert ledger.names("commit") == ["t001", "t002"]
    assert writer.statistics().transactions_pending == 1
    await writer.notify_checkpoint_complete(3)
    assert ledger.names("commit") == ["t001", "t002", "t003"]
    assert ledger.visible() == [1, 2, 3]
    await writer.close()


async def test_aborted_checkpoint_keeps_its_transaction_for_the_next_completion() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch(["x"])
    await checkpoint(writer, 1)
    await writer.notify_checkpoint_aborted(1)
    assert ledger.names("abort") == []
    assert writer.statistics().transactions_pending == 1
    await writer.process_batch(["y"])
    blob = await checkpoint(writer, 2)
    assert [e["checkpoint_id"] for e in stored_entries(blob)] == [1, 2, 2]
    await writer.notify_checkpoint_complete(2)
    assert ledger.visible() == ["x", "y"]
    await writer.close()


async def test_failure_aborts_the_current_transaction_and_keeps_pending_ones() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch(["pending"])
    await checkpoint(writer, 1)
    await writer.process_batch(["lost"])
    await writer.close()  # failed before the notification
    assert ledger.names("abort") == ["t002"]
    assert ledger.prepared == {"t001": ["pending"]}
    assert ledger.visible() == []


async def test_restore_commits_pending_and_aborts_in_progress() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch([1, 2])
    blob = await checkpoint(writer, 1)
    await writer.process_batch([3])  # after the barrier: replayed by the source
    await writer.close()  # crash before the notification of checkpoint 1

    restored = await open_writer(LedgerSink(ledger), make_ctx(blobs=[blob], attempt=1))
    assert ledger.visible() == [1, 2]
    assert ledger.names("abort") == ["t002", "t002"]  # close, then the restore: idempotent
    stats = restored.statistics()
    assert (stats.recovered_committed, stats.recovered_aborted) == (1, 1)
    assert stats.records_committed == 2
    # The replay goes into a fresh transaction.
    await restored.process_batch([3])
    await checkpoint(restored, 2)
    await restored.notify_checkpoint_complete(2)
    assert ledger.visible() == [1, 2, 3]
    await restored.close()


async def test_commit_repeats_after_a_crash_between_commit_and_next_checkpoint() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch(["once"])
    blob = await checkpoint(writer, 1)
    await writer.notify_checkpoint_complete(1)
    await writer.close()

    restored = await open_writer(LedgerSink(ledger), make_ctx(blobs=[blob], attempt=1))
    assert ledger.names("commit") == ["t001", "t001"]
    assert ledger.visible() == ["once"]
    await restored.close()


async def test_restored_state_is_not_carried_into_the_next_checkpoint() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch(["a"])
    blob = await checkpoint(writer, 1)
    await writer.close()
    restored = await open_writer(LedgerSink(ledger), make_ctx(blobs=[blob]))
    blob2 = await checkpoint(restored, 2)
    assert [e["status"] for e in stored_entries(blob2)] == ["pending", "in_progress"]
    assert [e["checkpoint_id"] for e in stored_entries(blob2)] == [2, 2]
    await restored.close()


async def test_rescaling_two_to_three_handles_every_transaction_exactly_once() -> None:
    ledger = Ledger()
    old = [await open_writer(LedgerSink(ledger), make_ctx(i, 2)) for i in range(2)]
    blobs = []
    for i, writer in enumerate(old):
        await writer.process_batch([f"{i}-1"])
        await checkpoint(writer, 1)
        await writer.notify_checkpoint_aborted(1)  # still pending at checkpoint 2
        await writer.process_batch([f"{i}-2"])
        blobs.append(await checkpoint(writer, 2))
        await writer.process_batch([f"{i}-lost"])
        await writer.close()
    pending = set(ledger.prepared)
    assert len(pending) == 4

    new = [await open_writer(LedgerSink(ledger), make_ctx(i, 3, blobs)) for i in range(3)]
    commits = Counter(ledger.names("commit"))
    assert set(commits) == pending and set(commits.values()) == {1}
    assert sorted(ledger.visible()) == ["0-1", "0-2", "1-1", "1-2"]
    assert ledger.prepared == {} and ledger.open.keys() == {w._current.handle for w in new}
    handled = [w.statistics().recovered_committed + w.statistics().recovered_aborted for w in new]
    assert sum(handled) == 6 and all(handled)  # 4 pending + 2 in progress, split evenly
    for writer in new:
        await writer.close()


async def test_commit_per_checkpoint_order_survives_restore_of_merged_subtasks() -> None:
    ledger = Ledger()
    old = [await open_writer(LedgerSink(ledger), make_ctx(i, 2)) for i in range(2)]
    blobs = []
    for writer in old:
        await writer.process_batch(["a"])
        await checkpoint(writer, 1)
        await writer.process_batch(["b"])
        blobs.append(await checkpoint(writer, 2))
        await writer.close()
    # Old subtask 0 began t001, t003 (pending at 1 and 2); old subtask 1 t002, t005.
    merged = await open_writer(LedgerSink(ledger), make_ctx(0, 1, blobs))
    # Checkpoint 1's transactions of both old subtasks before checkpoint 2's.
    assert ledger.names("commit") == ["t001", "t002", "t003", "t005"]
    await merged.close()


async def test_end_input_without_checkpoints_commits_the_current_transaction() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch([1, 2, 3])
    assert await writer.end_input() == []
    assert ledger.visible() == [1, 2, 3]
    await writer.close()
    assert ledger.names("abort") == []
    assert writer.statistics().records_committed == 3


async def test_end_input_after_the_final_checkpoint_commits_nothing_more() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch([1])
    await checkpoint(writer, 1)
    await writer.notify_checkpoint_complete(1)
    await writer.end_input()
    await writer.close()
    assert ledger.names("commit") == ["t001"]
    assert ledger.names("abort") == ["t002"]  # the empty transaction begun at checkpoint 1


async def test_commit_on_end_of_input_false_leaves_it_to_checkpoints() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger, commit_on_end_of_input=False), make_ctx())
    await writer.process_batch([1])
    await writer.end_input()
    await writer.close()
    assert ledger.visible() == [] and ledger.names("abort") == ["t001"]


async def test_commit_on_end_of_input_true_commits_an_empty_transaction() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger, commit_on_end_of_input=True), make_ctx())
    await writer.end_input()
    await writer.close()
    assert ledger.names("commit") == ["t001"] and ledger.names("abort") == []


async def test_statistics_count_records_and_transactions() -> None:
    ledger = Ledger()
    writer = await open_writer(LedgerSink(ledger), make_ctx())
    await writer.process_batch([1, 2])
    await writer.process_batch([])
    await checkpoint(writer, 1)
    await writer.process_batch([3])
    await writer.notify_checkpoint_complete(1)
    await writer.close()
    stats = writer.statistics()
    assert stats.records_written == 3
    assert stats.records_committed == 2
    assert (stats.transactions_begun, stats.transactions_committed) == (2, 1)
    assert (stats.transactions_aborted, stats.transactions_pending) == (1, 0)


async def test_each_writer_drives_its_own_copy_of_the_sink() -> None:
    ledger = Ledger()
    sink = LedgerSink(ledger)
    a, b = sink.create_writer(), sink.create_writer()
    assert a.sink is not sink and a.sink is not b.sink
    assert a.sink.ledger is ledger  # type: ignore[attr-defined]  # shared on purpose (__deepcopy__)


async def test_malformed_restored_entry_is_reported() -> None:
    backend = OperatorStateBackend("sink")
    backend.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE)).add({"status": "odd"})
    blob = backend.snapshot_sync().serialize()
    writer = LedgerSink(Ledger()).create_writer()
    with pytest.raises(StateError, match=r"malformed two-phase-commit entry"):
        await writer.open(make_ctx(blobs=[blob]))
    await writer.close()


def _blob(entries: list[Any]) -> bytes:
    backend = OperatorStateBackend("sink")
    state = backend.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE))
    for entry in entries:
        state.add(entry)
    return backend.snapshot_sync().serialize()


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (
            {"status": "pending", "checkpoint_id": "1", "transaction": "t1", "records": 1},
            "checkpoint_id",
        ),
        ({"status": "pending", "checkpoint_id": 1, "transaction": "t1", "records": -1}, "records"),
        (
            {"status": "pending", "checkpoint_id": 1, "transaction": "t1", "records": True},
            "records",
        ),
        (["pending", 1, "t1"], "must be a dict"),
    ],
)
async def test_malformed_entry_shapes_are_refused_before_anything_runs(
    entry: Any, why: str
) -> None:
    ledger = Ledger()
    good = {"status": "pending", "checkpoint_id": 1, "transaction": "t000", "records": 1}
    writer = LedgerSink(ledger).create_writer()
    with pytest.raises(RestoredTransactionError, match=why):
        await writer.open(make_ctx(blobs=[_blob([good, entry])]))
    await writer.close()
    assert ledger.names("commit") == [] and ledger.names("abort") == []


class ValidatingLedgerSink(LedgerSink):
    """Accepts only handles it could have begun (``t`` and three digits)."""

    def validate_restored_transaction(self, transaction: Any) -> None:
        check_plain_name(transaction, "the transaction", re.compile(r"t[0-9]{3}"))


async def test_validation_hook_refuses_a_restore_before_any_commit_or_abort() -> None:
    ledger = Ledger()
    entries = [
        {"status": "pending", "checkpoint_id": 1, "transaction": "t001", "records": 1},
        {"status": "pending", "checkpoint_id": 2, "transaction": "../t002", "records": 1},
        {"status": "in_progress", "checkpoint_id": 2, "transaction": "t003"},
    ]
    writer = ValidatingLedgerSink(ledger).create_writer()
    with pytest.raises(RestoredTransactionError) as info:
        await writer.open(make_ctx(blobs=[_blob(entries)]))
    await writer.close()
    # The valid entry before the forged one was not committed, the one after not aborted.
    assert ledger.names("commit") == [] and ledger.names("abort") == []
    assert str(info.value) == (
        "operator 'sink': refusing restored pending transaction '../t002' of checkpoint 2: "
        "the transaction '../t002' holds a path separator or NUL; nothing was committed or "
        "aborted (was the checkpoint written by this job?)"
    )
    # Valid entries alone restore as usual.
    writer = ValidatingLedgerSink(ledger).create_writer()
    await writer.open(make_ctx(blobs=[_blob([entries[0], entries[2]])]))
    await writer.close()
    assert ledger.names("commit") == ["t001"] and ledger.names("abort")[0] == "t003"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (7, TypeError),
        ("", ValueError),
        (".", ValueError),
        ("..", ValueError),
        ("/etc/passwd", ValueError),
        ("a/../b", ValueError),
        ("nul\0byte", ValueError),
        ("other-name", ValueError),
    ],
)
def test_check_plain_name_refuses_anything_but_a_plain_name_of_the_pattern(
    value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_plain_name(value, "the name", re.compile(r"[a-z.]+|\.\.|/etc/passwd|a/\.\./b"))
    assert check_plain_name("part-1", "the name", re.compile(r"part-[0-9]")) == "part-1"
    assert check_plain_name(".hidden..x", "the name") == ".hidden..x"


def test_uncopyable_sink_is_refused_when_a_writer_is_created() -> None:
    class Uncopyable:
        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            raise RuntimeError("a live socket")

    sink = LedgerSink(Ledger())
    sink.client = Uncopyable()  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"cannot be copied to every subtask"):
        sink.create_writer()


def test_commit_on_end_of_input_must_be_a_bool_or_none() -> None:
    with pytest.raises(TypeError, match=r"^commit_on_end_of_input must be None or a bool, got 1$"):
        LedgerSink(Ledger(), commit_on_end_of_input=1)
