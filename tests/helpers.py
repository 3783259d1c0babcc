"""Small job helpers shared by the tests (users get engine.testing for the same)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from streamlet import DataStream, StreamExecutionEnvironment

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
