"""Triggers with Flink's semantics, run against a fake TriggerContext whose partitioned state
is a dict per (state name, window) and whose timers are sets of (time, window)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP, MIN_TIMESTAMP, Time
from streamlet.operators.windowing import (
    GLOBAL_WINDOW,
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountTrigger,
    CountWindow,
    EventTimeTrigger,
    NeverTrigger,
    ProcessingTimeTrigger,
    PurgingTrigger,
    TimeWindow,
    Trigger,
    TriggerResult,
)
from streamlet.state import ReducingStateDescriptor, StateDescriptor, ValueStateDescriptor

CONTINUE, FIRE = TriggerResult.CONTINUE, TriggerResult.FIRE
PURGE, FIRE_AND_PURGE = TriggerResult.PURGE, TriggerResult.FIRE_AND_PURGE


class _View:
    """One partitioned state of one window, shaped like streamlet's state views."""

    def __init__(self, store: dict[tuple[str, Any], Any], key: tuple[str, Any], desc: Any):
        self._store, self._key, self._desc = store, key, desc

    # ValueState
    def value(self) -> Any:
        return self._store.get(self._key, getattr(self._desc, "default_value", None))

    def update(self, value: Any) -> None:
        self._store[self._key] = value

    # ReducingState
    def get(self) -> Any:
        return self._store.get(self._key)

    def add(self, value: Any) -> None:
        current = self._store.get(self._key)
        self._store[self._key] = value if current is None else self._desc.reduce(current, value)

    def clear(self) -> None:
        self._store.pop(self._key, None)


class FakeContext:
    """A TriggerContext / OnMergeContext for one key; ``window`` is the current window and
    ``merged_windows`` the windows an on_merge merges from."""

    def __init__(self, window: Any, watermark: int = MIN_TIMESTAMP, now: int = 0) -> None:
        self.window = window
        self.watermark = watermark
        self.now = now
        self.state: dict[tuple[str, Any], Any] = {}
        self.event_timers: set[tuple[int, Any]] = set()
        self.processing_timers: set[tuple[int, Any]] = set()
        self.merged_windows: list[Any] = []

    def get_current_processing_time(self) -> int:
        return self.now

    def get_current_watermark(self) -> int:
        return self.watermark

    def register_processing_time_timer(self, time: int) -> None:
        self.processing_timers.add((time, self.window))

    def register_event_time_timer(self, time: int) -> None:
        self.event_timers.add((time, self.window))

    def delete_processing_time_timer(self, time: int) -> None:
        self.processing_timers.discard((time, self.window))

    def delete_event_time_timer(self, time: int) -> None:
        self.event_timers.discard((time, self.window))

    def get_partitioned_state(self, descriptor: StateDescriptor) -> _View:
        return _View(self.state, (descriptor.name, self.window), descriptor)

    def merge_partitioned_state(self, descriptor: StateDescriptor) -> None:
        target = self.get_partitioned_state(descriptor)
        for w in self.merged_windows:
            value = self.state.pop((descriptor.name, w), None)
            if value is not None:
                target.add(value)

    # what the window operator does around a merge (Flink's WindowOperator)
    def merge(self, trigger: Trigger, merged: list[Any], result: Any) -> None:
        for w in merged:  # the operator deletes the merged windows' cleanup timers
            self.event_timers = {t for t in self.event_timers if t[1] != w}
            self.processing_timers = {t for t in self.processing_timers if t[1] != w}
        self.window, self.merged_windows = result, merged
        trigger.on_merge(result, self)


W = TimeWindow(0, 2)  # max timestamp 1


def test_trigger_result_flags() -> None:
    assert [(r.is_fire(), r.is_purge()) for r in TriggerResult] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]


# --- EventTimeTrigger ---


def test_event_time_trigger_registers_the_window_end_and_fires_there() -> None:
    trigger, ctx = EventTimeTrigger.create(), FakeContext(W, watermark=0)
    assert trigger.on_element("a", 0, W, ctx) is CONTINUE
    assert ctx.event_timers == {(1, W)}
    assert trigger.on_event_time(0, W, ctx) is CONTINUE  # a timer of someone else
    assert trigger.on_event_time(1, W, ctx) is FIRE
    assert trigger.on_processing_time(1, W, ctx) is CONTINUE
    trigger.clear(W, ctx)
    assert ctx.event_timers == set()


def test_event_time_trigger_fires_at_once_when_the_watermark_is_past() -> None:
    trigger = EventTimeTrigger.create()
    ctx = FakeContext(W, watermark=1)  # max_timestamp <= watermark: a late element
    assert trigger.on_element("a", 0, W, ctx) is FIRE
    assert ctx.event_timers == set()
    assert trigger.on_element("a", 0, W, FakeContext(W, watermark=0)) is CONTINUE


