"""End-to-end checkpoint tests: consistent cuts, failures, timeouts, notifications.

Every job here runs real subtasks, channels and the real coordinator; only the storage is
sometimes wrapped to inject failures or stalls at its boundary. Sources are *paced*: a
:class:`PacedSource` has fast splits (whole batches, no waiting) and slow ones (one record per
batch, after yielding to the event loop several times), so barriers meet channels with very
different backlogs. A paced source runs until the test sets its ``stop`` event, which tests
do from a checkpoint notification, so "run long enough for several checkpoints" is decided by
events, not by sleeping.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamlet import (
    JobClient,
    JobExecutionError,
    JobStatus,
    KeyedProcessFunction,
    MapFunction,
    Source,
    SourceReader,
    StreamExecutionEnvironment,
)
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.checkpoints.errors import (
    CheckpointFailureReason,
    CheckpointStorageError,
    TooManyFailedCheckpointsError,
)
from streamlet.checkpoints.metadata import CheckpointMetadata, StateHandle
from streamlet.checkpoints.state_file import EncodedStateFile
from streamlet.checkpoints.stats import CheckpointStats, CheckpointStatus
from streamlet.checkpoints.storage import FileCheckpointStorage, MemoryCheckpointStorage
from streamlet.job.restart import RestartStrategies
from streamlet.state import ValueStateDescriptor
from streamlet.state.descriptors import ListStateDescriptor
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import KeyGroupRange
from streamlet.state.operator_state import OperatorStateBackend

pytestmark = pytest.mark.asyncio

#: Keys per split: record ``(split, i)`` has key ``"<split>-<i % KEYS_PER_SPLIT>"``.
KEYS_PER_SPLIT = 5
#: Yields before each one-record batch of a slow split (0 = fast split).
FAST, SLOW, SLOWER = 0, 3, 8
COUNT = ValueStateDescriptor("count", default_value=0)
#: Every test job must end well within this (a hang fails, it does not block the suite).
JOB_DEADLINE_S = 60


# --- a paced, stoppable source ---


class _PacedReader(SourceReader[tuple[int, int]]):
    def __init__(self, split: int, pace: int, position: int, stop: anyio.Event) -> None:
        self._split = split
        self._pace = pace
        self._next = position
        self._stop = stop

    async def read_batch(self, max_records: int) -> list[tuple[int, int]] | None:
        if self._stop.is_set():
            return None
        if self._pace:
            for _ in range(self._pace):
                await anyio.lowlevel.checkpoint()
            size = 1
        else:
            await anyio.lowlevel.checkpoint()
            size = max_records
        start = self._next
        self._next += size
        return [(self._split, i) for i in range(start, start + size)]

    def position(self) -> int:
        return self._next


class PacedSource(Source[tuple[int, int]]):
    """Splits ``0..len(paces)-1`` emitting ``(split, i)`` for ``i = 0, 1, ...`` until ``stop``.

    Position: the next ``i`` (so a split at position ``p`` has emitted ``p`` records).
    """

    name = "Paced Source"

    def __init__(self, paces: list[int], stop: anyio.Event) -> None:
        self.paces = paces
        self.stop = stop

    def create_splits(self, parallelism: int) -> list[Any]:
        return [[split, pace] for split, pace in enumerate(self.paces)]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[tuple[int, int]]:
        index, pace = split
        return _PacedReader(index, pace, 0 if position is None else int(position), self.stop)


def key_of(record: tuple[int, int]) -> str:
    return f"{record[0]}-{record[1] % KEYS_PER_SPLIT}"


def expected_counts(positions: dict[int, int]) -> dict[str, int]:
    """Per-key counts of everything splits at ``positions`` emitted (empty keys left out)."""
    counts = {}
    for split, position in positions.items():
        for residue in range(KEYS_PER_SPLIT):
            n = position // KEYS_PER_SPLIT + (residue < position % KEYS_PER_SPLIT)
            if n:
                counts[f"{split}-{residue}"] = n
    return counts


# --- user functions that report to the test ---


class Shared:
    """Deep copies (the engine copies a function object per subtask) return the original,
    so every subtask's copy of a function reports into the same test-owned object."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self


