"""A representative set of jobs, run on both anyio backends (asyncio and trio)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import JobExecutionError, JobStatus, MapFunction, StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies

pytestmark = pytest.mark.anyio


def _env(parallelism: int) -> StreamExecutionEnvironment:
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


async def test_word_count(anyio_backend: str) -> None:
    env = _env(4)
    lines = ["to be or not to be", "that is the question"] * 20
    out: list[Any] = []
    (
        env.from_collection(lines)
        .flat_map(lambda line: [(w, 1) for w in line.split()])
        .key_by(lambda t: t[0])
        .sum(1)
        .add_sink(out.append)
    )
    await env.execute("word count")
    final: dict[str, int] = {}
    for word, n in out:
        final[word] = max(final.get(word, 0), n)
    assert final == dict(Counter(w for line in lines for w in line.split()))


async def test_async_map_and_collect(anyio_backend: str) -> None:
    async def slow_double(x: int) -> int:
        await anyio.sleep(0)
        return 2 * x

    env = _env(2)
    got = [x async for x in env.from_sequence(1, 300).map(slow_double).execute_and_collect()]
    assert sorted(got) == [2 * x for x in range(1, 301)]


async def test_failure_and_cancel(anyio_backend: str) -> None:
    def boom(x: int) -> int:
        if x == 77:
            raise RuntimeError("77")
        return x

    env = _env(2)
    env.from_sequence(1, 1000).map(boom).print()
    with pytest.raises(JobExecutionError, match="RuntimeError: 77"):
        await env.execute("fails")

    running = anyio.Event()

    async def forever(x: int) -> int:
        running.set()
        await anyio.sleep(3600)
        return x

    env = _env(2)
    env.from_sequence(1, 10).map(forever).print()
    client = await env.execute_async("cancelled")
    await running.wait()  # cancel a job that is really running, not one still starting
    await client.cancel()
    assert client.status is JobStatus.CANCELED


async def test_checkpointing_and_restart(anyio_backend: str, tmp_path: Path) -> None:
    env = _env(2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))

    class FailOnceAfterACheckpoint(MapFunction):
        """Fails once, when told a checkpoint completed: so there is one to restore,
        whatever the timing (a class attribute: the function is copied per subtask and
        attempt)."""

        fired = False

        def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
            if not FailOnceAfterACheckpoint.fired:
                FailOnceAfterACheckpoint.fired = True
                raise RuntimeError(f"planted failure after checkpoint {checkpoint_id}")

        def map(self, value: int) -> int:
            return value

    async def trickle(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    out: list[Any] = []
    (
        env.from_sequence(0, 3999)
        .map(trickle)
        .key_by(lambda i: i % 10)
        .map(FailOnceAfterACheckpoint())
        .map(lambda i: (i % 10, 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("count")
        .add_sink(out.append)
    )
    result = await env.execute("restarting")
    assert result.restart_count == 1
    final: dict[int, int] = {}
    for key, n in out:
        final[key] = max(final.get(key, 0), n)
    assert final == {k: 400 for k in range(10)}
    assert result.checkpoints_completed >= 1
    # Final counts are the same after a restart from scratch: check it restored.
    assert result.restored_from is not None
    assert Path(result.restored_from).parent == tmp_path / "restarting"
