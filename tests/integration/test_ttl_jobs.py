"""State TTL in running jobs (issue 15): it runs on the job's processing-time clock (a test's
ManualClock), expired values are never read, timestamps survive a checkpoint and restore, and
the per-record incremental cleanup runs while records flow, so expired keys nobody reads
again disappear from the state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlet import (
    KeyedProcessFunction,
    ManualClock,
    RuntimeContext,
    StateTtlConfig,
    StreamExecutionEnvironment,
    Time,
    ValueStateDescriptor,
)
from streamlet.testing import TestingSource

pytestmark = pytest.mark.anyio


class LastSeen(KeyedProcessFunction):
    """Emits the value a key had before each record, with TTL ``ttl`` ms; each record
    ``(key, at_ms)`` first moves the job's manual clock to ``at_ms`` (so time moves in step
    with the records, whatever the scheduling)."""

    def __init__(self, clock: ManualClock, ttl: int, cleanup: StateTtlConfig | None = None):
        self.clock = clock
        self.ttl = ttl
        self.cleanup = cleanup
        self.sizes: list[int] = []

    def open(self, runtime_context: RuntimeContext) -> None:
        config = self.cleanup or StateTtlConfig.new_builder(Time.milliseconds(self.ttl)).build()
        descriptor = ValueStateDescriptor("last")
        descriptor.enable_time_to_live(config)
        self.last = runtime_context.get_state(descriptor)
        self.backend = runtime_context._ctx.keyed_backend

    def process_element(self, value: tuple[str, int], ctx: KeyedProcessFunction.Context) -> Any:
        key, at = value
        if at > self.clock.now_ms():
            self.clock.set_time(at)
        if key == "no state":
            return  # a record that does not touch the state (nor its access-time cleanup)
        yield (key, at, self.last.value())
        self.last.update(at)

    def close(self) -> None:
        assert self.backend is not None
        self.sizes.append(self.backend.state_size())

    def __deepcopy__(self, memo: Any) -> LastSeen:
        # Each subtask gets a copy of the function; this one shares the clock and the
        # sizes list with the test.
        copy = LastSeen(self.clock, self.ttl, self.cleanup)
        copy.sizes = self.sizes
        return copy


def run_job(records: list[Any], function: LastSeen, **execute: Any) -> Any:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_processing_time_clock(function.clock)
    out: list[Any] = []
    env.from_source(TestingSource(records)).uid("src").key_by(lambda r: r[0]).process(function).uid(
        "last"
    ).add_sink(out.append)
    return env, out


async def test_ttl_runs_on_the_jobs_processing_time_clock() -> None:
    clock = ManualClock(0)
    env, out = run_job([("a", 0), ("a", 50), ("a", 200), ("a", 250)], LastSeen(clock, 100))
    await env.execute("ttl clock")
    # written at 50, so expired at 150: the read at 200 sees nothing
    assert out == [("a", 0, None), ("a", 50, 0), ("a", 200, None), ("a", 250, 200)]


async def test_ttl_timestamps_survive_a_checkpoint_and_restore(tmp_path: Path) -> None:
    clock = ManualClock(0)
    records: list[Any] = [("a", 10), ("b", 60), TestingSource.EOF(), ("a", 100), ("b", 100)]
    for run in range(2):
        env, out = run_job(records, LastSeen(clock, 100))
        env.enable_checkpointing(10)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path))
        await env.execute("ttl restore", restore="latest")
        if run == 0:
            assert out == [("a", 10, None), ("b", 60, None)]
    # Written at 10 and 60 before the restore, both are alive at 100 (10 + 100 > 100) after.
    assert sorted(out) == [("a", 100, 10), ("b", 100, 60)]
    clock2 = ManualClock(0)
    records2: list[Any] = [("a", 10), TestingSource.EOF(), ("a", 110)]
    for _ in range(2):
        env, out = run_job(records2, LastSeen(clock2, 100))
        env.enable_checkpointing(10)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "second"))
        await env.execute("ttl restore 2", restore="latest")
    assert out == [("a", 110, None)]  # 10 + 100 <= 110: expired, also after a restore


async def test_per_record_incremental_cleanup_runs_while_records_flow() -> None:
    clock = ManualClock(0)
    config = (
        StateTtlConfig.new_builder(Time.milliseconds(100)).cleanup_incrementally(50, True).build()
    )
    function = LastSeen(clock, 100, config)
    # 100 keys written at time 0, never read again; then, much later, 20 records that do
    # not touch the state: only the per-record cleanup can remove the expired entries.
    records = [(f"k{i}", 0) for i in range(100)] + [("no state", 1_000 + i) for i in range(20)]
    env, out = run_job(records, function)
    await env.execute("ttl cleanup")
    assert len(out) == 100
    assert function.sizes == [0]