class CheckpointLog(Shared):
    """What user functions saw: notifications per (operator, subtask), records processed."""

    def __init__(self, *, stop_after_completed: int | None = None) -> None:
        self.completed: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.aborted: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.records = 0
        self.stop_after_completed = stop_after_completed
        self.stop = anyio.Event()
        self._record_waiters: list[tuple[int, anyio.Event]] = []
        self._completed_waiters: list[tuple[int, anyio.Event]] = []
        self._aborted_waiters: list[tuple[int, anyio.Event]] = []

    # Reports.

    def on_record(self) -> None:
        self.records += 1
        if self._record_waiters and self._record_waiters[0][0] <= self.records:
            self._record_waiters.pop(0)[1].set()

    def on_complete(self, who: tuple[str, int], checkpoint_id: int) -> None:
        self.completed[who].append(checkpoint_id)
        ids = self.completed_ids()
        self._release(self._completed_waiters, ids)
        if self.stop_after_completed is not None and len(ids) >= self.stop_after_completed:
            self.stop.set()

    def on_abort(self, who: tuple[str, int], checkpoint_id: int) -> None:
        self.aborted[who].append(checkpoint_id)
        self._release(self._aborted_waiters, self.aborted_ids())

    @staticmethod
    def _release(waiters: list[tuple[int, anyio.Event]], ids: set[int]) -> None:
        for entry in list(waiters):
            if len(ids) >= entry[0]:
                waiters.remove(entry)
                entry[1].set()

    # Queries.

    def completed_ids(self) -> set[int]:
        return {i for ids in self.completed.values() for i in ids}

    def aborted_ids(self) -> set[int]:
        return {i for ids in self.aborted.values() for i in ids}

    async def wait_records(self, at_least: int) -> None:
        if self.records >= at_least:
            return
        event = anyio.Event()
        self._record_waiters.append((at_least, event))
        self._record_waiters.sort(key=lambda entry: entry[0])
        await event.wait()

    async def wait_completed(self, count: int) -> None:
        await self._wait(self._completed_waiters, self.completed_ids(), count)

    async def wait_aborted(self, count: int) -> None:
        await self._wait(self._aborted_waiters, self.aborted_ids(), count)

    @staticmethod
    async def _wait(waiters: list[tuple[int, anyio.Event]], ids: set[int], count: int) -> None:
        if len(ids) >= count:
            return
        event = anyio.Event()
        waiters.append((count, event))
        await event.wait()


class ListeningMap(MapFunction):
    """A pass-through map implementing Flink's CheckpointListener, reporting to ``log``."""

    def __init__(self, name: str, log: CheckpointLog) -> None:
        self.name = name
        self.log = log
        self.subtask = -1

    def open(self, runtime_context: Any) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def map(self, value: Any) -> Any:
        self.log.on_record()
        return value

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.log.on_complete((self.name, self.subtask), checkpoint_id)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        self.log.on_abort((self.name, self.subtask), checkpoint_id)


class CountPerKey(KeyedProcessFunction):
    """Counts records per key in ValueState ``count``; emits nothing."""

    def __init__(self, log: CheckpointLog | None = None) -> None:
        self.log = log
        self.subtask = -1

    def open(self, runtime_context: Any) -> None:
        self.count = runtime_context.get_state(COUNT)
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: Any, ctx: Any) -> None:
        self.count.update(self.count.value() + 1)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if self.log is not None:
            self.log.on_complete(("counter", self.subtask), checkpoint_id)


# --- storages with injected behaviour ---


class HookedStorage(MemoryCheckpointStorage):
    """In-memory storage that records which checkpoints are in flight and their discards."""

    def __init__(self, job_name: str, write_hook: Any = None) -> None:
        super().__init__(job_name, write_hook=write_hook)
        self.in_flight: set[int] = set()
        self.max_in_flight = 0
        self.discarded: set[int] = set()
        self._in_flight_waiters: list[tuple[int, anyio.Event]] = []
        self._discard_waiters: dict[int, anyio.Event] = {}

    def begin_checkpoint(self, checkpoint_id: int, *args: Any, **kwargs: Any) -> str:
        self.in_flight.add(checkpoint_id)
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        for entry in list(self._in_flight_waiters):
            if len(self.in_flight) >= entry[0]:
                self._in_flight_waiters.remove(entry)
                entry[1].set()
        return super().begin_checkpoint(checkpoint_id, *args, **kwargs)

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        try:
            return await super().write_metadata(checkpoint_id, metadata)
        finally:
            self.in_flight.discard(checkpoint_id)

    async def discard(self, checkpoint_id: int) -> None:
        await super().discard(checkpoint_id)
        self.in_flight.discard(checkpoint_id)
        self.discarded.add(checkpoint_id)
        event = self._discard_waiters.pop(checkpoint_id, None)
        if event is not None:
            event.set()

    async def wait_in_flight(self, count: int) -> None:
        if len(self.in_flight) >= count:
            return
        event = anyio.Event()
        self._in_flight_waiters.append((count, event))
        await event.wait()

    async def wait_discarded(self, checkpoint_id: int) -> None:
        if checkpoint_id in self.discarded:
            return
        event = self._discard_waiters.setdefault(checkpoint_id, anyio.Event())
        await event.wait()

    def has_files(self, checkpoint_id: int) -> bool:
        try:
            return bool(self.directory(self.location_of(checkpoint_id)))
        except KeyError:
            return False