def test_event_time_trigger_merges_by_registering_the_merged_end() -> None:
    trigger = EventTimeTrigger.create()
    assert trigger.can_merge()
    ctx = FakeContext(TimeWindow(0, 2), watermark=0)
    trigger.on_element("a", 0, ctx.window, ctx)
    ctx.window = TimeWindow(2, 4)
    trigger.on_element("b", 2, ctx.window, ctx)
    ctx.merge(trigger, [TimeWindow(0, 2), TimeWindow(2, 4)], TimeWindow(0, 4))
    assert ctx.event_timers == {(3, TimeWindow(0, 4))}
    # Not when the watermark already passed the merged window's end.
    late = FakeContext(TimeWindow(0, 4), watermark=3)
    late.merge(trigger, [TimeWindow(0, 2)], TimeWindow(0, 4))
    assert late.event_timers == set()


def test_event_time_trigger_on_a_global_window_waits_for_the_end_of_time() -> None:
    trigger, ctx = EventTimeTrigger.create(), FakeContext(GLOBAL_WINDOW)
    assert trigger.on_element("a", 5, GLOBAL_WINDOW, ctx) is CONTINUE
    assert ctx.event_timers == {(MAX_WATERMARK_TIMESTAMP, GLOBAL_WINDOW)}


# --- ProcessingTimeTrigger ---


def test_processing_time_trigger() -> None:
    trigger, ctx = ProcessingTimeTrigger.create(), FakeContext(W, now=0)
    assert trigger.on_element("a", None, W, ctx) is CONTINUE
    assert ctx.processing_timers == {(1, W)}
    assert trigger.on_event_time(1, W, ctx) is CONTINUE
    assert trigger.on_processing_time(1, W, ctx) is FIRE
    trigger.clear(W, ctx)
    assert ctx.processing_timers == set()


def test_processing_time_trigger_merge_registers_only_future_ends() -> None:
    trigger = ProcessingTimeTrigger.create()
    assert trigger.can_merge()
    ctx = FakeContext(TimeWindow(0, 4), now=2)
    ctx.merge(trigger, [TimeWindow(0, 2), TimeWindow(2, 4)], TimeWindow(0, 4))
    assert ctx.processing_timers == {(3, TimeWindow(0, 4))}
    past = FakeContext(TimeWindow(0, 4), now=3)
    past.merge(trigger, [TimeWindow(0, 2)], TimeWindow(0, 4))
    assert past.processing_timers == set()


# --- CountTrigger ---


def test_count_trigger_fires_every_n_and_resets() -> None:
    trigger, ctx = CountTrigger.of(3), FakeContext(CountWindow(0))
    results = [trigger.on_element(i, None, CountWindow(0), ctx) for i in range(7)]
    assert results == [CONTINUE, CONTINUE, FIRE, CONTINUE, CONTINUE, FIRE, CONTINUE]
    assert ctx.state == {("count", CountWindow(0)): 1}
    assert trigger.on_event_time(0, CountWindow(0), ctx) is CONTINUE
    assert trigger.on_processing_time(0, CountWindow(0), ctx) is CONTINUE
    trigger.clear(CountWindow(0), ctx)
    assert ctx.state == {}


def test_count_trigger_counts_per_window() -> None:
    trigger = CountTrigger.of(2)
    ctx = FakeContext(TimeWindow(0, 2))
    assert trigger.on_element(1, 0, TimeWindow(0, 2), ctx) is CONTINUE
    ctx.window = TimeWindow(2, 4)
    assert trigger.on_element(1, 2, TimeWindow(2, 4), ctx) is CONTINUE
    assert trigger.on_element(1, 2, TimeWindow(2, 4), ctx) is FIRE
    assert ctx.state == {("count", TimeWindow(0, 2)): 1}


def test_count_trigger_merges_the_counts() -> None:
    trigger = CountTrigger.of(3)
    assert trigger.can_merge()
    ctx = FakeContext(TimeWindow(0, 2))
    trigger.on_element(1, 0, ctx.window, ctx)
    ctx.window = TimeWindow(2, 4)
    trigger.on_element(1, 2, ctx.window, ctx)
    ctx.merge(trigger, [TimeWindow(0, 2), TimeWindow(2, 4)], TimeWindow(0, 4))
    assert ctx.state == {("count", TimeWindow(0, 4)): 2}
    assert trigger.on_element(1, 3, TimeWindow(0, 4), ctx) is FIRE


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-1, ValueError), (1.0, TypeError)])
def test_count_trigger_needs_a_positive_int(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="CountTrigger count"):
        CountTrigger.of(bad)


# --- PurgingTrigger ---


