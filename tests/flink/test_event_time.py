"""Watermark strategies and event-time timers on Flink: the same firings as on streamlet."""

from __future__ import annotations

from collections import Counter

import pytest

from streamlet import KeyedProcessFunction, StreamExecutionEnvironment, WatermarkStrategy

pytestmark = pytest.mark.slow


class _Deadline(KeyedProcessFunction):
    def process_element(self, value, ctx):
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
        yield ("element", value[0], ctx.timestamp())

    def on_timer(self, timestamp, ctx):
        yield ("timer", ctx.get_current_key(), timestamp)


def test_bounded_out_of_orderness_and_event_time_timers() -> None:
    data = [("a", 5), ("b", 3), ("a", 20), ("b", 1), ("a", 7)]
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(5).with_timestamp_assigner(
        lambda value, _ts: value[1]
    )
    results = {}
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(1)
        stream = (
            env.from_collection(data)
            .assign_timestamps_and_watermarks(strategy)
            .key_by(lambda t: t[0])
            .process(_Deadline())
        )
        if runner == "local":
            with stream.execute_and_collect() as records:
                results[runner] = list(records)
        else:
            results[runner] = stream.execute_and_collect(runner="flink")
    assert Counter(results["flink"]) == Counter(results["local"])
    assert ("timer", "a", 30) in results["flink"]
