"""Tests of the exactly-once file sink: part files, hidden files, commits and restores.

Writers are driven as the engine drives them (see test_two_phase_sink.py); the last tests
run real jobs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies
from streamlet.operators.base import OperatorContext
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.operators.sinks.two_phase import (
    TRANSACTIONS_STATE,
    RestoredTransactionError,
    TwoPhaseCommitSinkWriter,
)
from streamlet.state.descriptors import ListStateDescriptor
from streamlet.state.operator_state import OperatorStateBackend
from streamlet.testing.faults import FaultInjector, inject_faults

pytestmark = pytest.mark.asyncio


def make_ctx(
    index: int = 0, parallelism: int = 1, blobs: list[bytes] | None = None, attempt: int = 0
) -> OperatorContext:
    backend = OperatorStateBackend("files")
    if blobs is not None:
        backend.restore(blobs, index, parallelism)
    return OperatorContext(
        operator_name="File Sink",
        operator_uid="files",
        subtask_index=index,
        parallelism=parallelism,
        max_parallelism=128,
        job_name="test",
        attempt=attempt,
        operator_state=backend,
        restored=blobs is not None,
    )


async def open_writer(sink: FileSink, ctx: OperatorContext) -> TwoPhaseCommitSinkWriter:
    writer = sink.create_writer()
    await writer.open(ctx)
    return writer


async def checkpoint(writer: TwoPhaseCommitSinkWriter, checkpoint_id: int) -> bytes:
    await writer.snapshot_state(checkpoint_id)
    return writer.ctx.operator_state.snapshot_sync().serialize()


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


async def test_records_stay_in_hidden_files_until_the_checkpoint_completes(
    tmp_path: Path,
) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    await writer.process_batch(["a", "b"])
    [name] = hidden(tmp_path)
    assert name.startswith(".part-0-") and name.endswith(".txt.inprogress")
    await checkpoint(writer, 1)
    assert visible(tmp_path) == [] and read_committed(tmp_path) == []
    await writer.notify_checkpoint_complete(1)
    [part] = visible(tmp_path)
    assert part == name[1 : -len(".inprogress")]
    assert (tmp_path / part).read_text() == "a\nb\n"
    assert hidden(tmp_path) == []
    await writer.close()


async def test_each_checkpoint_rolls_a_new_part_file(tmp_path: Path) -> None:
    writer = await open_writer(FileSink(tmp_path, prefix="out", suffix=".csv"), make_ctx())
    for checkpoint_id in (1, 2, 3):
        await writer.process_batch([checkpoint_id, checkpoint_id * 10])
        await checkpoint(writer, checkpoint_id)
    await writer.notify_checkpoint_complete(3)
    parts = visible(tmp_path)
    assert len(parts) == 3
    assert all(p.startswith("out-0-") and p.endswith(".csv") for p in parts)
    assert read_committed(tmp_path) == ["1", "10", "2", "20", "3", "30"]
    await writer.close()


async def test_empty_transactions_leave_no_file(tmp_path: Path) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    for checkpoint_id in (1, 2):
        await checkpoint(writer, checkpoint_id)
    await writer.notify_checkpoint_complete(2)
    await writer.end_input()
    await writer.close()
    assert list(tmp_path.iterdir()) == []


async def test_restore_shows_exactly_the_records_of_completed_checkpoints(
    tmp_path: Path,
) -> None:
    sink = FileSink(tmp_path, encoder=lambda r: f"r{r}")
    writer = await open_writer(sink, make_ctx())
    await writer.process_batch([1, 2])
    await checkpoint(writer, 1)
    await writer.process_batch([3])
    blob = await checkpoint(writer, 2)
    await writer.notify_checkpoint_complete(1)
    await writer.process_batch([4, 5])  # after checkpoint 2: the source replays these
    await writer.close()  # failure: checkpoint 2 completed, its notification never came
    assert read_committed(tmp_path) == ["r1", "r2"]

    restored = await open_writer(sink, make_ctx(blobs=[blob], attempt=1))
    assert read_committed(tmp_path) == ["r1", "r2", "r3"]
    assert hidden(tmp_path) == []
    await restored.process_batch([4, 5])  # the replay
    await checkpoint(restored, 3)
    await restored.notify_checkpoint_complete(3)
    await restored.close()
    assert sorted(read_committed(tmp_path)) == ["r1", "r2", "r3", "r4", "r5"]
    assert hidden(tmp_path) == []


async def test_crash_between_commit_and_next_checkpoint_commits_nothing_twice(
    tmp_path: Path,
) -> None:
    sink = FileSink(tmp_path)
    writer = await open_writer(sink, make_ctx())
    await writer.process_batch(["x"])
    blob = await checkpoint(writer, 1)
    await writer.notify_checkpoint_complete(1)
    await writer.close()
    before = visible(tmp_path)

    restored = await open_writer(sink, make_ctx(blobs=[blob], attempt=1))
    assert restored.statistics().recovered_committed == 1
    assert visible(tmp_path) == before and read_committed(tmp_path) == ["x"]
    await restored.close()


async def test_commit_is_idempotent(tmp_path: Path) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    sink = cast(FileSink, writer.sink)  # its methods are coroutines
    txn = sink.begin_transaction()
    await sink.write(txn, ["once"])
    await sink.pre_commit(txn)
    await sink.commit(txn)
    await sink.commit(txn)
    assert read_committed(tmp_path) == ["once"]
    await sink.abort(txn)  # aborting a committed transaction leaves it alone
    assert read_committed(tmp_path) == ["once"]
    await writer.close()


async def test_commit_with_both_files_missing_raises_but_a_restore_tolerates_it(
    tmp_path: Path,
) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    sink = cast(FileSink, writer.sink)  # its methods are coroutines
    txn = sink.begin_transaction()
    await sink.write(txn, ["gone"])
    await sink.pre_commit(txn)
    (tmp_path / txn["hidden"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"are both missing"):
        await sink.commit(txn)
    await sink.recover_and_commit(txn)  # logged: the part file may have been consumed
    await writer.close()


async def test_commit_never_overwrites_a_file(tmp_path: Path) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    sink = cast(FileSink, writer.sink)  # its methods are coroutines
    txn = sink.begin_transaction()
    await sink.write(txn, ["new"])
    await sink.pre_commit(txn)
    (tmp_path / txn["name"]).write_text("old\n")
    with pytest.raises(FileExistsError, match=r"refusing to overwrite"):
        await sink.commit(txn)
    assert read_committed(tmp_path) == ["old"]
    await writer.close()


async def test_failure_deletes_the_in_progress_file_and_keeps_pending_ones(
    tmp_path: Path,
) -> None:
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    await writer.process_batch(["pending"])
    await checkpoint(writer, 1)
    await writer.process_batch(["lost"])
    assert len(hidden(tmp_path)) == 2
    await writer.close()
    [left] = hidden(tmp_path)
    assert (tmp_path / left).read_text() == "pending\n"
    assert visible(tmp_path) == []


async def test_restore_removes_hidden_files_written_after_the_restored_checkpoint(
    tmp_path: Path,
) -> None:
    sink = FileSink(tmp_path)
    writer = await open_writer(sink, make_ctx())
    await writer.process_batch(["a"])
    blob = await checkpoint(writer, 1)
    await writer.process_batch(["b"])
    await checkpoint(writer, 2)  # never completes
    await writer.process_batch(["c"])
    await writer.sink.pre_commit(writer._current.handle)  # type: ignore[misc]
    writer._current = None  # a hard crash: close() never ran
    other = tmp_path / ".part-0-ffffffff-000009.txt.inprogress"  # another writer's file
    other.write_text("busy\n")
    assert len(hidden(tmp_path)) == 4

    restored = await open_writer(sink, make_ctx(blobs=[blob], attempt=1))
    assert read_committed(tmp_path) == ["a"]
    assert hidden(tmp_path) == [other.name]
    await restored.close()


def _entries(writer: TwoPhaseCommitSinkWriter) -> list[Any]:
    state = writer.ctx.operator_state.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE))
    return list(state.get())


def _blob(entries: list[Any]) -> bytes:
    backend = OperatorStateBackend("files")
    state = backend.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE))
    for entry in entries:
        state.add(entry)
    return backend.snapshot_sync().serialize()


def _forgeries(outside: Path, txn: dict[str, Any]) -> list[tuple[str, Any]]:
    """Transactions a crafted checkpoint could hold, each with what gives it away."""
    victim = str(outside / "victim.txt")
    return [
        ("absolute hidden name", {**txn, "hidden": victim}),
        ("absolute visible name", {**txn, "name": str(outside / "stolen.txt")}),
        ("parent directory", {**txn, "hidden": f"../outside/{Path(victim).name}"}),
        ("dot-dot", {**txn, "hidden": ".."}),
        ("separator in the stem", {**txn, "stem": "../outside/x-"}),
        ("another prefix", {**txn, "stem": txn["stem"].replace("part", "evil", 1)}),
        ("another suffix", {**txn, "suffix": ".py"}),
        ("name not from the stem", {**txn, "name": "sitecustomize.py"}),
        ("hidden name not from the name", {**txn, "hidden": ".other.inprogress"}),
        ("negative counter", {**txn, "counter": -1}),
        ("huge counter", {**txn, "counter": 10**400}),
        ("records not an int", {**txn, "records": "1"}),
        ("a missing key", {k: v for k, v in txn.items() if k != "stem"}),
        ("an extra key", {**txn, "path": victim}),
        ("not a dict", [txn["name"], txn["hidden"]]),
    ]


@pytest.mark.parametrize("status", ["pending", "in_progress"])
async def test_forged_restored_transactions_touch_nothing(tmp_path: Path, status: str) -> None:
    # A checkpoint directory is untrusted: its transactions name files the sink renames and
    # deletes, so each must be one this sink could have begun, inside its directory.
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep\n")
    sink = FileSink(out)
    writer = await open_writer(sink, make_ctx())
    await writer.process_batch(["good"])
    await checkpoint(writer, 1)
    [good, current] = _entries(writer)
    await writer.close()
    for why, forged in _forgeries(outside, good["transaction"]):
        entry = {**(good if status == "pending" else current), "transaction": forged}
        before = sorted(p.name for p in out.iterdir())
        writer = sink.create_writer()
        with pytest.raises(RestoredTransactionError, match=r"nothing was committed") as info:
            await writer.open(make_ctx(blobs=[_blob([good, entry])], attempt=1))
        await writer.close()
        assert f"refusing restored {status} transaction" in str(info.value) or (
            "malformed" in str(info.value)
        ), why
        # Not even the valid pending entry before it was committed.
        assert sorted(p.name for p in out.iterdir()) == before, why
        assert [p.name for p in outside.iterdir()] == ["victim.txt"], why
    # The genuine entries still restore.
    restored = await open_writer(sink, make_ctx(blobs=[_blob([good, current])], attempt=1))
    await restored.close()
    assert read_committed(out) == ["good"]


async def test_restore_does_not_publish_a_planted_symlink(tmp_path: Path) -> None:
    out = tmp_path / "out"
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    sink = FileSink(out)
    writer = await open_writer(sink, make_ctx())
    await writer.process_batch(["good"])
    blob = await checkpoint(writer, 1)
    [good, _] = _entries(writer)
    await writer.close()
    hidden_file = out / good["transaction"]["hidden"]
    hidden_file.unlink()
    hidden_file.symlink_to(secret)  # a plain name of the sink's pattern, pointing outside
    with pytest.raises(ValueError, match=r"is a symlink"):
        await open_writer(sink, make_ctx(blobs=[blob], attempt=1))
    assert read_committed(out) == []
    assert secret.read_text() == "secret\n"


async def test_rescaling_two_to_three_commits_every_pending_file_once(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    blobs = []
    for index in range(2):
        writer = await open_writer(sink, make_ctx(index, 2))
        await writer.process_batch([f"{index}-1"])
        await checkpoint(writer, 1)
        await writer.process_batch([f"{index}-2"])
        blobs.append(await checkpoint(writer, 2))
        await writer.process_batch([f"{index}-lost"])
        await writer.close()
    assert visible(tmp_path) == []

    new = [await open_writer(sink, make_ctx(i, 3, blobs, attempt=1)) for i in range(3)]
    stats = [w.statistics() for w in new]
    assert sum(s.recovered_committed for s in stats) == 4
    assert sum(s.recovered_aborted for s in stats) == 2
    assert sorted(read_committed(tmp_path)) == ["0-1", "0-2", "1-1", "1-2"]
    assert len(visible(tmp_path)) == 4 and hidden(tmp_path) == []
    for writer in new:
        await writer.close()


async def test_end_input_without_checkpoints_commits_everything(tmp_path: Path) -> None:
    writers = [await open_writer(FileSink(tmp_path), make_ctx(i, 2)) for i in range(2)]
    await writers[0].process_batch(list(range(5)))
    await writers[1].process_batch(list(range(5, 8)))
    for writer in writers:
        await writer.end_input()
        await writer.close()
    assert sorted(map(int, read_committed(tmp_path))) == list(range(8))
    assert hidden(tmp_path) == []


async def test_large_batches_are_written_whole(tmp_path: Path) -> None:
    records = [f"{i:08d}" * 4 for i in range(5000)]  # ~165 kB: the worker-thread path
    writer = await open_writer(FileSink(tmp_path), make_ctx())
    await writer.process_batch(records)
    await writer.process_batch(["tail"])
    await writer.end_input()
    await writer.close()
    assert read_committed(tmp_path) == [*records, "tail"]


async def test_encoder_must_return_str(tmp_path: Path) -> None:
    writer = await open_writer(FileSink(tmp_path, encoder=lambda r: r), make_ctx())
    with pytest.raises(TypeError, match=r"^FileSink encoder must return a str, got int"):
        await writer.process_batch(["ok", 7])
    await writer.close()
    assert list(tmp_path.iterdir()) == []


async def test_names_differ_across_attempts(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    for attempt in range(3):
        writer = await open_writer(sink, make_ctx(attempt=attempt))
        await writer.process_batch([attempt])
        await writer.end_input()
        await writer.close()
    assert len(visible(tmp_path)) == 3
    assert sorted(read_committed(tmp_path)) == ["0", "1", "2"]


def test_directory_is_created_when_missing(tmp_path: Path) -> None:
    FileSink(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match=r"^FileSink directory '.*file' exists and is not a dir"):
        FileSink(path)


@pytest.mark.parametrize("prefix", ["", ".hidden", "a/b"])
def test_bad_prefix_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match=r"^prefix must be a non-empty file name part"):
        FileSink(tmp_path, prefix=prefix)


def test_read_committed_skips_dot_files_and_sorts_by_name(tmp_path: Path) -> None:
    (tmp_path / "b-1.txt").write_text("b1\nb2\n")
    (tmp_path / "a-1.txt").write_text("a1\n")
    (tmp_path / ".a-0.txt.inprogress").write_text("hidden\n")
    os.mkdir(tmp_path / "sub")
    assert read_committed(tmp_path) == ["a1", "b1", "b2"]
    assert read_committed(tmp_path, prefix="b") == ["b1", "b2"]


# --- end to end ---

N = 2000


def _env(tmp_path: Path, parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    return env


def _exactly_once(out: Path, n: int) -> None:
    counts: Counter[Any] = Counter(map(int, read_committed(out)))
    assert counts == Counter(range(n))
    assert hidden(out) == []


@pytest.mark.parametrize("checkpointing", [True, False])
async def test_bounded_job_writes_every_record_once(tmp_path: Path, checkpointing: bool) -> None:
    env = _env(tmp_path, 2)
    if checkpointing:
        env.enable_checkpointing(20)
    out = tmp_path / "out"
    env.from_collection(list(range(N))).map(lambda x: x).sink_to(FileSink(out))
    await env.execute("file sink")
    _exactly_once(out, N)


async def test_job_restarting_after_sink_failures_writes_every_record_once(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, 2)
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(5, 0))
    injector = inject_faults(
        env, FaultInjector().fail_record("File Sink", 700).fail_record("File Sink", 300, 1)
    )
    out = tmp_path / "out"
    env.from_collection(list(range(N))).map(lambda x: x).sink_to(FileSink(out))
    result = await env.execute("file sink with failures")
    assert len(injector.fired) == 2 and result.restart_count >= 1
    counts: Counter[Any] = Counter(map(int, read_committed(out)))
    assert counts == Counter(range(N))