class Scripted(Trigger):
    """Answers with the results it is given, in turn, and records merge and clear calls."""

    def __init__(self, *results: TriggerResult) -> None:
        self.results = list(results)
        self.calls: list[str] = []

    def _next(self) -> TriggerResult:
        return self.results.pop(0)

    def on_element(self, element: Any, timestamp: Any, window: Any, ctx: Any) -> TriggerResult:
        return self._next()

    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return self._next()

    def on_processing_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return self._next()

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Any, ctx: Any) -> None:
        self.calls.append("merge")

    def clear(self, window: Any, ctx: Any) -> None:
        self.calls.append("clear")


def test_purging_trigger_turns_fire_into_fire_and_purge() -> None:
    nested = Scripted(CONTINUE, FIRE, PURGE, FIRE_AND_PURGE, FIRE, FIRE)
    trigger, ctx = PurgingTrigger.of(nested), FakeContext(W)
    got = [trigger.on_element("a", 0, W, ctx) for _ in range(4)]
    assert got == [CONTINUE, FIRE_AND_PURGE, PURGE, FIRE_AND_PURGE]
    assert trigger.on_event_time(1, W, ctx) is FIRE_AND_PURGE
    assert trigger.on_processing_time(1, W, ctx) is FIRE_AND_PURGE
    assert trigger.can_merge()
    trigger.on_merge(W, ctx)
    trigger.clear(W, ctx)
    assert nested.calls == ["merge", "clear"]
    assert not PurgingTrigger.of(NeverTrigger()).can_merge()


def test_purging_trigger_needs_a_trigger() -> None:
    with pytest.raises(TypeError, match=r"PurgingTrigger\.of takes a Trigger"):
        PurgingTrigger.of(3)  # type: ignore[arg-type]


# --- Continuous triggers ---


def test_continuous_event_time_trigger_fires_every_interval_and_at_the_end() -> None:
    window = TimeWindow(0, 10)  # max timestamp 9
    trigger, ctx = ContinuousEventTimeTrigger.of(Time.milliseconds(4)), FakeContext(window, 0)
    assert trigger.on_element("a", 1, window, ctx) is CONTINUE
    # The window end, and the next multiple of the interval after the element's.
    assert ctx.event_timers == {(9, window), (4, window)}
    assert ctx.state == {("fire-time", window): 4}
    assert trigger.on_element("b", 2, window, ctx) is CONTINUE  # already scheduled
    assert ctx.event_timers == {(9, window), (4, window)}
    assert trigger.on_event_time(3, window, ctx) is CONTINUE  # not its fire time
    assert trigger.on_event_time(4, window, ctx) is FIRE
    assert ctx.state == {("fire-time", window): 8}
    assert trigger.on_event_time(8, window, ctx) is FIRE
    # The next one would be 12: capped at the window's end.
    assert ctx.state == {("fire-time", window): 9}
    assert trigger.on_event_time(9, window, ctx) is FIRE
    trigger.clear(window, ctx)
    assert ctx.state == {}
    # clear deletes the pending fire time's timer, which was the window end's here (the fake
    # keeps fired timers 4 and 8: dropping those is the operator's job).
    assert ctx.event_timers == {(4, window), (8, window)}


def test_continuous_event_time_trigger_fires_late_elements_at_once() -> None:
    window = TimeWindow(0, 10)
    trigger, ctx = ContinuousEventTimeTrigger.of(4), FakeContext(window, watermark=9)
    assert trigger.on_element("a", 1, window, ctx) is FIRE
    assert ctx.state == {} and ctx.event_timers == set()


def test_continuous_event_time_trigger_aligns_negative_timestamps_down() -> None:
    window = TimeWindow(-20, 0)
    trigger, ctx = ContinuousEventTimeTrigger.of(4), FakeContext(window)
    trigger.on_element("a", -5, window, ctx)
    assert ctx.state == {("fire-time", window): -4}  # -8 + 4: the next multiple after -5


def test_continuous_event_time_trigger_clear_deletes_the_pending_fire() -> None:
    window = TimeWindow(0, 10)
    trigger, ctx = ContinuousEventTimeTrigger.of(4), FakeContext(window, 0)
    trigger.on_element("a", 1, window, ctx)
    trigger.clear(window, ctx)
    assert ctx.event_timers == {(9, window)}
    assert ctx.state == {}


def test_continuous_event_time_trigger_merges_the_earliest_fire_time() -> None:
    trigger = ContinuousEventTimeTrigger.of(4)
    a, b, merged = TimeWindow(0, 10), TimeWindow(10, 20), TimeWindow(0, 20)
    ctx = FakeContext(a, 0)
    trigger.on_element("x", 1, a, ctx)
    ctx.window = b
    trigger.on_element("y", 13, b, ctx)
    assert ctx.state == {("fire-time", a): 4, ("fire-time", b): 16}
    ctx.merge(trigger, [a, b], merged)
    assert ctx.state == {("fire-time", merged): 4}
    assert ctx.event_timers == {(4, merged)}
    assert trigger.can_merge()


