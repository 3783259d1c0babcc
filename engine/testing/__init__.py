"""Test utilities for users' async test suites (and ours).

- :class:`TestingSource`: a replayable source over a list, with markers that end the input
  (:class:`TestingSource.EOF`), crash the job once (:class:`TestingSource.ABORT`) or pause it
  (:class:`TestingSource.PAUSE`): Bytewax's testing source, adapted to checkpoints.
- :class:`TestingSink`: collects every record of a stream into a list of yours.
- :func:`run_and_collect` / :func:`run_and_collect_result`: run a stream's job, return its
  records (and the job's result).
- :class:`KeyedOperatorTestHarness` / :class:`OperatorTestHarness` (from
  :mod:`streamlet.testing.harness`): drive one function by hand, snapshot it and restore it,
  without a job; :class:`TwoInputOperatorTestHarness` /
  :class:`KeyedTwoInputOperatorTestHarness` for the co-functions of ``connect``.
- PyFlink programs run with only their imports changed (:mod:`streamlet.testing.pyflink_examples`):
  :func:`run_pyflink_program`, :func:`assert_same_printed_lines`.
- Seeded fault injection (:mod:`streamlet.testing.faults`): :class:`FaultInjector`,
  :func:`inject_faults`.

Pytest fixtures (``streamlet_env``, ``checkpoint_storage``, ``streamlet_env_factory``) come
with the package's pytest plugin, :mod:`streamlet.testing.pytest_plugin`.

Example::

    import anyio
    from streamlet import StreamExecutionEnvironment
    from streamlet.testing import TestingSource, run_and_collect

    async def main() -> None:
        env = StreamExecutionEnvironment.get_execution_environment()
        stream = env.from_source(TestingSource([1, 2, 3])).map(lambda x: x * 10)
        assert await run_and_collect(stream) == [10, 20, 30]

    anyio.run(main)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from streamlet.api.datastream import DataStream
from streamlet.job.result import JobExecutionResult
from streamlet.operators.processing_time import ManualClock
from streamlet.operators.records import StreamRecord
from streamlet.operators.sinks.base import Sink, SinkWriter
from streamlet.operators.sources.base import Source, SourceReader, SourceSessionContext
from streamlet.testing.faults import Fault, FaultInjector, InjectedFault, inject_faults
from streamlet.testing.harness import (
    KeyedOperatorTestHarness,
    KeyedTwoInputOperatorTestHarness,
    OperatorTestHarness,
    TwoInputOperatorTestHarness,
    WindowOperatorTestHarness,
)
from streamlet.testing.pyflink_examples import (
    PyFlinkProgramError,
    assert_same_printed_lines,
    printed_lines,
    rewrite_pyflink_imports,
    run_pyflink_program,
    strip_subtask_prefix,
)
from streamlet.testing.snapshot import HarnessSnapshot

__all__ = [
    "Fault",
    "FaultInjector",
    "HarnessSnapshot",
    "InjectedFault",
    "KeyedOperatorTestHarness",
    "KeyedTwoInputOperatorTestHarness",
    "ManualClock",
    "OperatorTestHarness",
    "PyFlinkProgramError",
    "StreamRecord",
    "TestingSink",
    "TestingSource",
    "TwoInputOperatorTestHarness",
    "WindowOperatorTestHarness",
    "assert_same_printed_lines",
    "inject_faults",
    "printed_lines",
    "rewrite_pyflink_imports",
    "run_and_collect",
    "run_and_collect_result",
    "run_pyflink_program",
    "strip_subtask_prefix",
]


# --- TestingSource ---


class TestingSource(Source[Any]):
    """Emit the records of a list in order; markers in the list end, crash or pause the input.

    Non-parallel (``max_parallelism = 1``) and replayable: the position is the index of the
    next list item, markers included, so a restore neither repeats nor skips a record.

    Markers (instances, placed in the list like records):

    - ``TestingSource.EOF()`` ends the input there: the job finishes (with checkpointing, after
      its final checkpoint, which stores the position *after* the marker). A later run of the
      job with ``execute(..., restore="latest")`` continues after the marker: the list is
      consumed run by run ("continuation"). A restart *within* a run stops at the same EOF.
    - ``TestingSource.ABORT()`` raises :class:`~streamlet.testing.faults.InjectedFault` inside the
      job the first time the reader reaches it, after the records before it were emitted: a
      crash. With checkpointing and a restart strategy the job restores its last completed
      checkpoint (or starts over if there is none) and goes on; the marker is then skipped.
      Each ABORT fires once per ``TestingSource`` instance, also across runs. Without a
      restart strategy that allows it, ``execute`` raises
      :class:`~streamlet.errors.JobExecutionError` with the ``InjectedFault`` as its cause.
    - ``TestingSource.PAUSE(duration_ms)`` stops reading for that long, after the records
      before it were emitted; the job keeps processing and checkpointing meanwhile.
    - ``TestingSource.AWAIT_CHECKPOINT()`` stops reading until a checkpoint that covers every
      record before the marker has completed (this reader was notified of it), then goes on.
      Put it before an ABORT to make a restore certain instead of likely: the crash then
      always finds those records checkpointed. It needs periodic checkpointing; without it
      the reader waits forever. After a restore to a position before the marker it waits
      again, for a checkpoint of the new attempt.

    Resume contract: a checkpoint stores the index of the next item after the last batch
    emitted before its barrier; the reader built with it starts exactly there.

    An instance keeps which ABORTs fired and where the current run stopped, so use one
    instance per job, and one job at a time.

    Example (an ABORT, a restore, then continuation after an EOF)::

        import anyio
        from streamlet.checkpoints.storage import MemoryCheckpointStorage
        from streamlet import StreamExecutionEnvironment
        from streamlet.job.restart import RestartStrategies
        from streamlet.testing import TestingSink, TestingSource

        async def main() -> None:
            storage = MemoryCheckpointStorage("doc")
            source = TestingSource(
                [1, 2, TestingSource.AWAIT_CHECKPOINT(), TestingSource.ABORT(), 3,
                 TestingSource.EOF(), 4, 5]
            )

            async def run() -> tuple[list[int], int]:
                env = StreamExecutionEnvironment.get_execution_environment()
                env.enable_checkpointing(10)
                env.get_checkpoint_config().set_checkpoint_storage(storage)
                env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
                out: list[int] = []
                env.from_source(source).uid("source").sink_to(TestingSink(out))
                result = await env.execute("doc", restore="latest")
                return out, result.restart_count

            out, restarts = await run()       # crashes once at the ABORT, ends at the EOF
            assert restarts == 1 and out == [1, 2, 3]  # restored after 2: nothing repeated
            assert await run() == ([4, 5], 0)  # the next run continues after the EOF

        anyio.run(main)

    :param records: the records and markers, in order
    :param batch_size: how many records one read returns at most
    :raises TypeError: if ``records`` is not an iterable of records (a str, bytes or dict
        is refused), or ``batch_size`` is not an int
    :raises ValueError: if ``batch_size`` < 1
    """

    __test__ = False  # a class named Test*: not a pytest test class

    name = "Testing Source"
    max_parallelism = 1

    @dataclass(frozen=True, slots=True)
    class EOF:
        """End the input here; a later run restored from its checkpoint continues after it."""

    @dataclass(frozen=True, slots=True)
    class ABORT:
        """Crash the job the first time the reader reaches this marker."""

    @dataclass(frozen=True, slots=True)
    class AWAIT_CHECKPOINT:
        """Stop reading until a checkpoint covering the records before this marker completed."""

    @dataclass(frozen=True, slots=True)
    class PAUSE:
        """Stop reading for ``duration_ms`` milliseconds."""

        duration_ms: float

        def __post_init__(self) -> None:
            ms = self.duration_ms
            if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
                raise ValueError(f"PAUSE duration_ms must be a number >= 0, got {ms!r}")

    def __init__(self, records: Iterable[Any], batch_size: int = 1) -> None:
        if isinstance(records, str | bytes | dict) or not isinstance(records, Iterable):
            raise TypeError(
                f"TestingSource() needs a list or other iterable of records, "
                f"got {type(records).__name__}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool):
            raise TypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._items = list(records)
        self.batch_size = batch_size
        # Indices of the ABORT markers that fired (for this instance's whole life).
        self._fired: set[int] = set()
        # Position just after the EOF the current run ended at (None: not ended yet).
        # Invariant: reset when a run starts (session), so only a restart sees it.
        self._run_stopped_at: int | None = None

    def __repr__(self) -> str:
        return f"TestingSource({len(self._items)} items, batch_size={self.batch_size})"

    def create_splits(self, parallelism: int) -> list[Any]:
        return ["testing"]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Any]:
        start = 0 if position is None else int(position)
        stopped = self._run_stopped_at
        # A restart of this run restoring the final checkpoint (taken after the EOF it
        # ended at) must end there again, not read on: that is the next run's input.
        return _TestingReader(self, start, ended=stopped is not None and start >= stopped)

    @contextlib.asynccontextmanager
    async def session(self, ctx: SourceSessionContext) -> AsyncIterator[None]:
        self._run_stopped_at = None
        yield


class _TestingReader(SourceReader[Any]):
    def __init__(self, source: TestingSource, start: int, *, ended: bool) -> None:
        self._source = source
        self._next = start
        self._ended = ended
        # Highest position a completed checkpoint stored for this reader, and the event the
        # AWAIT_CHECKPOINT marker waits on (replaced after every notification).
        self._completed_position = -1
        self._completed = anyio.Event()

    def position(self) -> int:
        return self._next

    async def read_batch(self, max_records: int) -> list[Any] | None:
        if self._ended:
            return None
        source = self._source
        items = source._items
        limit = min(max_records, source.batch_size)
        batch: list[Any] = []
        # A marker is handled only at the start of a read, so the records before it are
        # emitted (and may be checkpointed) before it takes effect.
        while self._next < len(items) and len(batch) < limit:
            item = items[self._next]
            if isinstance(item, TestingSource.EOF):
                if batch:
                    break
                self._next += 1
                self._ended = True
                source._run_stopped_at = self._next
                return None
            if isinstance(item, TestingSource.ABORT):
                if self._next in source._fired:
                    self._next += 1
                    continue
                if batch:
                    break
                source._fired.add(self._next)
                raise InjectedFault(f"TestingSource.ABORT() at index {self._next}")
            if isinstance(item, TestingSource.AWAIT_CHECKPOINT):
                if batch:
                    break
                # Position is the index of the next item, so a checkpoint stored at this
                # marker's index or beyond covers every record before it.
                while self._completed_position < self._next:
                    await self._completed.wait()
                self._next += 1
                continue
            if isinstance(item, TestingSource.PAUSE):
                if batch:
                    break
                self._next += 1
                await anyio.sleep(item.duration_ms / 1000)
                continue
            batch.append(item)
            self._next += 1
        if not batch:
            return None
        await anyio.lowlevel.checkpoint()
        return batch

    async def notify_checkpoint_complete(self, checkpoint_id: int, position: Any) -> None:
        # None: the checkpoint was taken before this reader read anything (from the start).
        done = 0 if position is None else int(position)
        self._completed_position = max(self._completed_position, done)
        completed, self._completed = self._completed, anyio.Event()
        completed.set()


# --- TestingSink and running a job ---


class TestingSink(Sink):
    """Append every record the stream delivers to ``output``, a list of yours.

    All subtasks append to the same list, each in its own order; with parallelism > 1 the
    interleaving across subtasks is unspecified (compare sorted lists or counters).
    At-least-once: after a restart the records since the restored checkpoint are appended
    again (derive results from state, or compare sets, in recovery tests).

    Example::

        import anyio
        from streamlet import StreamExecutionEnvironment
        from streamlet.testing import TestingSink, TestingSource

        async def main() -> None:
            env = StreamExecutionEnvironment.get_execution_environment()
            out: list[str] = []
            env.from_source(TestingSource(["a", "b"])).map(str.upper).sink_to(TestingSink(out))
            await env.execute("sink example")
            assert out == ["A", "B"]

        anyio.run(main)

    :param output: the list to append to (not copied)
    :raises TypeError: if ``output`` is not a list
    """

    __test__ = False

    name = "Testing Sink"

    def __init__(self, output: list[Any]) -> None:
        if not isinstance(output, list):
            raise TypeError(f"TestingSink() needs a list to append to, got {output!r}")
        self.output = output

    def create_writer(self) -> SinkWriter:
        return _TestingSinkWriter(self.output)


class _TestingSinkWriter(SinkWriter):
    def __init__(self, output: list[Any]) -> None:
        self._output = output

    async def write_batch(self, records: list[Any]) -> None:
        self._output.extend(records)


async def run_and_collect_result(
    stream: DataStream,
    *,
    job_name: str = "test",
    restore: str | os.PathLike[str] | None = None,
) -> tuple[list[Any], JobExecutionResult]:
    """Sink ``stream`` into a :class:`TestingSink`, run its job; return records and result.

    As :func:`run_and_collect`, also returning the :class:`~streamlet.JobExecutionResult`
    (``restart_count``, ``checkpoints_completed``, ...).

    Example::

        import anyio
        from streamlet import StreamExecutionEnvironment
        from streamlet.testing import run_and_collect_result

        async def main() -> None:
            env = StreamExecutionEnvironment.get_execution_environment()
            records, result = await run_and_collect_result(env.from_collection([1, 2]))
            assert records == [1, 2] and result.restart_count == 0

        anyio.run(main)

    :raises TypeError: if ``stream`` is not a DataStream
    :raises JobExecutionError: if the job failed beyond its restart strategy
    """
    if not isinstance(stream, DataStream):
        raise TypeError(f"run_and_collect() needs a DataStream, got {stream!r}")
    output: list[Any] = []
    stream.sink_to(TestingSink(output))
    result = await stream._env.execute(
        job_name, restore=None if restore is None else os.fspath(restore)
    )
    return output, result


async def run_and_collect(
    stream: DataStream,
    *,
    job_name: str = "test",
    restore: str | os.PathLike[str] | None = None,
) -> list[Any]:
    """Sink ``stream`` into a :class:`TestingSink`, run its environment's job, return records.

    Runs every sink of the job built so far in ``stream``'s environment (as ``execute``
    does; the environment's graph is then cleared). The list is in order for parallelism 1;
    see :class:`TestingSink` for parallel jobs and restarts (at-least-once).

    Example::

        import anyio
        from streamlet import StreamExecutionEnvironment
        from streamlet.testing import run_and_collect

        async def main() -> None:
            env = StreamExecutionEnvironment.get_execution_environment()
            words = env.from_collection(["to be", "or not"]).flat_map(str.split)
            assert await run_and_collect(words) == ["to", "be", "or", "not"]

        anyio.run(main)

    :param stream: the stream whose records to collect
    :param job_name: the job's name (its checkpoints are stored under it)
    :param restore: passed to ``execute``: ``None``, ``"latest"`` or a checkpoint path
    :raises TypeError: if ``stream`` is not a DataStream
    :raises JobExecutionError: if the job failed beyond its restart strategy
    """
    records, _ = await run_and_collect_result(stream, job_name=job_name, restore=restore)
    return records