# --- building and reading jobs ---


def counting_job(
    env: StreamExecutionEnvironment,
    paces: list[int],
    log: CheckpointLog,
    *,
    shuffle: bool = True,
) -> None:
    """``paced source -> [shuffle ->] listening map -> key_by -> count per key``."""
    stream = env.from_source(PacedSource(paces, log.stop)).uid("src")
    if shuffle:
        stream = stream.shuffle(seed=7)
    (
        stream.map(ListeningMap("map", log))
        .uid("map")
        .key_by(key_of)
        .process(CountPerKey(log))
        .uid("counter")
    )


def configure(
    env: StreamExecutionEnvironment,
    storage: Any,
    *,
    interval_ms: int = 10,
    mode: CheckpointingMode = CheckpointingMode.EXACTLY_ONCE,
    tolerable: int = 0,
    timeout_ms: int | None = None,
    retained: int = 1,
) -> None:
    env.enable_checkpointing(interval_ms, mode)
    env.set_restart_strategy(RestartStrategies.no_restart())
    config = env.get_checkpoint_config()
    if isinstance(storage, Path):
        config.set_checkpoint_storage_dir(storage)
    else:
        config.set_checkpoint_storage(storage)
    config.set_tolerable_checkpoint_failure_number(tolerable)
    config.set_max_retained_checkpoints(retained)
    if timeout_ms is not None:
        config.set_checkpoint_timeout(timeout_ms)


async def run_to_end(env: StreamExecutionEnvironment, job_name: str) -> JobClient:
    client = await env.execute_async(job_name)
    with anyio.fail_after(JOB_DEADLINE_S):
        await client.wait()
    return client


def stats_by_status(client: JobClient, status: CheckpointStatus) -> list[CheckpointStats]:
    return sorted(
        (s for s in client.checkpoint_stats() if s.status is status),
        key=lambda s: s.checkpoint_id,
    )


async def read_cut(
    storage: Any, checkpoint_id: int, *, counter_uid: str = "counter", source_uid: str = "src"
) -> tuple[dict[str, int], dict[int, int]]:
    """Return (count per key, position per split) stored in one completed checkpoint."""
    checkpoint = await storage.load_checkpoint(checkpoint_id)
    max_parallelism = checkpoint.metadata.max_parallelism
    assert max_parallelism is not None
    counts: dict[str, int] = {}
    positions: dict[int, int] = {}
    for handle in checkpoint.metadata.states:
        contents = await storage.read_state_file(checkpoint.location, handle)
        if handle.operator_uid == counter_uid:
            backend = HeapKeyedStateBackend(
                counter_uid, KeyGroupRange(0, max_parallelism - 1), max_parallelism
            )
            backend.restore(contents.keyed)
            state = backend.get_state(COUNT)
            for key in backend.keys(COUNT.name):
                assert key not in counts, f"key {key!r} in two subtasks of {counter_uid!r}"
                backend.set_current_key(key)
                counts[key] = state.value()
        elif handle.operator_uid == source_uid:
            assert contents.operator is not None
            operator_state = OperatorStateBackend(source_uid)
            operator_state.restore([contents.operator], 0, 1)
            splits = operator_state.get_list_state(ListStateDescriptor("source-splits"))
            for (split, _pace), position in splits.get():
                assert split not in positions, f"split {split} in two source subtasks"
                positions[split] = 0 if position is None else position
    return counts, positions


# --- 1, 2: the cut a checkpoint stores ---


async def test_exactly_once_every_checkpoint_counts_exactly_what_sources_emitted_before_it() -> (
    None
):
    # In memory (the same file formats): the cut does not depend on where it is stored, and
    # fsync latency on a busy disk would only stretch the run. The cuts of checkpoints on
    # disk are checked by test_checkpoints_left_on_disk_validate_and_ids_increase_across_runs.
    paces = [FAST, SLOW, SLOWER, SLOW]  # subtask 0 reads splits 0, 2; subtask 1 reads 1, 3
    log = CheckpointLog(stop_after_completed=8)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.set_batch_size(32)
    counting_job(env, paces, log)
    storage = MemoryCheckpointStorage("exactly-once cut")
    configure(env, storage, retained=100)

    client = await run_to_end(env, "exactly-once cut")

    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert await storage.list_completed() == completed
    assert len(completed) >= 8
    totals = []
    for checkpoint_id in completed:
        counts, positions = await read_cut(storage, checkpoint_id)
        assert sorted(positions) == list(range(len(paces)))
        assert counts == expected_counts(positions), f"checkpoint {checkpoint_id}"
        totals.append(sum(positions.values()))
    # The splits really ran at different speeds, and moved between checkpoints.
    assert positions[0] > 10 * max(positions[1], positions[2], positions[3]) > 0
    assert totals == sorted(totals) and totals[0] < totals[-1]
    assert log.records == totals[-1]  # the final checkpoint holds everything processed