def test_continuous_processing_time_trigger() -> None:
    window = TimeWindow(0, 10)
    trigger, ctx = ContinuousProcessingTimeTrigger.of(4), FakeContext(window, now=5)
    assert trigger.on_element("a", 999, window, ctx) is CONTINUE  # the clock, not the stamp
    assert ctx.processing_timers == {(8, window)}
    assert ctx.state == {("fire-time", window): 8}
    assert trigger.on_processing_time(7, window, ctx) is CONTINUE
    assert trigger.on_event_time(8, window, ctx) is CONTINUE
    assert trigger.on_processing_time(8, window, ctx) is FIRE
    assert ctx.state == {("fire-time", window): 9}  # capped at the window's end
    assert (9, window) in ctx.processing_timers
    trigger.clear(window, ctx)
    assert ctx.state == {}
    assert ctx.processing_timers == {(8, window)}  # the fired timer is the operator's to drop


def test_continuous_processing_time_trigger_merges() -> None:
    trigger = ContinuousProcessingTimeTrigger.of(10)
    a, b, merged = TimeWindow(0, 100), TimeWindow(100, 200), TimeWindow(0, 200)
    ctx = FakeContext(a, now=25)
    trigger.on_element("x", None, a, ctx)
    ctx.window, ctx.now = b, 31
    trigger.on_element("y", None, b, ctx)
    ctx.merge(trigger, [a, b], merged)
    assert ctx.state == {("fire-time", merged): 30}
    assert ctx.processing_timers == {(30, merged)}


def test_continuous_processing_time_trigger_ignores_timers_without_state() -> None:
    window = TimeWindow(0, 10)
    trigger, ctx = ContinuousProcessingTimeTrigger.of(4), FakeContext(window)
    assert trigger.on_processing_time(9, window, ctx) is CONTINUE


@pytest.mark.parametrize(
    "build", [ContinuousEventTimeTrigger.of, ContinuousProcessingTimeTrigger.of]
)
def test_continuous_triggers_need_a_positive_interval(build: Any) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        build(0)
    with pytest.raises(TypeError, match="interval"):
        build(1.5)


def test_continuous_event_time_trigger_needs_timestamps() -> None:
    window = TimeWindow(0, 10)
    with pytest.raises(TypeError, match="assign_timestamps_and_watermarks"):
        ContinuousEventTimeTrigger.of(4).on_element("a", None, window, FakeContext(window, 0))


# --- NeverTrigger and the base class ---


def test_never_trigger_never_fires() -> None:
    trigger, ctx = NeverTrigger(), FakeContext(GLOBAL_WINDOW)
    assert trigger.on_element("a", 1, GLOBAL_WINDOW, ctx) is CONTINUE
    assert trigger.on_event_time(MAX_WATERMARK_TIMESTAMP, GLOBAL_WINDOW, ctx) is CONTINUE
    assert trigger.on_processing_time(5, GLOBAL_WINDOW, ctx) is CONTINUE
    trigger.on_merge(GLOBAL_WINDOW, ctx)
    trigger.clear(GLOBAL_WINDOW, ctx)
    assert ctx.state == {} and ctx.event_timers == set() and ctx.processing_timers == set()


class NoMerge(Trigger):
    def on_element(self, element: Any, timestamp: Any, window: Any, ctx: Any) -> TriggerResult:
        return CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return CONTINUE

    def clear(self, window: Any, ctx: Any) -> None:
        pass


def test_a_user_trigger_does_not_merge_unless_it_says_so() -> None:
    trigger = NoMerge()
    assert not trigger.can_merge()
    with pytest.raises(NotImplementedError, match="NoMerge does not support merging"):
        trigger.on_merge(W, FakeContext(W))


def test_trigger_state_names_are_flinks() -> None:
    # The names are part of checkpoints: a rename would orphan restored trigger state.
    ctx = FakeContext(W, 0)
    CountTrigger.of(5).on_element(1, 0, W, ctx)
    ContinuousEventTimeTrigger.of(1).on_element(1, 0, W, ctx)
    assert {name for name, _ in ctx.state} == {"count", "fire-time"}


def test_a_user_trigger_can_keep_value_state() -> None:
    seen = ValueStateDescriptor("seen", default_value=0)

    class EveryOther(NoMerge):
        def on_element(self, element: Any, timestamp: Any, window: Any, ctx: Any) -> TriggerResult:
            state = ctx.get_partitioned_state(seen)
            state.update(state.value() + 1)
            return FIRE if state.value() % 2 == 0 else CONTINUE

    trigger, ctx = EveryOther(), FakeContext(W)
    assert [trigger.on_element(i, 0, W, ctx) for i in range(4)] == [CONTINUE, FIRE] * 2
    assert isinstance(ReducingStateDescriptor("count", min), StateDescriptor)
