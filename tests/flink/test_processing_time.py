"""Processing time on Flink: timers of keyed process functions and processing-time windows.

Both runners drop the processing-time timers still pending when a bounded input ends
(Flink 2.3 quiesces an operator's processing-time service before finishing it; streamlet's
runtime does the same), so whether a timer due a few ms ahead fires depends on how long the
job happens to run. These tests keep to what is deterministic: timers far ahead never fire,
count triggers fire processing-time windows by element count, and a window of 2**40 ms
(about 35 years) holds every element of a run until 2039.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from streamlet import (
    CountTrigger,
    KeyedProcessFunction,
    ProcessingTimeSessionWindows,
    ProcessWindowFunction,
    TimeDomain,
    TumblingProcessingTimeWindows,
    ValueStateDescriptor,
)
from tests.flink.runners import both

pytestmark = pytest.mark.slow

HOUR = 3_600_000


class _Deadlines(KeyedProcessFunction):
    """Per key, at its first element: a timer an hour ahead, and one two hours ahead that
    is deleted at once; every element reports the processing time it saw."""

    def open(self, runtime_context):
        self.first = runtime_context.get_state(ValueStateDescriptor("first", default_value=True))

    def process_element(self, value, ctx):
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        if self.first.value():
            self.first.update(False)
            timers.register_processing_time_timer(now + HOUR)
            timers.register_processing_time_timer(now + 2 * HOUR)
            timers.delete_processing_time_timer(now + 2 * HOUR)
        yield ("element", value, now)

    def on_timer(self, timestamp, ctx):
        yield ("timer", ctx.get_current_key(), timestamp, ctx.time_domain())


def test_pending_processing_time_timers_do_not_fire_at_the_end_of_input() -> None:
    start = int(time.time() * 1000)

    def build(env):
        return env.from_collection(list(range(6))).key_by(lambda x: x % 3).process(_Deadlines())

    local, flink = both(build)
    end = int(time.time() * 1000)
    for records in (local, flink):
        assert sorted(r[1] for r in records) == list(range(6))  # elements only, no timer
        assert all(r[0] == "element" and start <= r[2] <= end for r in records)


class _Count(ProcessWindowFunction):
    def process(self, key, context, elements):
        window = context.window()
        yield (key, window.start, window.end, sorted(elements))


def test_processing_time_windows_with_a_count_trigger() -> None:
    size = 2**40  # [2**40, 2**41): every run until 2039 falls into one window

    def build(env):
        numbers = env.from_collection(list(range(10)))
        counted = (
            numbers.key_by(lambda x: x % 2)
            .window(TumblingProcessingTimeWindows.of(size))
            .trigger(CountTrigger.of(2))
            .process(_Count())
        )
        # The default ProcessingTimeTrigger fires at the window's end, decades away: the
        # end of input drops its timer, so nothing is emitted, on either runner.
        pending = (
            numbers.key_by(lambda x: x % 2)
            .window(TumblingProcessingTimeWindows.of(size))
            .reduce(lambda a, b: a + b)
        )
        # Sessions an hour long: each key's elements merge into one session, whose count
        # trigger's state (a reducing state) is merged with it.
        sessions = (
            numbers.key_by(lambda x: x % 2)
            .window(ProcessingTimeSessionWindows.with_gap(HOUR))
            .trigger(CountTrigger.of(3))
            .apply(lambda key, window, inputs: [(key, sorted(inputs))])
        )
        return counted.map(lambda r: ("counted", r)).union(
            pending.map(lambda r: ("pending", r)), sessions.map(lambda r: ("session", r))
        )

    local, flink = both(build, parallelism=1)
    assert Counter(map(repr, flink)) == Counter(map(repr, local))
    assert not [r for kind, r in flink if kind == "pending"]
    assert sorted(r for kind, r in flink if kind == "session") == [
        (0, [0, 2, 4]),
        (1, [1, 3, 5]),
    ]
    # Five elements per key: firings at the 2nd and 4th, each over all the window holds.
    assert sorted(r for kind, r in flink if kind == "counted") == [
        (0, size, 2 * size, [0, 2]),
        (0, size, 2 * size, [0, 2, 4, 6]),
        (1, size, 2 * size, [1, 3]),
        (1, size, 2 * size, [1, 3, 5, 7]),
    ]


class _Seen(KeyedProcessFunction):
    def process_element(self, value, ctx):
        return ()

    def on_timer(self, timestamp, ctx):
        yield (timestamp, ctx.time_domain(), ctx.get_current_key())


class _FlinkContext:
    """The part of PyFlink's on_timer context the adapter reads."""

    def __init__(self, domain: Any) -> None:
        self._domain = domain

    def time_domain(self) -> Any:
        return self._domain

    def get_current_key(self) -> Any:
        return "k"


def test_on_timer_sees_streamlets_time_domain() -> None:
    from pyflink.datastream import TimeDomain as FlinkTimeDomain

    from streamlet.flink import _functions as fns

    process = fns.KeyedProcess(_Seen(), [])
    fired = list(process.on_timer(7, _FlinkContext(FlinkTimeDomain.PROCESSING_TIME)))
    assert fired == [(7, TimeDomain.PROCESSING_TIME, "k")]
    assert fired[0][1] is TimeDomain.PROCESSING_TIME
    fired = list(process.on_timer(8, _FlinkContext(FlinkTimeDomain.EVENT_TIME)))
    assert fired[0][1] is TimeDomain.EVENT_TIME
