"""A busy job does not starve worker threads (checkpoint writes, the write-ahead log, a
sink's file I/O): they get the GIL while subtasks process records. Measured in records
processed meanwhile, not in time."""

from __future__ import annotations

import os
from typing import Any

import anyio
import anyio.to_thread
import pytest

from streamlet import Sink, SinkWriter, StreamExecutionEnvironment

pytestmark = pytest.mark.anyio

#: Each ``os.stat`` drops the GIL and must win it back from the busy event loop.
GIL_STEPS = 200
#: Far more than the job processes while the thread takes its steps (about a hundred
#: thousand records when each step waits one yield of the subtask); a starved thread
#: waits for the whole stream.
RECORDS = 50_000_000


class CountingSink(Sink):
    def __init__(self) -> None:
        self.count = 0

    def create_writer(self) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.count += len(records)

        return Writer()


def many_gil_steps() -> None:
    for _ in range(GIL_STEPS):
        os.stat(".")


async def test_a_worker_thread_finishes_while_a_fast_job_runs() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    sink = CountingSink()
    env.from_sequence(1, RECORDS).map(lambda x: x + 1).rebalance().filter(bool).sink_to(sink)
    client = await env.execute_async("busy")
    try:
        while sink.count == 0:
            await anyio.sleep(0.001)
        before = sink.count
        await anyio.to_thread.run_sync(many_gil_steps)
        meanwhile = sink.count - before
    finally:
        await client.cancel()
    assert sink.count < RECORDS, "the thread only ran once the job was over"
    assert meanwhile < RECORDS // 4, meanwhile