async def test_at_least_once_checkpoints_count_at_least_what_sources_emitted_before_them() -> None:
    # Multi-input subtasks: the tracker blocks nothing, so records behind a barrier on a
    # fast channel may be counted before the last barrier arrives. Never fewer.
    paces = [FAST, SLOW, SLOWER, SLOW]
    log = CheckpointLog(stop_after_completed=8)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.set_batch_size(32)
    counting_job(env, paces, log)
    storage = MemoryCheckpointStorage("at-least-once cut")
    configure(env, storage, mode=CheckpointingMode.AT_LEAST_ONCE, retained=100)

    client = await run_to_end(env, "at-least-once cut")

    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert len(completed) >= 8
    for checkpoint_id in completed:
        counts, positions = await read_cut(storage, checkpoint_id)
        expected = expected_counts(positions)
        assert set(counts) >= set(expected)
        for key, n in expected.items():
            assert counts[key] >= n, f"checkpoint {checkpoint_id} key {key!r}"


async def test_at_least_once_is_exact_without_multi_input_subtasks() -> None:
    # Parallelism 1: the counter's subtask has one input channel, so the last barrier is the
    # only barrier, and tracking takes the same cut as alignment.
    paces = [FAST, SLOW]
    log = CheckpointLog(stop_after_completed=6)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.set_batch_size(32)
    counting_job(env, paces, log, shuffle=False)
    storage = MemoryCheckpointStorage("at-least-once single input")
    configure(env, storage, mode=CheckpointingMode.AT_LEAST_ONCE, retained=100)

    client = await run_to_end(env, "at-least-once single input")

    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert len(completed) >= 6
    for checkpoint_id in completed:
        counts, positions = await read_cut(storage, checkpoint_id)
        assert counts == expected_counts(positions), f"checkpoint {checkpoint_id}"


# --- 3: a declined checkpoint fails alone ---


async def test_checkpoint_declined_by_a_failed_write_fails_alone_and_later_ones_complete() -> None:
    async def fail_one_write(operation: str, checkpoint_id: int, name: str) -> None:
        if (operation, checkpoint_id, name) == ("state", 2, "op-counter-1.state"):
            raise OSError(errno.EIO, "Input/output error")

    storage = HookedStorage("declined", fail_one_write)
    log = CheckpointLog(stop_after_completed=4)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, tolerable=1)

    client = await run_to_end(env, "declined")

    [failed] = stats_by_status(client, CheckpointStatus.FAILED)
    assert failed.checkpoint_id == 2
    assert failed.failure_reason is CheckpointFailureReason.STORAGE_FAILURE
    assert failed.failure_message == (
        "checkpoint 2 failed: An Exception occurred while accessing the checkpoint storage. "
        "declined by counter subtask 1: operator 'counter' subtask 1: "
        "memory://declined/chk-2/op-counter-1.state: Input/output error (EIO)"
    )
    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert completed[0] == 1 and len([i for i in completed if i > 2]) >= 3
    # The abort reached every subtask's listener; the files it had were removed.
    assert log.aborted == {("map", 0): [2], ("map", 1): [2]}
    assert 2 in storage.discarded and not storage.has_files(2)
    assert await storage.list_completed() == [completed[-1]]


# --- 4: expired checkpoints ---


def stall_counter_writes(release: anyio.Event) -> Any:
    """A write hook holding back the counter's state files until ``release`` is set (the
    sources' files go through, so an expired checkpoint has files to remove)."""

    async def hook(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "state" and name.startswith("op-counter-"):
            await release.wait()

    return hook


async def test_stalled_storage_expires_checkpoints_while_records_keep_flowing_then_recovers() -> (
    None
):
    release = anyio.Event()
    storage = HookedStorage("stalled", stall_counter_writes(release))
    log = CheckpointLog()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, timeout_ms=50, tolerable=100)

    client = await env.execute_async("stalled")
    with anyio.fail_after(JOB_DEADLINE_S):
        await log.wait_aborted(2)
        expired = sorted(log.aborted_ids())
        for checkpoint_id in expired:
            await storage.wait_discarded(checkpoint_id)
            assert not storage.has_files(checkpoint_id)
        # Still stalled: the writes wait, the records do not.
        await log.wait_records(log.records + 2_000)
        assert release.is_set() is False and log.completed_ids() == set()

        release.set()
        await log.wait_completed(2)
        log.stop.set()
        await client.wait()

    failed = stats_by_status(client, CheckpointStatus.FAILED)
    assert {s.checkpoint_id for s in failed} >= set(expired)
    for stats in failed:
        assert stats.failure_reason is CheckpointFailureReason.CHECKPOINT_EXPIRED
        assert re.fullmatch(
            rf"checkpoint {stats.checkpoint_id} failed: Checkpoint expired before completing\. "
            r"not complete after 50 ms; [1-6] of 6 subtasks had not acknowledged",
            stats.failure_message or "",
        ), stats.failure_message
        # Aborted files stay removed, even those the released writes put there late.
        assert not storage.has_files(stats.checkpoint_id)
    for subtask in (0, 1):
        assert log.aborted[("map", subtask)] == [s.checkpoint_id for s in failed]
    completed = stats_by_status(client, CheckpointStatus.COMPLETED)
    assert len(completed) >= 2 and completed[0].checkpoint_id > max(expired)


