"""A subtask adds no latency when it is idle: what reaches it is forwarded at once.

Partial output buffers flush when the subtask has no input left, not only at the buffer
timeout (which exists for subtasks that never run out of input). The buffer timeout here is
an hour, so a record that waited for it would fail the test's deadline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import PushSource, Sink, SinkWriter, StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000


class ArrivalSink(Sink):
    """Collects what every subtask writes; ``wait_for(n)`` returns once n records arrived."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self._arrived = anyio.Event()

    def create_writer(self) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.records.extend(records)
                sink._arrived.set()

        return Writer()

    async def wait_for(self, count: int) -> None:
        while len(self.records) < count:
            await self._arrived.wait()
            self._arrived = anyio.Event()


def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0], a[1] + b[1])


@pytest.mark.parametrize("checkpoints", [False, True], ids=["no-checkpoints", "checkpoints"])
async def test_a_record_pushed_into_an_idle_job_reaches_the_sink_without_the_timeout(
    checkpoints: bool, tmp_path: Path
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(4)
    env.set_buffer_timeout(HOUR_MS)
    if checkpoints:
        env.enable_checkpointing(HOUR_MS, CheckpointingMode.EXACTLY_ONCE)
        env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path)
    source = PushSource()
    sink = ArrivalSink()
    (
        env.from_source(source)
        .map(lambda i: (i % 7, 1))
        .key_by(lambda pair: pair[0])
        .reduce(add)
        .sink_to(sink)
    )
    client = await env.execute_async("idle job")
    # One record at a time, each into a job that has gone idle: the source's rebalance
    # and the key_by reach every map and keyed subtask over these pushes.
    for i in range(12):
        await source.push(i)
        with anyio.fail_after(10):
            await sink.wait_for(i + 1)
    source.end()
    with anyio.fail_after(10):
        await client.wait()
    assert sorted(sink.records) == sorted(
        (k, n) for k in range(7) for n in range(1, len(range(k, 12, 7)) + 1)
    )


def test_the_lowered_switch_interval_never_outlasts_its_job() -> None:
    import sys

    from streamlet import StreamExecutionEnvironment
    from streamlet.runtime.subtask import _hand_over_gil

    before = sys.getswitchinterval()
    _hand_over_gil(1)  # worker threads busy: lowered
    assert sys.getswitchinterval() < before
    _hand_over_gil(0)  # none busy: restored
    assert sys.getswitchinterval() == before

    _hand_over_gil(1)  # lowered while a job ran, and the job ended before any thread did
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).print()
    env.execute("switch-interval")  # no running loop here: execute() runs the job itself
    assert sys.getswitchinterval() == before
