"""Watermark generators, idleness, strategies and the collector: exact values and errors."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP, MIN_TIMESTAMP, Duration, Time
from streamlet.operators.watermarks import (
    ACTIVE,
    IDLE,
    MAX_WATERMARK,
    AscendingTimestampsWatermarks,
    BoundedOutOfOrdernessWatermarks,
    NoWatermarksGenerator,
    TimestampAssigner,
    Watermark,
    WatermarkCollector,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStatus,
    WatermarkStrategy,
    WatermarksWithIdleness,
)


class FakeClock:
    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def periodic(generator: WatermarkGenerator) -> list[Watermark | WatermarkStatus]:
    """What one periodic emit of ``generator`` produces on a fresh collector."""
    out = WatermarkCollector()
    generator.on_periodic_emit(out)
    return out.take_events()


class RecordingOutput:
    """A WatermarkOutput that keeps every call, unfiltered."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def emit_watermark(self, watermark: Watermark) -> None:
        self.calls.append(watermark)

    def mark_idle(self) -> None:
        self.calls.append("idle")

    def mark_active(self) -> None:
        self.calls.append("active")


# -- events ---------------------------------------------------------------------------------


def test_watermark_and_status_are_frozen_values() -> None:
    assert Watermark(5) == Watermark(5)
    assert hash(Watermark(5)) == hash(Watermark(5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Watermark(5).timestamp = 6  # type: ignore[misc]
    assert MAX_WATERMARK == Watermark(MAX_WATERMARK_TIMESTAMP)
    assert Watermark.MAX_WATERMARK is MAX_WATERMARK
    assert IDLE == WatermarkStatus(True) and IDLE.is_idle() and not IDLE.is_active()
    assert ACTIVE == WatermarkStatus(False) and ACTIVE.is_active() and not ACTIVE.is_idle()
    assert IDLE != ACTIVE
    assert not hasattr(Watermark(1), "__dict__")


# -- built-in generators --------------------------------------------------------------------


def test_bounded_out_of_orderness_emits_min_before_any_event() -> None:
    gen = BoundedOutOfOrdernessWatermarks(100)
    out = RecordingOutput()
    gen.on_periodic_emit(out)
    assert out.calls == [Watermark(MIN_TIMESTAMP)]
    assert gen.current_watermark() == MIN_TIMESTAMP


@pytest.mark.parametrize("bound", [0, 1, 100, 5_000])
def test_bounded_out_of_orderness_is_max_minus_bound_minus_one(bound: int) -> None:
    gen = BoundedOutOfOrdernessWatermarks(bound)
    out = RecordingOutput()
    for ts in (1_000, 3_000, 2_000):
        gen.on_event("e", ts, out)
    assert out.calls == []  # periodic: nothing on events
    gen.on_periodic_emit(out)
    assert out.calls == [Watermark(3_000 - bound - 1)]


def test_bounded_out_of_orderness_never_decreases() -> None:
    gen = BoundedOutOfOrdernessWatermarks(10)
    out = RecordingOutput()
    emitted = []
    for ts in [50, 40, 100, 20, 100, 99, MIN_TIMESTAMP, 101]:
        gen.on_event(None, ts, out)
        gen.on_periodic_emit(out)
        emitted.append(out.calls[-1].timestamp)
    assert emitted == [39, 39, 89, 89, 89, 89, 89, 90]


def test_bounded_out_of_orderness_batch_hook_uses_the_batch_max() -> None:
    gen = BoundedOutOfOrdernessWatermarks(5)
    out = RecordingOutput()
    gen.on_events(["a", "b", "c"], [7, 30, 12], out)
    gen.on_events([], [], out)
    gen.on_periodic_emit(out)
    assert out.calls == [Watermark(24)]
    gen.on_events(["d"], [10], out)  # lower batch: no regression
    gen.on_periodic_emit(out)
    assert out.calls[-1] == Watermark(24)


def test_monotonous_is_max_minus_one() -> None:
    gen = AscendingTimestampsWatermarks()
    assert periodic(gen) == []  # MIN is not above the collector's start
    out = RecordingOutput()
    gen.on_event("x", 41, out)
    gen.on_periodic_emit(out)
    assert out.calls == [Watermark(40)]
    assert gen.out_of_orderness_ms == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_bounded_out_of_orderness_rejects_bad_bounds(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="out_of_orderness_ms"):
        BoundedOutOfOrdernessWatermarks(bad)


def test_no_watermarks_emits_nothing() -> None:
    gen = NoWatermarksGenerator()
    out = RecordingOutput()
    gen.on_event("x", 5, out)
    gen.on_events(["x"], [9], out)
    gen.on_periodic_emit(out)
    assert out.calls == []


def test_default_on_events_calls_on_event_per_record() -> None:
    class Punctuated(WatermarkGenerator):
        def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
            if event == "mark":
                output.emit_watermark(Watermark(event_timestamp))

        def on_periodic_emit(self, output: WatermarkOutput) -> None:
            pass

    out = RecordingOutput()
    Punctuated().on_events(["a", "mark", "b", "mark"], [1, 2, 3, 4], out)
    assert out.calls == [Watermark(2), Watermark(4)]
    with pytest.raises(ValueError):
        Punctuated().on_events(["a"], [1, 2], out)


# -- idleness -------------------------------------------------------------------------------


def test_idleness_marks_idle_only_after_timeout_from_first_quiet_check() -> None:
    clock = FakeClock(1_000)
    gen = WatermarksWithIdleness(BoundedOutOfOrdernessWatermarks(0), 100, clock)
    out = WatermarkCollector()
    gen.on_event("a", 50, out)
    gen.on_periodic_emit(out)  # activity since last check: delegates
    assert out.take_events() == [Watermark(49)]
    clock.now = 5_000
    gen.on_periodic_emit(out)  # first quiet check: starts the clock at 5_000, delegates
    assert out.take_events() == []
    assert not out.idle
    clock.now = 5_100
    gen.on_periodic_emit(out)  # exactly the timeout: not longer than it
    assert not out.idle
    clock.now = 5_101
    gen.on_periodic_emit(out)
    assert out.take_events() == [IDLE]
    assert out.idle


def test_idleness_marks_idle_once_per_stretch_and_recovers_on_events() -> None:
    clock = FakeClock(0)
    gen = WatermarksWithIdleness(BoundedOutOfOrdernessWatermarks(10), 50, clock)
    out = RecordingOutput()
    gen.on_periodic_emit(out)  # first quiet check (no events ever)
    clock.now = 51
    gen.on_periodic_emit(out)
    clock.now = 500
    gen.on_periodic_emit(out)
    assert out.calls == [Watermark(MIN_TIMESTAMP), "idle"]
    gen.on_events(["a"], [200], out)
    gen.on_periodic_emit(out)  # activity: delegates again
    assert out.calls[-1] == Watermark(189)
    clock.now = 600
    gen.on_periodic_emit(out)  # quiet check restarts the clock at 600
    clock.now = 650
    gen.on_periodic_emit(out)
    assert out.calls[-1] == Watermark(189)
    clock.now = 651
    gen.on_periodic_emit(out)
    assert out.calls[-1] == "idle"
    assert out.calls.count("idle") == 2


def test_idleness_collector_goes_active_with_the_next_watermark() -> None:
    clock = FakeClock(0)
    gen = WatermarksWithIdleness(AscendingTimestampsWatermarks(), 10, clock)
    out = WatermarkCollector()
    gen.on_event("a", 5, out)
    gen.on_periodic_emit(out)
    gen.on_periodic_emit(out)
    clock.now = 11
    gen.on_periodic_emit(out)
    assert out.take_events() == [Watermark(4), IDLE]
    gen.on_event("b", 9, out)
    gen.on_periodic_emit(out)
    assert out.take_events() == [ACTIVE, Watermark(8)]


def test_idleness_empty_batches_are_no_activity() -> None:
    clock = FakeClock(0)
    gen = WatermarksWithIdleness(NoWatermarksGenerator(), 10, clock)
    out = RecordingOutput()
    gen.on_periodic_emit(out)
    clock.now = 20
    gen.on_events([], [], out)
    gen.on_periodic_emit(out)
    assert out.calls == ["idle"]


def test_idleness_rejects_bad_arguments() -> None:
    clock = FakeClock()
    with pytest.raises(TypeError, match="generator must be a WatermarkGenerator"):
        WatermarksWithIdleness(object(), 10, clock)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idle_timeout_ms must be > 0"):
        WatermarksWithIdleness(NoWatermarksGenerator(), 0, clock)
    with pytest.raises(TypeError, match="idle_timeout_ms must be an int"):
        WatermarksWithIdleness(NoWatermarksGenerator(), 1.5, clock)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="now_ms must be a callable"):
        WatermarksWithIdleness(NoWatermarksGenerator(), 10, 5)  # type: ignore[arg-type]


# -- strategies -----------------------------------------------------------------------------


def test_strategies_make_fresh_generators_of_the_right_kind() -> None:
    clock = FakeClock()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(2))
    a = strategy.create_watermark_generator(clock)
    b = strategy.create_watermark_generator(clock)
    assert isinstance(a, BoundedOutOfOrdernessWatermarks) and a is not b
    assert a.out_of_orderness_ms == 2_000
    out = RecordingOutput()
    a.on_event("x", 10_000, out)
    a.on_periodic_emit(out)
    b.on_periodic_emit(out)
    assert out.calls == [Watermark(7_999), Watermark(MIN_TIMESTAMP)]

    mono = WatermarkStrategy.for_monotonous_timestamps().create_watermark_generator(clock)
    assert isinstance(mono, AscendingTimestampsWatermarks)
    none = WatermarkStrategy.no_watermarks().create_watermark_generator(clock)
    assert isinstance(none, NoWatermarksGenerator)


