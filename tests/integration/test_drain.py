"""Stop with savepoint and drain (PyFlink's ``advance_to_end_of_event_time=True``, issue 16).

The job counts records per key in one event-time window too long to end on its own. Stopped
without drain, the window is still open in the savepoint and nothing was emitted; drained,
the MAX watermark fires it before the savepoint, so the counts cover exactly what the sources
read, and a job restored from the drained savepoint goes on from where they stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    JobStatus,
    StreamExecutionEnvironment,
    Time,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from streamlet.job.client import JobClient
from tests.helpers import SPLITS, Ranges

pytestmark = pytest.mark.asyncio

N = 4000
KEYS = 5


def build(env: StreamExecutionEnvironment, source: Ranges, out: list[Any]) -> None:
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda value, _: value
    )
    (
        env.from_source(source, strategy, "numbers")
        .uid("numbers")
        .map(lambda i: (i % KEYS, 1))
        .key_by(lambda pair: pair[0])
        .window(TumblingEventTimeWindows.of(Time.days(1)))  # timestamps 0..N ms: one window
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("counts")
        .add_sink(out.append)
    )


def env_for(tmp_path: Path) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.enable_checkpointing(3_600_000)  # on, but only the final checkpoint is taken
    return env


async def start_until_paused(tmp_path: Path, source: Ranges, out: list[Any]) -> JobClient:
    """Start the job and return its client once every split has paused and every batch its
    reader returned was forwarded.

    A source subtask reads each split ahead in a task of its own (a few batches), and a
    drain emits only what was forwarded: batches read ahead are dropped, and a job restored
    from the savepoint reads them again. The tests count what the readers read, so they
    stop the job only once nothing read is left in the read-ahead.
    """
    env = env_for(tmp_path)
    build(env, source, out)
    client = await env.execute_async("drained")
    with anyio.fail_after(10):
        while source.paused < SPLITS or _forwarded(client) < source.records_read():
            await anyio.sleep(0.005)
    return client


def _forwarded(client: JobClient) -> int:
    """The records the source subtasks forwarded into their chains."""
    deployment = client._runner.deployment
    if deployment is None:
        return 0
    return sum(s.records_in for s in deployment.subtasks if s.gate is None)


async def _stop_when_paused(
    tmp_path: Path, source: Ranges, out: list[Any], *, drain: bool
) -> tuple[str, Any]:
    client = await start_until_paused(tmp_path, source, out)
    with anyio.fail_after(20):
        path = await client.stop_with_savepoint(drain, str(tmp_path / "savepoints"))
        return path, await client.wait()


async def test_drain_fires_the_windows_before_the_savepoint_and_a_restore_goes_on(
    tmp_path: Path,
) -> None:
    source = Ranges(N, pause_after=N // 8)
    out: list[Any] = []
    path, result = await _stop_when_paused(tmp_path, source, out, drain=True)
    assert result.savepoint_path == path and Path(path).parent == tmp_path / "savepoints"
    # Each split read whole batches of 16 up to N // 8 records before it paused.
    read = SPLITS * -(-(N // 8) // 16) * 16
    assert sorted(key for key, _ in out) == list(range(KEYS))  # every window fired once
    assert sum(count for _, count in out) == read

    # The savepoint holds the sources' positions at the stop: a restored job reads the rest.
    rest: list[Any] = []
    env = env_for(tmp_path)
    build(env, Ranges(N), rest)
    restored = await env.execute("drained", restore=path)
    assert restored.restored_from == path
    assert sum(count for _, count in rest) == N - read  # nothing lost, nothing twice


async def test_without_drain_the_window_stays_open_in_the_savepoint(tmp_path: Path) -> None:
    source = Ranges(N, pause_after=N // 8)
    out: list[Any] = []
    path, result = await _stop_when_paused(tmp_path, source, out, drain=False)
    assert result.savepoint_path == path
    assert out == []  # the window is pending in the savepoint, not fired

    rest: list[Any] = []
    env = env_for(tmp_path)
    build(env, Ranges(N), rest)
    await env.execute("drained", restore=path)
    assert sum(count for _, count in rest) == N  # the restored window counted everything


async def test_drain_needs_checkpointing_and_says_how_to_turn_it_on(tmp_path: Path) -> None:
    source = Ranges(N, pause_after=N // 8)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    build(env, source, [])
    client = await env.execute_async("undrained")
    with anyio.fail_after(10):
        while source.paused < SPLITS:
            await anyio.sleep(0.005)
    with pytest.raises(ValueError, match=r"needs checkpointing on: call env\.enable_checkpointing"):
        await client.stop_with_savepoint(True, str(tmp_path / "savepoints"))
    assert client.get_job_status() is JobStatus.RUNNING  # refused, the job goes on
    await client.cancel()


def test_the_blocking_client_drains_too(tmp_path: Path) -> None:
    """PyFlink's form: ``execute_async`` outside an event loop, ``.result()`` on the future."""
    source = Ranges(N, pause_after=N // 8)
    out: list[Any] = []
    env = env_for(tmp_path)
    build(env, source, out)
    client = env.execute_async("drained")
    start = time.monotonic()
    while source.paused < SPLITS:
        assert time.monotonic() - start < 10, "the sources never paused"
        time.sleep(0.005)
    path = client.stop_with_savepoint(True, str(tmp_path / "savepoints")).result(timeout=30)
    assert Path(path).parent == tmp_path / "savepoints"
    assert sum(count for _, count in out) == SPLITS * -(-(N // 8) // 16) * 16
