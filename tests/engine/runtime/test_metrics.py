"""The runtime's task I/O counters: records in and out per operator and writer, idle and
backpressured time measured where a subtask waits, the watermarks that passed, and
nothing counted with metrics off."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from streamlet import Sink, SinkWriter, StreamExecutionEnvironment, WatermarkStrategy
from streamlet.api.configuration import Configuration
from streamlet.job.metrics import JobMetrics, backpressure_level
from streamlet.runtime.metrics import NO_WATERMARK
from streamlet.runtime.subtask import Subtask

pytestmark = pytest.mark.asyncio

RECORDS = 2_000


class GatedSink(Sink):
    """Writes nothing until ``gate`` is set: its input channel fills, the producer waits."""

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.written = 0

    def create_writer(self) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                await sink.gate.wait()
                sink.written += len(records)

        return Writer()


def _job(metrics: bool) -> tuple[StreamExecutionEnvironment, GatedSink]:
    config = Configuration().set_string("metrics.enabled", str(metrics).lower())
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_batch_size(16).set_channel_capacity(2)
    sink = GatedSink()
    (
        env.from_sequence(1, RECORDS)
        .name("Numbers")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
                lambda value, _ts: value
            )
        )
        .name("Stamp")
        .rebalance()
        .map(lambda x: x)
        .name("Same")
        .sink_to(sink)
        .name("Gated")
    )
    return env, sink


async def _run(metrics: bool) -> tuple[list[Subtask], JobMetrics]:
    env, sink = _job(metrics)
    client = await env.execute_async("metered")
    runner = client._runner
    job_metrics = JobMetrics(runner)
    ended: list[Subtask] = []
    runner.attempt_end_listeners.append(lambda deployment: ended.extend(deployment.subtasks))
    with anyio.fail_after(20):
        while runner.deployment is None:
            await anyio.sleep(0.001)
        # With metrics: until the source waits for room in the full channel (it is
        # backpressured right now).
        while metrics and not _backpressured(runner.deployment.subtasks[0]):
            await anyio.sleep(0.001)
    if metrics:
        reading = job_metrics.read()
        source = next(r for r in reading.subtasks if r.task["numRecordsIn"] == 0)
        assert source.task["backPressuredTimeMsPerSecond"] > 0
        assert source.task["buffers.outPoolUsage"] == 1.0  # its one channel is full
    sink.gate.set()
    await client.wait()
    return ended, job_metrics


async def test_counts_times_and_watermarks_of_a_finished_job() -> None:
    subtasks, job_metrics = await _run(metrics=True)
    source, consumer = subtasks
    assert source.times is not None and consumer.times is not None
    # The source waited for the gated sink; the sink's subtask waited for input at times.
    assert source.times.backpressured_s > 0
    assert consumer.times.idle_s > 0
    numbers, stamp = source.operators
    assert (numbers.records_in, numbers.records_out) == (0, RECORDS)
    assert (stamp.records_in, stamp.records_out) == (RECORDS, RECORDS)
    assert sum(w.records_out for w in source.writers) == RECORDS
    same, gated = consumer.operators
    assert (same.records_in, same.records_out, gated.records_in) == (RECORDS, RECORDS, RECORDS)
    # The end of input is the end of time: the last watermark is MAX.
    assert stamp.output_watermark == 2**63 - 1
    assert same.input_watermark == 2**63 - 1
    # The final figures stay readable once the job ended.
    reading = job_metrics.read()
    assert [r.task["numRecordsOut"] for r in reading.subtasks] == [RECORDS, 0]
    assert reading.subtasks[1].operators[same.ctx.operator_uid]["numRecordsIn"] == RECORDS


async def test_metrics_off_count_nothing() -> None:
    subtasks, _ = await _run(metrics=False)
    for subtask in subtasks:
        assert subtask.times is None
        assert all(w.records_out == 0 for w in subtask.writers)
        for chained in subtask.operators:
            assert (chained.records_in, chained.records_out) == (0, 0)
    # Watermarks are still stored (once per watermark, not per record): they are state
    # the operators keep anyway.
    assert subtasks[1].operators[0].input_watermark != NO_WATERMARK


def _backpressured(subtask: Subtask) -> bool:
    times = subtask.times
    return (
        times is not None
        and times.waiting_since is not None
        and (times.waiting_since[0] == "backpressured")
    )


def test_backpressure_levels_are_flinks() -> None:
    assert [backpressure_level(r) for r in (0.0, 0.1, 0.11, 0.5, 0.51, 1.0)] == [
        "ok",
        "ok",
        "low",
        "low",
        "high",
        "high",
    ]
