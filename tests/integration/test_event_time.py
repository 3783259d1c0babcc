"""Event time end to end: timestamps, watermarks through channels, timers, side outputs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import anyio
import pytest

from streamlet import (
    KeyedProcessFunction,
    ManualClock,
    OutputTag,
    ProcessFunction,
    StreamExecutionEnvironment,
    TimeDomain,
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
)
from streamlet.state import ValueStateDescriptor
from streamlet.testing import TestingSource

pytestmark = pytest.mark.anyio

MIN = -(2**63)
MAX = 2**63 - 1


def _env(parallelism: int) -> StreamExecutionEnvironment:
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


def _by_ts(strategy: WatermarkStrategy) -> WatermarkStrategy:
    return strategy.with_timestamp_assigner(lambda value, _ts: value[1])


class FireAt(KeyedProcessFunction):
    """Registers an event-time timer at each record's timestamp + 10; reports each firing
    with the watermark it saw."""

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        timestamp = ctx.timestamp()
        assert timestamp is not None
        ctx.timer_service().register_event_time_timer(timestamp + 10)
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        assert ctx.time_domain() is TimeDomain.EVENT_TIME
        assert ctx.timestamp() == timestamp
        yield (ctx.get_current_key(), timestamp, ctx.timer_service().current_watermark())


@pytest.mark.parametrize("parallelism", [1, 4])
async def test_bounded_job_fires_every_event_time_timer_once_in_order(
    anyio_backend: str, parallelism: int
) -> None:
    records = [(f"k{i % 7}", i * 3) for i in range(300)]
    env = _env(parallelism)
    out: list[Any] = []
    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(_by_ts(WatermarkStrategy.for_monotonous_timestamps()))
        .rebalance()
        .map(lambda r: r)
        .key_by(lambda r: r[0])
        .process(FireAt())
        .add_sink(out.append)
    )
    await env.execute("timers")
    expected = {(key, ts + 10) for key, ts in records}
    assert sorted((k, t) for k, t, _ in out) == sorted(expected)  # each exactly once
    for _, timestamp, watermark in out:
        assert watermark >= timestamp  # fired only once the watermark reached it
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, timestamp, _ in out:
        per_key[key].append(timestamp)
    assert all(ts == sorted(ts) for ts in per_key.values())


class Punctuated(WatermarkGenerator):
    """A watermark right after every event: ``ts - 1``."""

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(event_timestamp - 1))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


class Sessions(KeyedProcessFunction):
    """Closes a key's session after a gap of 50 ms of event time without records."""

    GAP = 50

    def open(self, runtime_context: Any) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))
        self.end = runtime_context.get_state(ValueStateDescriptor("end"))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        timers = ctx.timer_service()
        old_end = self.end.value()
        if old_end is not None:
            timers.delete_event_time_timer(old_end)
        timestamp = ctx.timestamp()
        assert timestamp is not None
        end = timestamp + self.GAP
        timers.register_event_time_timer(end)
        self.end.update(end)
        self.count.update((self.count.value() or 0) + 1)
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        yield (ctx.get_current_key(), self.count.value(), timestamp)
        self.count.clear()
        self.end.clear()


async def test_sessions_close_after_the_gap_and_deleted_timers_never_fire(
    anyio_backend: str,
) -> None:
    # Key "a": a burst at 0..40 (one session), then one at 1000..1020 (another).
    records = [("a", t) for t in range(0, 41, 10)] + [("a", t) for t in range(1000, 1021, 10)]
    records += [("b", 500)]
    env = _env(2)
    out: list[Any] = []
    (
        # One record per batch, and a watermark after each (punctuated): the watermark
        # passes 90 before the second burst of "a" comes.
        env.from_source(
            TestingSource(sorted(records, key=lambda r: r[1]), batch_size=1),
            _by_ts(WatermarkStrategy.for_generator(Punctuated)),
        )
        .set_parallelism(1)  # one watermark generator: no watermark lags behind another
        .key_by(lambda r: r[0])
        .process(Sessions())
        .add_sink(out.append)
    )
    await env.execute("sessions")
    assert sorted(out) == [("a", 3, 1070), ("a", 5, 90), ("b", 1, 550)]


