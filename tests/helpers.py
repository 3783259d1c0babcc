"""Small job helpers shared by the tests (users get engine.testing for the same)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio

from streamlet import DataStream, StreamExecutionEnvironment
from streamlet.operators.sources.base import Source, SourceReader

PARALLELISMS = [1, 2, 4, 8]


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


async def run_and_collect(env: StreamExecutionEnvironment, stream: DataStream) -> list[Any]:
    out: list[Any] = []
    stream.add_sink(out.append)
    await env.execute("test job")
    return out


def same_multiset(a: list[Any], b: list[Any]) -> bool:
    return Counter(map(repr, a)) == Counter(map(repr, b))


# --- exactly-once runs under seeded faults (the recovery tests' common frame) ---


class FaultyRun:
    """An environment set up for an exactly-once run under seeded faults, and its result.

    Checkpoints every 10 ms (failed checkpoints tolerated), restarts without delay, and,
    with a ``seed``, three random faults in ``operators`` among their first
    ``max_record`` records (per subtask). Build the job on :attr:`env` with a ``FileSink``
    into :attr:`out`, then ``await run.execute(name)``: the committed lines and the
    restart count.
    """

    def __init__(
        self,
        out: Any,
        seed: int | None,
        operators: list[str],
        max_record: int,
        parallelism: int = 2,
    ) -> None:
        from streamlet.job.restart import RestartStrategies
        from streamlet.testing import FaultInjector, inject_faults

        self.out = str(out)
        self.env = env_with(parallelism)
        self.env.enable_checkpointing(10)
        self.env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(1000)
        self.env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 0))
        self.injector = None
        if seed is not None:
            self.injector = inject_faults(
                self.env,
                FaultInjector.random(
                    seed,
                    operators=operators,
                    parallelism=parallelism,
                    max_record=max_record,
                    count=3,
                ),
            )

    async def execute(self, job_name: str) -> tuple[list[str], int]:
        """Run the job (30 s at most); return the committed lines and the restart count.
        With faults, a restart happened exactly when a fault fired."""
        import anyio

        from streamlet import read_committed

        with anyio.fail_after(30):
            result = await self.env.execute(job_name)
        if self.injector is not None:
            assert (result.restart_count >= 1) == (len(self.injector.fired) >= 1)
        return read_committed(self.out), result.restart_count


# --- a replayable, pausable source for restore and rescale tests ---

#: The splits of :class:`Ranges`.
SPLITS = 4


class Ranges(Source[int]):
    """0..n-1 over ``SPLITS`` splits of consecutive ranges, in batches of 16; with
    ``pause_after``, each split waits at that many records (from its start) until ``gate``
    is set; ``delay_s`` sleeps after each batch. Replayable: the position is the next number.
    ``starts`` records the position every reader was built with (the restored cut). With
    ``pace_batches``, a reader waits after that many batches until one more checkpoint
    completed, so a run has checkpoints all along, however slow the machine."""

    name = "Ranges"

    def __init__(
        self,
        n: int,
        pause_after: int | None = None,
        delay_s: float = 0.0,
        pace_batches: int | None = None,
    ) -> None:
        self.n = n
        self.pace_batches = pace_batches
        #: Checkpoint completions seen by the readers (each reader counts each).
        self.completed = 0
        self.pause_after = pause_after
        self.delay_s = delay_s
        self.gate = anyio.Event()
        self.paused = 0
        self.starts: dict[int, int] = {}
        #: split start -> the next number its reader will read
        self.read: dict[int, int] = {}

    def create_splits(self, parallelism: int) -> list[Any]:
        return [[i * self.n // SPLITS, (i + 1) * self.n // SPLITS] for i in range(SPLITS)]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[int]:
        source = self
        lo, hi = split
        self.starts[lo] = self.read[lo] = lo if position is None else int(position)

        class Reader(SourceReader[int]):
            next = source.starts[lo]
            batches = 0

            async def read_batch(self, max_records: int) -> list[int] | None:
                if self.next >= hi:
                    return None
                self.batches += 1
                if source.pace_batches and self.batches % source.pace_batches == 0:
                    seen = source.completed
                    while source.completed == seen:
                        await anyio.sleep(0.001)
                if (
                    source.pause_after is not None
                    and self.next - lo >= source.pause_after
                    and not source.gate.is_set()
                ):
                    source.paused += 1
                    await source.gate.wait()
                end = min(self.next + 16, hi)
                batch = list(range(self.next, end))
                self.next = source.read[lo] = end
                if source.delay_s:
                    await anyio.sleep(source.delay_s)
                else:
                    await anyio.lowlevel.checkpoint()
                return batch

            def position(self) -> int:
                return self.next

            async def notify_checkpoint_complete(self, checkpoint_id: int, position: Any) -> None:
                source.completed += 1

        return Reader()

    def records_read(self) -> int:
        return sum(self.read[lo] - self.starts[lo] for lo in self.starts)
