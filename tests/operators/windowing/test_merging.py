"""MergingWindowSet against Flink's MergingWindowSetTest cases: incremental merging, a late
window that bridges two sessions, large covering windows, identical windows, lazily merging
assigners, stable state windows, retiring, and that it works on the dict it is given."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from streamlet.operators.windowing import (
    EventTimeSessionWindows,
    MergingWindowAssigner,
    MergingWindowSet,
    TimeWindow,
    TumblingEventTimeWindows,
)
from streamlet.operators.windowing.triggers import EventTimeTrigger, Trigger


def tw(start: int, end: int) -> TimeWindow:
    return TimeWindow(start, end)


class Recorder:
    """A merge function that records its one call per add_window (Flink's
    TestingMergeFunction) and what the mapping was when it was called."""

    def __init__(self, window_set: MergingWindowSet | None = None) -> None:
        self.window_set = window_set
        self.calls: list[tuple[Any, ...]] = []
        self.mapping_at_call: dict[Any, Any] | None = None

    def reset(self) -> None:
        self.calls = []

    def __call__(self, result: Any, merged: Any, state_window: Any, merged_state: Any) -> None:
        assert not self.calls, "more than one merge for one added window"
        self.calls.append((result, list(merged), state_window, list(merged_state)))
        if self.window_set is not None:
            self.mapping_at_call = dict(self.window_set.mapping)

    @property
    def merged(self) -> bool:
        return bool(self.calls)


def make(gap: int = 3) -> tuple[MergingWindowSet, Recorder, dict[TimeWindow, TimeWindow]]:
    mapping: dict[TimeWindow, TimeWindow] = {}
    window_set = MergingWindowSet(EventTimeSessionWindows.with_gap(gap), mapping)
    return window_set, Recorder(window_set), mapping


def add(window_set: MergingWindowSet, rec: Recorder, window: TimeWindow) -> TimeWindow:
    rec.reset()
    return window_set.add_window(window, rec)


def test_incremental_merging_keeps_the_first_state_window() -> None:
    ws, rec, mapping = make()
    assert add(ws, rec, tw(0, 4)) == tw(0, 4) and not rec.merged
    assert ws.get_state_window(tw(0, 4)) == tw(0, 4)
    assert add(ws, rec, tw(0, 4)) == tw(0, 4) and not rec.merged

    assert add(ws, rec, tw(3, 5)) == tw(0, 5)
    assert rec.calls == [(tw(0, 5), [tw(0, 4)], tw(0, 4), [])]
    assert add(ws, rec, tw(4, 6)) == tw(0, 6)
    assert rec.calls == [(tw(0, 6), [tw(0, 5)], tw(0, 4), [])]
    assert ws.get_state_window(tw(0, 6)) == tw(0, 4)

    # Windows inside the merged one change nothing.
    for inside in (tw(1, 4), tw(0, 4), tw(3, 5), tw(4, 6)):
        assert add(ws, rec, inside) == tw(0, 6) and not rec.merged
    assert ws.get_state_window(tw(0, 6)) == tw(0, 4)

    # A second session beside the first.
    assert add(ws, rec, tw(11, 14)) == tw(11, 14) and not rec.merged
    assert add(ws, rec, tw(10, 13)) == tw(10, 14)
    assert rec.calls == [(tw(10, 14), [tw(11, 14)], tw(11, 14), [])]
    assert add(ws, rec, tw(12, 15)) == tw(10, 15)
    assert rec.calls == [(tw(10, 15), [tw(10, 14)], tw(11, 14), [])]
    assert add(ws, rec, tw(11, 14)) == tw(10, 15) and not rec.merged
    assert mapping == {tw(0, 6): tw(0, 4), tw(10, 15): tw(11, 14)}

    ws.retire_window(tw(0, 6))
    assert ws.get_state_window(tw(0, 6)) is None
    assert ws.get_state_window(tw(10, 15)) == tw(11, 14)
    assert mapping == {tw(10, 15): tw(11, 14)}


def test_a_late_window_bridges_two_sessions_and_then_all_three() -> None:
    ws, rec, mapping = make()
    for w in (tw(0, 3), tw(5, 8), tw(10, 13)):
        assert add(ws, rec, w) == w and not rec.merged
        assert ws.get_state_window(w) == w

    assert add(ws, rec, tw(8, 10)) == tw(5, 13)  # touches both neighbours
    (result, merged, state_window, merged_state) = rec.calls[0]
    assert result == tw(5, 13)
    assert sorted(merged) == [tw(5, 8), tw(10, 13)]
    assert state_window == tw(5, 8)  # the earliest merged window's: stable and predictable
    assert merged_state == [tw(10, 13)]
    assert state_window not in merged_state
    assert ws.get_state_window(tw(0, 3)) == tw(0, 3)

    for inside in (tw(5, 8), tw(8, 10), tw(10, 13)):
        assert add(ws, rec, inside) == tw(5, 13) and not rec.merged
    assert ws.get_state_window(tw(5, 13)) == tw(5, 8)

    assert add(ws, rec, tw(3, 5)) == tw(0, 13)
    result, merged, state_window, merged_state = rec.calls[0]
    assert result == tw(0, 13)
    assert sorted(merged) == [tw(0, 3), tw(5, 13)]
    assert state_window == tw(0, 3)
    assert merged_state == [tw(5, 8)]  # the state window of (5, 13), not (5, 13) itself
    assert mapping == {tw(0, 13): tw(0, 3)}


def test_a_large_new_window_covering_one_window_merges() -> None:
    ws, rec, _ = make()
    assert add(ws, rec, tw(1, 2)) == tw(1, 2)
    assert add(ws, rec, tw(0, 3)) == tw(0, 3)
    assert rec.calls == [(tw(0, 3), [tw(1, 2)], tw(1, 2), [])]
    assert ws.get_state_window(tw(0, 3)) == tw(1, 2)


def test_a_large_new_window_covering_several_windows_merges_them_all() -> None:
    ws, rec, mapping = make()
    for w in (tw(1, 3), tw(5, 8), tw(10, 13)):
        add(ws, rec, w)
    assert add(ws, rec, tw(0, 13)) == tw(0, 13)
    result, merged, state_window, merged_state = rec.calls[0]
    assert (result, merged) == (tw(0, 13), [tw(1, 3), tw(5, 8), tw(10, 13)])
    assert state_window == tw(1, 3)
    assert merged_state == [tw(5, 8), tw(10, 13)]
    assert mapping == {tw(0, 13): tw(1, 3)}


def test_adding_an_identical_window_does_not_merge() -> None:
    ws, rec, mapping = make()
    assert add(ws, rec, tw(1, 2)) == tw(1, 2)
    assert add(ws, rec, tw(1, 2)) == tw(1, 2) and not rec.merged
    assert mapping == {tw(1, 2): tw(1, 2)}


def test_an_identical_window_keeps_a_merged_windows_state_window() -> None:
    # With a dynamic gap, a new window can equal a live window that came from a merge.
    ws, rec, mapping = make()
    add(ws, rec, tw(0, 4))
    add(ws, rec, tw(2, 9))
    assert mapping == {tw(0, 9): tw(0, 4)}
    assert add(ws, rec, tw(0, 9)) == tw(0, 9) and not rec.merged
    assert mapping == {tw(0, 9): tw(0, 4)}


def test_merge_function_runs_before_the_mapping_changes_and_an_error_changes_nothing() -> None:
    ws, rec, mapping = make()
    add(ws, rec, tw(0, 3))
    add(ws, rec, tw(5, 8))
    add(ws, rec, tw(3, 5))
    assert rec.mapping_at_call == {tw(0, 3): tw(0, 3), tw(5, 8): tw(5, 8)}
    assert mapping == {tw(0, 8): tw(0, 3)}

    def fail(*args: Any) -> None:
        raise RuntimeError("state merge failed")

    with pytest.raises(RuntimeError):
        ws.add_window(tw(8, 10), fail)
    assert mapping == {tw(0, 8): tw(0, 3)}


def test_it_works_on_the_given_dict_and_picks_up_restored_contents() -> None:
    # The operator keeps the dict in keyed state; after a restore it hands the set that dict.
    restored = {tw(17, 42): tw(42, 17), tw(1, 2): tw(3, 4)}
    ws = MergingWindowSet(EventTimeSessionWindows.with_gap(3), restored)
    assert ws.mapping is restored
    assert ws.get_state_window(tw(17, 42)) == tw(42, 17)
    assert ws.get_state_window(tw(1, 2)) == tw(3, 4)
    rec = Recorder()
    assert ws.add_window(tw(2, 5), rec) == tw(1, 5)
    assert rec.calls == [(tw(1, 5), [tw(1, 2)], tw(3, 4), [])]
    assert restored == {tw(17, 42): tw(42, 17), tw(1, 5): tw(3, 4)}


def test_retiring_a_window_that_is_not_live_fails_clearly() -> None:
    ws, rec, _ = make()
    add(ws, rec, tw(0, 3))
    with pytest.raises(ValueError, match=r"not a live window.*live windows: \[TimeWindow"):
        ws.retire_window(tw(5, 8))


class NonEagerlyMerging(MergingWindowAssigner):
    """Flink's test assigner that merges lazily: windows starting inside the earliest one
    become ``(earliest.start, earliest.end + 1)``, whether or not the new window is among
    them."""

    def assign_windows(self, element: Any, timestamp: int | None, context: Any) -> list[Any]:
        raise NotImplementedError

    def get_default_trigger(self) -> Trigger:
        return EventTimeTrigger.create()

    def is_event_time(self) -> bool:
        return True

    def merge_windows(
        self, windows: Iterable[TimeWindow]
    ) -> list[tuple[TimeWindow, list[TimeWindow]]]:
        windows = list(windows)
        earliest = min(windows, key=lambda w: w.start)
        group = [w for w in windows if earliest.start <= w.start < earliest.end]
        if len(group) > 1:
            return [(tw(earliest.start, earliest.end + 1), group)]
        return []


def test_a_lazily_merging_assigner_still_keeps_every_window_live() -> None:
    mapping: dict[TimeWindow, TimeWindow] = {}
    ws = MergingWindowSet(NonEagerlyMerging(), mapping)
    rec = Recorder()
    for w in (tw(0, 2), tw(2, 5), tw(1, 2), tw(10, 12)):
        rec.reset()
        result = ws.add_window(w, rec)
        assert ws.get_state_window(result) is not None
    # (10, 12) merged nothing, but its add merged (0, 3) and (2, 5) into (0, 4).
    assert rec.calls == [(tw(0, 4), [tw(0, 3), tw(2, 5)], tw(0, 2), [tw(2, 5)])]
    assert mapping == {tw(0, 4): tw(0, 2), tw(10, 12): tw(10, 12)}


def test_needs_a_merging_assigner_and_a_dict() -> None:
    with pytest.raises(TypeError, match="MergingWindowAssigner"):
        MergingWindowSet(TumblingEventTimeWindows.of(5), {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping must be a dict"):
        MergingWindowSet(EventTimeSessionWindows.with_gap(5), [])  # type: ignore[arg-type]