class Splitter(ProcessFunction):
    LATE = OutputTag("odd")

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        if value[1] % 2:
            yield self.LATE, (value[0], ctx.timestamp())
        else:
            yield value


async def test_side_outputs_carry_timestamps_and_leave_the_main_output(
    anyio_backend: str,
) -> None:
    env = _env(2)
    main: list[Any] = []
    side: list[Any] = []
    stream = (
        env.from_collection([("x", i) for i in range(20)])
        .assign_timestamps_and_watermarks(_by_ts(WatermarkStrategy.for_monotonous_timestamps()))
        .process(Splitter())
    )
    stream.add_sink(main.append)
    stream.get_side_output(Splitter.LATE).add_sink(side.append)
    await env.execute("side outputs")
    assert sorted(main) == [("x", i) for i in range(0, 20, 2)]
    assert sorted(side) == [("x", i) for i in range(1, 20, 2)]


async def test_timers_on_a_non_keyed_stream_are_refused_at_build_time(anyio_backend: str) -> None:
    env = _env(1)
    with pytest.raises(TypeError, match="key_by"):
        env.from_collection([1]).process(FireAt())


class ProcessingTimeAlarm(KeyedProcessFunction):
    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        now = ctx.timer_service().current_processing_time()
        ctx.timer_service().register_processing_time_timer(now + 100)
        return [("registered", value, now)]

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        assert ctx.time_domain() is TimeDomain.PROCESSING_TIME
        return [("fired", ctx.get_current_key(), timestamp)]


async def test_processing_time_timers_fire_when_the_injected_clock_passes_them(
    anyio_backend: str,
) -> None:
    clock = ManualClock(1_000)
    env = _env(1).set_processing_time_clock(clock)
    out: list[Any] = []
    registered = anyio.Event()

    def sink(record: Any) -> None:
        out.append(record)
        if record[0] == "registered" and len(out) == 2:
            registered.set()

    from streamlet import PushSource

    source = PushSource()
    env.from_source(source).key_by(lambda v: v).process(ProcessingTimeAlarm()).add_sink(sink)
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("alarms", task_group=tg)
        await source.push("a")
        await source.push("b")
        with anyio.fail_after(5):
            await registered.wait()
        assert [r[0] for r in out] == ["registered", "registered"]
        clock.set_time(1_099)
        # A record pushed now is handled after the subtask looked at the clock at 1099:
        # once it is through, the timers at 1100 had their chance to fire too early.
        await source.push("c")
        with anyio.fail_after(5):
            while len(out) < 3:
                await anyio.sleep(0.001)
        assert [r[0] for r in out] == ["registered"] * 3  # not due yet
        clock.set_time(1_100)
        with anyio.fail_after(5):
            while len(out) < 5:
                await anyio.sleep(0.001)
        await source.close()
        await client.wait()
    assert sorted(r for r in out if r[0] == "fired") == [("fired", "a", 1100), ("fired", "b", 1100)]


class SeenWatermark(ProcessFunction):
    """Tags each record with the watermark this operator had when the record came."""

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        yield (value, ctx.timestamp(), ctx.timer_service().current_watermark())


@pytest.mark.parametrize("shuffle", [False, True])
async def test_what_timers_emit_arrives_before_the_watermark_that_fired_them(
    anyio_backend: str, shuffle: bool
) -> None:
    records = [(f"k{i % 5}", i * 7) for i in range(200)]
    env = _env(2)
    out: list[Any] = []
    fired = (
        env.from_source(
            TestingSource(records, batch_size=3),
            _by_ts(WatermarkStrategy.for_generator(Punctuated)),
        )
        .set_parallelism(1)
        .key_by(lambda r: r[0])
        .process(FireAt())
    )
    (fired.rebalance() if shuffle else fired).process(SeenWatermark()).add_sink(out.append)
    await env.execute("order")
    assert len(out) == len(records)
    for _value, timestamp, watermark in out:
        # The timer fired when the watermark passed its timestamp; downstream, its output
        # must come before that watermark does (Flink forwards a watermark after its timers).
        assert watermark < timestamp
