"""Backpressure bounds memory: with a slow sink, records in flight never exceed what the
channel capacities (and the sources' bounded read-ahead) allow. Measured by counting, not
by timing."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from streamlet import Sink, SinkWriter, StreamExecutionEnvironment
from streamlet.runtime.subtask import _SOURCE_BATCHES

pytestmark = pytest.mark.asyncio

BATCH = 16
CAPACITY = 2
RECORDS = 20_000


class Progress:
    read = 0
    written = 0
    max_gap = 0


class CountingMap:
    """Counts records leaving the source chain (before the slow consumer)."""

    def map(self, value: int) -> int:
        Progress.read += 1
        return value


class SlowSink(Sink):
    def create_writer(self) -> SinkWriter:
        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                Progress.written += len(records)
                Progress.max_gap = max(Progress.max_gap, Progress.read - Progress.written)
                await anyio.sleep(0.0005)

        return Writer()


async def test_a_slow_sink_bounds_records_in_flight_by_channel_capacity() -> None:
    Progress.read = Progress.written = Progress.max_gap = 0
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_batch_size(BATCH).set_channel_capacity(CAPACITY)
    (
        env.from_sequence(1, RECORDS)
        .map(CountingMap())
        .rebalance()
        .map(lambda x: x)
        .set_parallelism(2)
        .sink_to(SlowSink())
        .set_parallelism(2)
    )
    client = await env.execute_async("backpressure")
    peaks: list[int] = []
    while not client.done:
        stats = client.channel_statistics()
        if stats:
            peaks.append(sum(s.records_queued for s in stats))
            for s in stats:
                assert s.buffers_queued <= CAPACITY
                assert s.records_queued <= CAPACITY * BATCH
        await anyio.sleep(0.001)
    await client.wait()
    assert Progress.written == RECORDS
    # Between the counting map and the sinks: 2 channels of CAPACITY buffers of at most BATCH
    # records, the output writer's partial buffers (< BATCH per channel), and a batch in the
    # hands of each downstream subtask. The source's read-ahead happens before the count.
    channels = 2
    bound = channels * CAPACITY * BATCH + channels * BATCH + 2 * BATCH * _SOURCE_BATCHES
    assert 0 < Progress.max_gap <= bound, (Progress.max_gap, bound)
    assert max(peaks) <= channels * CAPACITY * BATCH
    assert max(peaks) > 0  # the channels really filled up: the sink was the bottleneck