async def test_expired_checkpoints_beyond_the_tolerance_fail_the_job_saying_why() -> None:
    release = anyio.Event()
    storage = HookedStorage("stalled", stall_counter_writes(release))
    log = CheckpointLog()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, timeout_ms=50, tolerable=1)

    client = await env.execute_async("stalled")
    with (
        anyio.fail_after(JOB_DEADLINE_S),
        pytest.raises(JobExecutionError) as failed,
    ):
        await client.wait()

    # A job failed by its checkpoints is a JobExecutionError like any other; why is chained.
    assert isinstance(failed.value.__cause__, TooManyFailedCheckpointsError)
    assert re.fullmatch(
        r"Exceeded checkpoint tolerable failure threshold: 2 consecutive failed "
        r"checkpoints, 1 tolerated; last failure: checkpoint 2 failed: Checkpoint expired "
        r"before completing\. not complete after 50 ms; [1-6] of 6 subtasks had not "
        r"acknowledged",
        str(failed.value.__cause__),
    ), str(failed.value)

    assert client.status is JobStatus.FAILED
    assert [s.failure_reason for s in stats_by_status(client, CheckpointStatus.FAILED)] == [
        CheckpointFailureReason.CHECKPOINT_EXPIRED,
        CheckpointFailureReason.CHECKPOINT_EXPIRED,
    ]
    assert not storage.has_files(1) and not storage.has_files(2)


# --- 5: storage failures ---

STORAGE_ERRORS = [
    pytest.param(errno.EACCES, "Permission denied (EACCES)", id="permission-denied"),
    pytest.param(errno.ENOSPC, "No space left on device (ENOSPC)", id="disk-full"),
]


def fail_source_writes(code: int, checkpoint_ids: set[int] | None) -> Any:
    """A write hook failing source subtask 0's state file with ``OSError(code)`` for the
    given checkpoints (every checkpoint if None)."""

    async def hook(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "state" and name == "op-src-0.state":
            if checkpoint_ids is None or checkpoint_id in checkpoint_ids:
                raise OSError(code, os.strerror(code))

    return hook


@pytest.mark.parametrize(("code", "detail"), STORAGE_ERRORS)
async def test_storage_errors_within_the_tolerance_decline_checkpoints_and_the_job_finishes(
    code: int, detail: str
) -> None:
    storage = HookedStorage("storage errors", fail_source_writes(code, {2, 3}))
    log = CheckpointLog(stop_after_completed=3)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, tolerable=2)

    client = await run_to_end(env, "storage errors")

    assert client.status is JobStatus.FINISHED
    failed = stats_by_status(client, CheckpointStatus.FAILED)
    assert [s.checkpoint_id for s in failed] == [2, 3]
    for stats in failed:
        assert stats.failure_reason is CheckpointFailureReason.STORAGE_FAILURE
        assert stats.failure_message == (
            f"checkpoint {stats.checkpoint_id} failed: An Exception occurred while accessing "
            f"the checkpoint storage. declined by src subtask 0: operator 'src' subtask 0: "
            f"memory://storage errors/chk-{stats.checkpoint_id}/op-src-0.state: {detail}"
        )
        assert not storage.has_files(stats.checkpoint_id)
    assert len(stats_by_status(client, CheckpointStatus.COMPLETED)) >= 3


@pytest.mark.parametrize(("code", "detail"), STORAGE_ERRORS)
async def test_storage_errors_beyond_the_tolerance_fail_the_job_naming_the_error(
    code: int, detail: str
) -> None:
    storage = HookedStorage("storage errors", fail_source_writes(code, None))
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], CheckpointLog())
    configure(env, storage, tolerable=2)

    client = await env.execute_async("storage errors")
    with anyio.fail_after(JOB_DEADLINE_S), pytest.raises(JobExecutionError) as failed:
        await client.wait()
    info = failed.value.__cause__
    assert isinstance(info, TooManyFailedCheckpointsError), failed.value

    assert str(info) == (
        "Exceeded checkpoint tolerable failure threshold: 3 consecutive failed checkpoints, "
        "2 tolerated; last failure: checkpoint 3 failed: An Exception occurred while "
        "accessing the checkpoint storage. declined by src subtask 0: operator 'src' "
        f"subtask 0: memory://storage errors/chk-3/op-src-0.state: {detail}"
    )
    assert info.reason is CheckpointFailureReason.STORAGE_FAILURE
    assert await storage.list_completed() == []


