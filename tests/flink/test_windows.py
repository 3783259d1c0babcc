"""Windows on Flink: the same jobs on streamlet's runtime and on Flink's mini-cluster give
the same windows, the same contents and the same late data."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from streamlet import (
    AggregateFunction,
    AllWindowFunction,
    CountTrigger,
    EventTimeSessionWindows,
    GlobalWindows,
    KeyedProcessFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    SlidingEventTimeWindows,
    Time,
    Trigger,
    TriggerResult,
    TumblingEventTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
    WindowFunction,
)
from streamlet.state import ReducingStateDescriptor
from tests.flink.runners import both

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def _same(local, flink) -> list:
    """Assert equal multisets (compared by repr: records may hold unhashable lists)."""
    assert Counter(map(repr, flink)) == Counter(map(repr, local))
    return sorted(flink, key=repr)


def _stamped(env, data, bound=0):
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(bound).with_timestamp_assigner(
        lambda value, _ts: value[1]
    )
    return env.from_collection(data).assign_timestamps_and_watermarks(strategy)


#: An out-of-orderness bound beyond every test's time span: no window is complete before
#: the input ends, whenever the periodic watermarks come, so the results are the same on
#: every run (late data depends on when a periodic watermark is emitted, which is timing).
SPAN = 1000


class _Stamps(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield (value, ctx.timestamp())


def test_tumbling_event_time_reduce_with_bounded_out_of_orderness() -> None:
    data = [("a", 2), ("b", 4), ("a", 12), ("a", 3), ("b", 11), ("a", 25), ("a", 1), ("b", 13)]

    def build(env):
        return (
            _stamped(env, data, bound=SPAN)
            .key_by(lambda t: t[0])
            .window(TumblingEventTimeWindows.of(10))
            .reduce(lambda x, y: (x[0], x[1] + y[1]))
            .key_by(lambda t: t[0])
            .process(_Stamps())
        )

    local, flink = both(build, parallelism=1)
    _same(local, flink)
    # Each result carries its window's max_timestamp() (end - 1) on both runners.
    assert sorted(flink) == [
        (("a", 6), 9),
        (("a", 12), 19),
        (("a", 25), 29),
        (("b", 4), 9),
        (("b", 24), 19),
    ]


class _Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value[1], accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class _WithWindow(WindowFunction):
    def apply(self, key, window, inputs):
        yield (key, window.start, window.end, list(inputs))


def test_sliding_window_aggregate_with_a_window_function() -> None:
    data = [("a", 1), ("a", 4), ("b", 6), ("a", 7), ("a", 12)]

    def build(env):
        return (
            _stamped(env, data, bound=SPAN)
            .key_by(lambda t: t[0])
            .window(SlidingEventTimeWindows.of(10, 5))
            .aggregate(_Average(), _WithWindow())
        )

    local, flink = both(build)
    _same(local, flink)
    assert sorted(flink) == [
        ("a", -5, 5, [2.5]),
        ("a", 0, 10, [4.0]),
        ("a", 5, 15, [9.5]),
        ("a", 10, 20, [12.0]),
        ("b", 0, 10, [6.0]),
        ("b", 5, 15, [6.0]),
    ]


class _Session(ProcessWindowFunction):
    def open(self, runtime_context):
        self.name = "session"

    def process(self, key, context, elements):
        window = context.window()
        sessions = context.global_state().get_state(ValueStateDescriptor("n", default_value=0))
        sessions.update(sessions.value() + 1)
        yield (
            self.name,
            key,
            type(window).__name__,
            window.start,
            window.end,
            sorted(e[1] for e in elements),
            sessions.value(),
        )


def test_session_windows_process_function_reads_the_window() -> None:
    data = [("a", 1), ("a", 3), ("b", 2), ("a", 20), ("a", 24), ("b", 30), ("a", 8)]

    def build(env):
        static = (
            _stamped(env, data, bound=SPAN)
            .key_by(lambda t: t[0])
            .window(EventTimeSessionWindows.with_gap(5))
            .process(_Session())
        )
        dynamic = (
            _stamped(env, data, bound=SPAN)
            .key_by(lambda t: t[0])
            .window(EventTimeSessionWindows.with_dynamic_gap(lambda t: 2 if t[0] == "a" else 50))
            .process(_Session())
        )
        return static.map(lambda r: ("static", r)).union(dynamic.map(lambda r: ("dynamic", r)))

    local, flink = both(build)
    result = _same(local, flink)
    static = sorted(r for kind, r in result if kind == "static")
    # ("a", 8) joins [1, 8) and touches nothing else: one session [1, 13).
    assert static == [
        ("session", "a", "TimeWindow", 1, 13, [1, 3, 8], 1),
        ("session", "a", "TimeWindow", 20, 29, [20, 24], 2),
        ("session", "b", "TimeWindow", 2, 7, [2], 1),
        ("session", "b", "TimeWindow", 30, 35, [30], 2),
    ]
    dynamic = sorted(r[1:6] for kind, r in result if kind == "dynamic")
    assert dynamic == [
        ("a", "TimeWindow", 1, 5, [1, 3]),
        ("a", "TimeWindow", 8, 10, [8]),
        ("a", "TimeWindow", 20, 22, [20]),
        ("a", "TimeWindow", 24, 26, [24]),
        ("b", "TimeWindow", 2, 80, [2, 30]),
    ]


class _WindowRepr(WindowFunction):
    def apply(self, key, window, inputs):
        yield (key, repr(window), list(inputs))


class _Elements(AllWindowFunction):
    def apply(self, window, inputs):
        yield (type(window).__name__, sorted(inputs))


class _Tagged(ProcessWindowFunction):
    def process(self, key, context, elements):
        yield (key, repr(context.window()), sorted(elements))


def test_count_windows_and_global_windows_with_a_count_trigger() -> None:
    def build(env):
        numbers = env.from_collection(list(range(1, 12)))
        counted = (
            numbers.key_by(lambda x: x % 2)
            .count_window(2)
            .reduce(lambda x, y: x + y, _WindowRepr())
            .map(lambda r: ("count", r))
        )
        triggered = (
            numbers.key_by(lambda x: x % 2)
            .window(GlobalWindows.create())
            .trigger(CountTrigger.of(3))
            .process(_Tagged())
            .map(lambda r: ("global", r))
        )
        everything = numbers.count_window_all(4).apply(_Elements()).map(lambda r: ("all", r))
        return counted.union(triggered, everything)

    local, flink = both(build, parallelism=1)
    result = _same(local, flink)
    assert ("count", (1, "CountWindow(id=0)", [4])) in result  # 1 + 3
    # GlobalWindows keep everything: the trigger fires again with all elements so far.
    assert ("global", (1, "GlobalWindow()", [1, 3, 5, 7, 9, 11])) in result
    assert [r for kind, r in result if kind == "all"] == [
        ("CountWindow", [1, 2, 3, 4]),
        ("CountWindow", [5, 6, 7, 8]),
    ]


_EARLY = ReducingStateDescriptor("early", lambda a, b: a + b)


class _EveryTwoAndAtTheEnd(Trigger):
    """A user trigger: an early firing every two elements, and one at the window's end."""

    def on_element(self, element, timestamp, window, ctx):
        ctx.register_event_time_timer(window.max_timestamp())
        count = ctx.get_partitioned_state(_EARLY)
        count.add(1)
        if count.get() % 2 == 0:
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return (
            TriggerResult.FIRE_AND_PURGE
            if time == window.max_timestamp()
            else (TriggerResult.CONTINUE)
        )

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def clear(self, window, ctx):
        ctx.get_partitioned_state(_EARLY).clear()
        ctx.delete_event_time_timer(window.max_timestamp())


