"""A KeyedProcessFunction with every state kind, event-time timers and a side output, on
streamlet and on Flink: equal results."""

from __future__ import annotations

from collections import Counter

import pytest

from streamlet import (
    AggregatingStateDescriptor,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    OutputTag,
    ReducingStateDescriptor,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)

pytestmark = pytest.mark.slow

LATE = OutputTag("big")


class _Average:
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, acc):
        return (acc[0] + value, acc[1] + 1)

    def get_result(self, acc):
        return acc[0] / acc[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class _EveryState(KeyedProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", default_value=0))
        self.seen = runtime_context.get_list_state(ListStateDescriptor("seen"))
        self.by_word = runtime_context.get_map_state(MapStateDescriptor("by_word"))
        self.total = runtime_context.get_reducing_state(
            ReducingStateDescriptor("total", lambda a, b: a + b)
        )
        self.avg = runtime_context.get_aggregating_state(
            AggregatingStateDescriptor("avg", _Average())
        )

    def process_element(self, value, ctx):
        word, n = value
        self.count.update(self.count.value() + 1)
        self.seen.add(n)
        # A tuple map key: the Flink runner stores map keys as strings (see _MapState).
        key = (word, n % 2)
        self.by_word.put(key, (self.by_word.get(key) or 0) + 1)
        self.total.add(n)
        self.avg.add(n)
        if self.count.value() == 1:
            ctx.timer_service().register_event_time_timer(1000)
        if n > 8:
            yield LATE, (word, n)

    def on_timer(self, timestamp, ctx):
        yield (
            ctx.get_current_key(),
            self.count.value(),
            sorted(self.seen.get()),
            sorted(self.by_word.items()),
            self.total.get(),
            self.avg.get(),
            timestamp,
        )


def _job(env):
    data = [("a", i) for i in range(1, 6)] + [("b", i) for i in range(4, 11)] + [("a", 9)]
    processed = env.from_collection(data).key_by(lambda t: t[0]).process(_EveryState())
    return processed, processed.get_side_output(LATE)


def test_every_state_kind_timers_and_side_output() -> None:
    results = {}
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        main, side = _job(env)
        both = main.map(lambda r: ("main", r)).union(side.map(lambda r: ("side", r)))
        if runner == "local":
            with both.execute_and_collect() as records:
                results[runner] = list(records)
        else:
            results[runner] = both.execute_and_collect(runner="flink")
    assert Counter(map(repr, results["flink"])) == Counter(map(repr, results["local"]))
    mains = sorted(r for kind, r in results["flink"] if kind == "main")
    assert mains[0][:2] == ("a", 6)
    assert mains[0][3] == [(("a", 0), 2), (("a", 1), 4)]