class FlakyFileStorage(FileCheckpointStorage):
    """File storage whose chosen state writes fail *after* the file landed (a failing
    fsync, say), leaving a stray file that only discarding the checkpoint removes."""

    def __init__(self, base_dir: Path, job_name: str, fail: set[tuple[int, str, int]]) -> None:
        super().__init__(base_dir, job_name)
        self.fail = fail
        self.failed_ids: set[int] = set()
        self.metadata_ids: list[int] = []

    async def write_state_file(
        self,
        checkpoint_id: int,
        operator_uid: str,
        subtask_index: int,
        data: bytes | EncodedStateFile,
    ) -> StateHandle:
        handle = await super().write_state_file(checkpoint_id, operator_uid, subtask_index, data)
        if (checkpoint_id, operator_uid, subtask_index) in self.fail:
            self.failed_ids.add(checkpoint_id)
            path = Path(self.location_of(checkpoint_id)) / handle.file_name
            raise CheckpointStorageError(
                str(path), "No space left on device (ENOSPC)", checkpoint_id=checkpoint_id
            )
        return handle

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        self.metadata_ids.append(checkpoint_id)
        return await super().write_metadata(checkpoint_id, metadata)


async def test_failed_file_writes_never_leave_metadata_or_files_of_incomplete_checkpoints(
    tmp_path: Path,
) -> None:
    fail = {(2, "counter", 1), (3, "src", 0), (5, "counter", 0)}
    storage = FlakyFileStorage(tmp_path, "flaky", fail)
    log = CheckpointLog(stop_after_completed=4)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, tolerable=2, retained=100)

    client = await run_to_end(env, "flaky")

    failed = {s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.FAILED)}
    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert failed == storage.failed_ids == {2, 3, 5}
    assert storage.metadata_ids == completed  # _metadata only ever for complete ones
    # _latest names the newest completed checkpoint (restore tells damage from a crash by it).
    assert {p.name for p in storage.job_dir.iterdir()} == {f"chk-{i}" for i in completed} | {
        "_latest"
    }
    for checkpoint_id in completed:
        directory = storage.job_dir / f"chk-{checkpoint_id}"
        assert (directory / "_metadata").is_file()
        assert await storage.validate(str(directory)) == []
        assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def permissions_enforced(directory: Path) -> bool:
    """Whether this process is refused writes into a read-only directory (root, or anyone
    with CAP_DAC_OVERRIDE, is not)."""
    probe = directory / "probe"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        (probe / "x").mkdir()
    except PermissionError:
        return True
    else:
        return False
    finally:
        probe.chmod(0o700)
        shutil.rmtree(probe)


async def test_read_only_checkpoint_directory_fails_the_job_with_permission_denied(
    tmp_path: Path,
) -> None:
    if not permissions_enforced(tmp_path):
        pytest.skip("directory permissions are not enforced for this user (root)")
    job_dir = tmp_path / "read-only"
    job_dir.mkdir()
    job_dir.chmod(0o500)
    try:
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
        counting_job(env, [FAST, SLOW, SLOW, SLOW], CheckpointLog())
        configure(env, tmp_path, tolerable=1)
        client = await env.execute_async("read-only")
        with anyio.fail_after(JOB_DEADLINE_S), pytest.raises(JobExecutionError) as failed:
            await client.wait()
    finally:
        job_dir.chmod(0o700)
    # Whichever subtask tried to write first declined; the message names its file.
    assert re.fullmatch(
        r"Exceeded checkpoint tolerable failure threshold: 2 consecutive failed checkpoints, "
        r"1 tolerated; last failure: checkpoint 2 failed: An Exception occurred while "
        r"accessing the checkpoint storage\. declined by (src|map|counter) subtask \d: operator "
        rf"'(src|counter)' subtask \d: {re.escape(str(job_dir))}/chk-2/op-(src|counter)-\d"
        r"\.state: Permission denied \(EACCES\)",
        str(failed.value.__cause__),
    ), str(failed.value)
    assert list(job_dir.iterdir()) == []


# --- 6: what a job leaves on disk is valid ---