class _All(ProcessAllWindowFunction):
    def process(self, context, elements):
        window = context.window()
        yield (window.start, window.end, sorted(e[1] for e in elements))


def test_custom_trigger_and_window_all() -> None:
    data = [("a", 1), ("a", 2), ("a", 3), ("b", 4), ("a", 5), ("a", 15), ("a", 30)]

    def build(env):
        stamped = _stamped(env, data, bound=SPAN)
        custom = (
            stamped.key_by(lambda t: t[0])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
            .trigger(_EveryTwoAndAtTheEnd())
            .process(_Tagged())
        )
        whole = stamped.window_all(TumblingEventTimeWindows.of(10)).process(_All())
        return custom.map(lambda r: ("custom", r)).union(whole.map(lambda r: ("all", r)))

    local, flink = both(build, parallelism=1)  # one subtask: a known element order
    result = _same(local, flink)
    a_first = [
        r[2]
        for kind, r in result
        if kind == "custom" and r[:2] == ("a", "TimeWindow(start=0, end=10)")
    ]
    # Early firings at the 2nd and 4th element, then the end of the window (and purge).
    assert sorted(a_first, key=len) == [
        [("a", 1), ("a", 2)],
        [("a", 1), ("a", 2), ("a", 3), ("a", 5)],
        [("a", 1), ("a", 2), ("a", 3), ("a", 5)],
    ]
    assert sorted(r for kind, r in result if kind == "all") == [
        (0, 10, [1, 2, 3, 4, 5]),
        (10, 20, [15]),
        (30, 40, [30]),
    ]


def _readme_windows_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Windows\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_windows_example_runs_on_flink() -> None:
    block = _readme_windows_block()
    job, _, rest = block.partition("counts: list = []")
    expected = ast.literal_eval(re.search(r"assert sorted\(counts\) == (.*)", rest).group(1))
    namespace: dict = {"__name__": "readme_windows"}
    exec(compile(job, "README.md (Windows)", "exec"), namespace)
    assert sorted(namespace["per_minute"].execute_and_collect(runner="flink")) == expected