@pytest.mark.parametrize(
    ("bound", "ms"), [(timedelta(milliseconds=250), 250), (40, 40), (Time.seconds(1), 1000)]
)
def test_bounded_out_of_orderness_accepts_time_types(bound: Any, ms: int) -> None:
    gen = WatermarkStrategy.for_bounded_out_of_orderness(bound).create_watermark_generator(
        FakeClock()
    )
    assert isinstance(gen, BoundedOutOfOrdernessWatermarks)
    assert gen.out_of_orderness_ms == ms


def test_bounded_out_of_orderness_strategy_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match=r"^max_out_of_orderness must be at least 0 ms"):
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(-1))
    with pytest.raises(TypeError, match=r"^max_out_of_orderness must be a Duration"):
        WatermarkStrategy.for_bounded_out_of_orderness(2.5)


def test_strategy_is_immutable_and_with_returns_new_ones() -> None:
    base = WatermarkStrategy.for_monotonous_timestamps()
    with_ts = base.with_timestamp_assigner(lambda v, ts: v)
    with_idle = with_ts.with_idleness(Duration.of_seconds(1))
    assert base.create_timestamp_assigner() is None
    assert base.get_idle_timeout_ms() is None
    assert with_ts.create_timestamp_assigner() is not None
    assert with_ts.get_idle_timeout_ms() is None
    assert with_idle.get_idle_timeout_ms() == 1000
    assert with_idle.create_timestamp_assigner() is with_ts.create_timestamp_assigner()
    assert len({id(base), id(with_ts), id(with_idle)}) == 3
    with pytest.raises(AttributeError, match="immutable"):
        base._idle_timeout_ms = 5
    with pytest.raises(AttributeError):
        base.extra = 1