async def test_checkpoints_left_on_disk_validate_and_ids_increase_across_runs(
    tmp_path: Path,
) -> None:
    runs = []
    for _ in range(2):
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
        counting_job(env, [FAST, SLOW, SLOW, SLOW], CheckpointLog(stop_after_completed=2))
        configure(env, tmp_path, retained=2)
        client = await run_to_end(env, "validated")
        runs.append([s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)])

    first, second = runs
    assert first == list(range(1, len(first) + 1))
    assert second == list(range(first[-1] + 1, first[-1] + 1 + len(second)))
    # Retention applies to a run's own checkpoints; the first run's stay, valid.
    storage = FileCheckpointStorage(tmp_path, "validated")
    assert await storage.list_completed() == first[-2:] + second[-2:]
    result = subprocess.run(
        [sys.executable, "-m", "streamlet.checkpoints", "validate", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "4 checked, 4 valid, 0 invalid"
    # Each run started afresh, so each checkpoint on disk holds a consistent cut of its run.
    for checkpoint_id in first[-2:] + second[-2:]:
        counts, positions = await read_cut(storage, checkpoint_id)
        assert counts == expected_counts(positions), f"checkpoint {checkpoint_id}"


# --- 7: notifications ---


async def test_checkpoint_completion_reaches_every_subtask_of_every_listening_function() -> None:
    log = CheckpointLog(stop_after_completed=5)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    (
        env.from_source(PacedSource([FAST, SLOW, SLOW], log.stop))
        .uid("src")
        .map(ListeningMap("chained", log))  # chained to the source
        .rebalance()
        .map(ListeningMap("rebalanced", log))
        .set_parallelism(3)
        .key_by(key_of)
        .process(CountPerKey(log))
        .uid("counter")
    )
    configure(env, MemoryCheckpointStorage("notified"))

    client = await run_to_end(env, "notified")

    completed = [s.checkpoint_id for s in stats_by_status(client, CheckpointStatus.COMPLETED)]
    assert len(completed) >= 5
    expected_subtasks = {
        *(("chained", i) for i in range(2)),
        *(("rebalanced", i) for i in range(3)),
        *(("counter", i) for i in range(2)),
    }
    assert set(log.completed) == expected_subtasks
    for who, ids in log.completed.items():
        assert ids == completed, who  # every completion, in increasing order


# --- 8: concurrency ---


async def test_at_most_max_concurrent_checkpoints_are_in_flight() -> None:
    release = anyio.Event()
    storage = HookedStorage("concurrent", stall_counter_writes(release))
    log = CheckpointLog()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage)
    env.get_checkpoint_config().set_max_concurrent_checkpoints(2)

    client = await env.execute_async("concurrent")
    with anyio.fail_after(JOB_DEADLINE_S):
        await storage.wait_in_flight(2)
        # Not synchronization: the window (several intervals) in which a third trigger
        # would show up if the coordinator ignored the limit.
        await anyio.sleep(0.06)
        assert storage.max_in_flight == 2
        in_progress = stats_by_status(client, CheckpointStatus.IN_PROGRESS)
        assert [s.checkpoint_id for s in in_progress] == [1, 2]

        release.set()
        await log.wait_completed(4)
        log.stop.set()
        await client.wait()

    assert storage.max_in_flight == 2
    # With two in flight, the newer one may complete first; it then subsumes the older
    # (Flink's contract). Nothing else may fail.
    failed = [
        s
        for s in stats_by_status(client, CheckpointStatus.FAILED)
        if s.failure_reason is not CheckpointFailureReason.CHECKPOINT_DECLINED_SUBSUMED
    ]
    assert not failed, [(s.checkpoint_id, s.failure_message) for s in failed]


async def test_job_result_counts_completed_checkpoints_beyond_the_stats_history() -> None:
    # The statistics keep the last 100 checkpoints; the result must count them all.
    log = CheckpointLog(stop_after_completed=105)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    counting_job(env, [SLOW], log, shuffle=False)
    configure(env, MemoryCheckpointStorage("many"))

    client = await env.execute_async("many")
    with anyio.fail_after(JOB_DEADLINE_S):
        result = await client.wait()

    assert len(client.checkpoint_stats()) == 100
    assert result.checkpoints_completed == len(log.completed_ids()) > 100


# --- aborted checkpoints stop their asynchronous part ---


async def test_aborted_checkpoints_do_not_keep_writing() -> None:
    release = anyio.Event()
    waiting: dict[int, int] = defaultdict(int)  # checkpoint id -> writes held back

    async def stall(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "state" and name.startswith("op-counter-"):
            waiting[checkpoint_id] += 1
            try:
                await release.wait()
            finally:
                waiting[checkpoint_id] -= 1

    storage = HookedStorage("stalled", stall)
    log = CheckpointLog()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    counting_job(env, [FAST, SLOW, SLOW, SLOW], log)
    configure(env, storage, timeout_ms=50, tolerable=100)

    client = await env.execute_async("stalled")
    try:
        with anyio.fail_after(JOB_DEADLINE_S):
            await log.wait_aborted(5)
            # The counters have long processed the aborts of 1..3 (their mailbox runs
            # between batches); their snapshots should be gone, not waiting on storage.
            assert {i: n for i, n in waiting.items() if n and i <= 3} == {}
    finally:
        release.set()
        log.stop.set()
        with anyio.fail_after(JOB_DEADLINE_S):
            await client.wait()


class _EndsWhenCheckpointStarted(Source[int]):
    """Emits ``0..count-1``, then ends once a checkpoint is in flight, and says so."""

    name = "ends-when-checkpoint-started"
    max_parallelism = 1

    def __init__(self, count: int, storage: HookedStorage) -> None:
        self.count = count
        self.storage = storage
        self.ended = anyio.Event()

    def create_splits(self, parallelism: int) -> list[Any]:
        return ["all"]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[int]:
        return _EndsWhenCheckpointStartedReader(self, 0 if position is None else int(position))


class _EndsWhenCheckpointStartedReader(SourceReader[int]):
    def __init__(self, source: _EndsWhenCheckpointStarted, start: int) -> None:
        self.source = source
        self.next = start

    def position(self) -> int:
        return self.next

    async def read_batch(self, max_records: int) -> list[int] | None:
        if self.next < self.source.count:
            self.next = self.source.count
            return list(range(self.source.count))
        await self.source.storage.wait_in_flight(1)
        self.source.ended.set()
        return None


async def test_a_checkpoint_failing_after_the_sources_finished_fails_the_job_not_hangs() -> None:
    # Checkpoint 1 is in flight when the source ends; its write fails only after that, when
    # the periodic loop (which used to be the only one to fail the job) has been stopped.
    source: _EndsWhenCheckpointStarted

    async def fail_once_the_source_ended(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "state" and checkpoint_id == 1:
            await source.ended.wait()
            for _ in range(20):  # let the final-checkpoint task take over from the loop
                await anyio.lowlevel.checkpoint()
            raise OSError(errno.ENOSPC, "No space left on device")

    storage = HookedStorage("late-failure", write_hook=fail_once_the_source_ended)
    source = _EndsWhenCheckpointStarted(10, storage)
    env = StreamExecutionEnvironment.get_execution_environment()
    configure(env, storage, interval_ms=10)
    env.from_source(source, source_name="ends").map(lambda x: x).add_sink(lambda x: None)
    with anyio.fail_after(20), pytest.raises(Exception) as failed:
        await env.execute("late-failure")
    error: BaseException | None = failed.value
    while error is not None and not isinstance(error, TooManyFailedCheckpointsError):
        error = error.__cause__
    assert isinstance(error, TooManyFailedCheckpointsError), failed.value
    assert "No space left on device" in str(error)


class _StoreUnstorableAtEnd(KeyedProcessFunction):
    """Counts per key; the last record puts a value into state that no checkpoint can store."""

    def __init__(self, last: int) -> None:
        self.last = last

    def open(self, runtime_context: Any) -> None:
        self.note = runtime_context.get_state(ValueStateDescriptor("note"))

    def process_element(self, value: int, ctx: Any) -> Any:
        if value == self.last:
            self.note.update(lambda: "not storable")
        yield value


async def test_a_failing_final_checkpoint_fails_the_bounded_job_instead_of_retrying_for_ever() -> (
    None
):
    # The periodic interval is far beyond the job's run time: the only checkpoint is the
    # final one, triggered once the source has read everything, and it always fails.
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(3_600_000)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 0))
    env.from_sequence(0, 9).key_by(lambda x: x % 2).process(_StoreUnstorableAtEnd(9)).add_sink(
        lambda x: None
    )
    with anyio.fail_after(20), pytest.raises(Exception) as failed:
        await env.execute("final-checkpoint-fails")
    error: BaseException | None = failed.value
    while error is not None and not isinstance(error, TooManyFailedCheckpointsError):
        error = error.__cause__
    assert isinstance(error, TooManyFailedCheckpointsError), failed.value
    assert "cannot serialize state 'note'" in str(error)


async def test_an_unwritable_checkpoint_directory_fails_the_job_at_start_in_one_line(
    tmp_path: Path,
) -> None:
    # A file where the directory should be: every checkpoint would fail, and restarting
    # would fail them all again, so the job refuses to start instead.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ran: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_checkpoint_storage_dir(blocker / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    env.from_collection([1, 2, 3]).add_sink(ran.append)
    client = await env.execute_async("unwritable")
    with anyio.fail_after(JOB_DEADLINE_S), pytest.raises(JobExecutionError) as info:
        await client.wait()
    message = str(info.value)
    assert "\n" not in message
    assert str(blocker / "checkpoints" / "unwritable") in message
    assert "cannot be written" in message and "ENOTDIR" in message
    assert isinstance(info.value.__cause__, CheckpointStorageError)
    assert client.restart_count == 0 and ran == []
