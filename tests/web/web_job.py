"""A running job for the web tests: checkpoints, a restart, watermarks, user metrics.

``Ranges`` pauses every split at ``pause_after`` records (after the restart too), so the
job stays RUNNING, idle, and keeps completing checkpoints until the test opens the gate.
The counting operator fails once, at its 150th record: the job restarts from a checkpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from streamlet import MapFunction, RestartStrategies, RuntimeContext, WatermarkStrategy
from streamlet.job.client import JobClient
from streamlet.runtime.metrics import NO_WATERMARK
from streamlet.testing import FaultInjector, inject_faults
from tests.helpers import SPLITS, Ranges, env_with


class CountingMap(MapFunction):
    """Keyed map with one of each user metric."""

    def open(self, runtime_context: RuntimeContext) -> None:
        group = runtime_context.get_metrics_group().add_group("web")
        self.seen = group.counter("seen")
        self.sizes = group.distribution("sizes")
        self.rate = group.meter("rate")
        group.gauge("answer", lambda: 42)

    def map(self, value: int) -> tuple[int, int]:
        self.seen.inc()
        self.sizes.update(value % 10)
        self.rate.mark_event()
        return value % 7, value


@asynccontextmanager
async def running_job(
    tmp_path: Path, *, pause_after: int = 200, n: int = 4000, fail: bool = True
) -> AsyncIterator[tuple[JobClient, Ranges]]:
    """Start the job, wait until it restarted once, completed a checkpoint since, every
    split is paused and all it wrote has been read; yield; then let it finish."""
    env = env_with(2)
    env.enable_checkpointing(20)
    env.get_config().set_auto_watermark_interval(20)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_default_savepoint_directory(str(tmp_path / "savepoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    if fail:
        inject_faults(env, FaultInjector().fail_record("count", at=150))
    # Paced: a checkpoint completes every 4 batches of a split, so the failure restores one.
    source = Ranges(n, pause_after=pause_after, pace_batches=4)
    out: list[Any] = []
    (
        env.from_source(source)
        .uid("numbers")
        .name("Numbers")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
                lambda value, _ts: value
            )
        )
        .name("Timestamps")
        .key_by(lambda x: x % 5)
        .map(CountingMap())
        .uid("count")
        .name("Count")
        .add_sink(out.append)
        .name("Collect")
    )
    client: JobClient = await env.execute_async("web job")
    try:
        with anyio.fail_after(30):
            while not (
                client.restart_count == (1 if fail else 0)
                and len(source.read) == SPLITS
                and all(source.read[lo] - lo >= pause_after for lo in source.read)
                and _completed_since_restore(client) >= 1
                and _watermarks_arrived(client)
                and _nothing_in_flight(client)
            ):
                await anyio.sleep(0.005)
        yield client, source
    finally:
        source.gate.set()
        if not client.done:
            await client.cancel()


def _completed_since_restore(client: JobClient) -> int:
    runner = client._runner
    restored = runner.last_restore_timestamp_ms or 0
    return sum(
        1
        for s in client.checkpoint_stats()
        if s.status.value == "completed" and s.trigger_timestamp_ms >= restored
    )


def _nothing_in_flight(client: JobClient) -> bool:
    """Every record the sources wrote has been read by the counting chain: the tests compare
    the two vertices' counts, which differ while a batch is still in a channel."""
    deployment = client._runner.deployment
    if deployment is None:
        return False
    written = sum(w.records_out for s in deployment.subtasks if s.gate is None for w in s.writers)
    read = sum(s.root.records_in for s in deployment.subtasks if s.gate is not None)
    return written == read


def _watermarks_arrived(client: JobClient) -> bool:
    deployment = client._runner.deployment
    return deployment is not None and all(
        s.root.input_watermark > NO_WATERMARK for s in deployment.subtasks if s.gate is not None
    )