def test_idleness_wraps_the_generator_with_the_given_clock() -> None:
    clock = FakeClock(0)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(0).with_idleness(
        timedelta(milliseconds=30)
    )
    gen = strategy.create_watermark_generator(clock)
    assert isinstance(gen, WatermarksWithIdleness)
    assert gen.idle_timeout_ms == 30
    assert isinstance(gen.generator, BoundedOutOfOrdernessWatermarks)
    out = WatermarkCollector()
    gen.on_periodic_emit(out)
    clock.now = 31
    gen.on_periodic_emit(out)
    assert out.take_events() == [IDLE]
    assert strategy.create_watermark_generator(clock) is not gen


@pytest.mark.parametrize("bad", [0, -5, Duration.of_nanos(10), timedelta(0)])
def test_with_idleness_must_be_positive(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^idle_timeout must be at least 1 ms"):
        WatermarkStrategy.no_watermarks().with_idleness(bad)


def test_with_idleness_rejects_other_types() -> None:
    with pytest.raises(TypeError, match=r"^idle_timeout must be a Duration"):
        WatermarkStrategy.no_watermarks().with_idleness("1s")


def test_timestamp_assigner_from_callable_and_instance() -> None:
    seen = []

    def fn(value: Any, record_timestamp: int | None) -> int:
        seen.append((value, record_timestamp))
        return int(value["t"])

    assigner = (
        WatermarkStrategy.no_watermarks().with_timestamp_assigner(fn).create_timestamp_assigner()
    )
    assert isinstance(assigner, TimestampAssigner)
    assert assigner.extract_timestamp({"t": 42}, None) == 42
    assert seen == [({"t": 42}, None)]

    class Field(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
            return int(value[1])

    instance = Field()
    strategy = WatermarkStrategy.no_watermarks().with_timestamp_assigner(instance)
    assert strategy.create_timestamp_assigner() is instance


@pytest.mark.parametrize("bad", [5, "ts", None])
def test_with_timestamp_assigner_rejects_non_callables(bad: Any) -> None:
    with pytest.raises(TypeError, match=rf"^timestamp_assigner must be .*got {bad!r}"):
        WatermarkStrategy.no_watermarks().with_timestamp_assigner(bad)


def test_with_timestamp_assigner_rejects_the_class_itself() -> None:
    class Field(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
            return 0

    with pytest.raises(TypeError, match=r"got the class Field; pass an instance, Field\(\)"):
        WatermarkStrategy.no_watermarks().with_timestamp_assigner(Field)


class EveryOther(WatermarkGenerator):
    def __init__(self) -> None:
        self.count = 0

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        self.count += 1
        if self.count % 2 == 0:
            output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


def test_for_generator_accepts_a_class_a_callable_and_a_supplier() -> None:
    clock = FakeClock()

    class Supplier:
        def create_watermark_generator(self) -> WatermarkGenerator:
            return EveryOther()

    for factory in (EveryOther, lambda: EveryOther(), Supplier()):
        strategy = WatermarkStrategy.for_generator(factory)
        a = strategy.create_watermark_generator(clock)
        b = strategy.create_watermark_generator(clock)
        assert isinstance(a, EveryOther) and isinstance(b, EveryOther) and a is not b


def test_for_generator_rejects_a_shared_instance_and_non_callables() -> None:
    with pytest.raises(TypeError, match="fresh WatermarkGenerator per split"):
        WatermarkStrategy.for_generator(EveryOther())
    with pytest.raises(TypeError, match=r"^factory must be a callable returning"):
        WatermarkStrategy.for_generator(42)
    with pytest.raises(TypeError, match="got the strategy"):
        WatermarkStrategy.for_generator(WatermarkStrategy.no_watermarks())


def test_for_generator_checks_what_the_factory_returns() -> None:
    strategy = WatermarkStrategy.for_generator(lambda: "not a generator")
    with pytest.raises(TypeError, match="must return a WatermarkGenerator, returned 'not a"):
        strategy.create_watermark_generator(FakeClock())


# -- collector ------------------------------------------------------------------------------


def test_collector_drops_non_increasing_watermarks() -> None:
    out = WatermarkCollector()
    assert out.current == MIN_TIMESTAMP and not out.idle
    out.emit_watermark(Watermark(MIN_TIMESTAMP))
    out.emit_watermark(Watermark(5))
    out.emit_watermark(Watermark(5))
    out.emit_watermark(Watermark(3))
    out.emit_watermark(Watermark(7))
    assert out.take_events() == [Watermark(5), Watermark(7)]
    assert out.current == 7
    assert out.take_events() == []


def test_collector_statuses() -> None:
    out = WatermarkCollector()
    out.mark_active()  # already active: nothing
    out.mark_idle()
    out.mark_idle()
    assert out.take_events() == [IDLE]
    assert out.idle
    out.emit_watermark(Watermark(5))
    assert out.take_events() == [ACTIVE, Watermark(5)]
    out.mark_idle()
    out.emit_watermark(Watermark(4))  # dropped, but still activity
    assert out.take_events() == [IDLE, ACTIVE]
    out.mark_idle()
    out.mark_active()
    out.mark_active()
    assert out.take_events() == [IDLE, ACTIVE]
    assert not out.idle


def test_collector_rejects_non_watermarks() -> None:
    out = WatermarkCollector()
    with pytest.raises(TypeError, match=r"emit_watermark takes a Watermark, got 5 \(int\)"):
        out.emit_watermark(5)  # type: ignore[arg-type]
    assert out.take_events() == []
