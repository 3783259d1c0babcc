"""Window assigners: the windows of given timestamps (Flink's documented and tested
examples, offsets, negative timestamps), session merging, defaults and validation."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from streamlet.operators.time import MIN_TIMESTAMP, Duration, Time
from streamlet.operators.windowing import (
    GLOBAL_WINDOW,
    CountEvictor,
    CountSlidingWindowAssigner,
    CountTrigger,
    CountTumblingWindowAssigner,
    CountWindow,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindows,
    MergingWindowAssigner,
    NeverTrigger,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
)


class Clock:
    """A WindowAssignerContext with a settable processing time."""

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def get_current_processing_time(self) -> int:
        return self.now


NO_CLOCK = Clock(-999_999)  # event-time assigners must not look at it


def windows(assigner: WindowAssigner, timestamp: int | None, element: Any = "x") -> list[Any]:
    return assigner.assign_windows(element, timestamp, NO_CLOCK)


def tw(start: int, end: int) -> TimeWindow:
    return TimeWindow(start, end)


# --- Tumbling ---


@pytest.mark.parametrize(
    ("timestamp", "window"),
    [(0, tw(0, 5000)), (4999, tw(0, 5000)), (5000, tw(5000, 10000)), (-1, tw(-5000, 0))],
)
def test_tumbling_event_time(timestamp: int, window: TimeWindow) -> None:
    assert windows(TumblingEventTimeWindows.of(Time.milliseconds(5000)), timestamp) == [window]


@pytest.mark.parametrize(
    ("timestamp", "window"),
    [
        (100, tw(100, 5100)),
        (5099, tw(100, 5100)),
        (5100, tw(5100, 10100)),
        (0, tw(-4900, 100)),
        (99, tw(-4900, 100)),
        (-4901, tw(-9900, -4900)),
    ],
)
def test_tumbling_event_time_with_offset(timestamp: int, window: TimeWindow) -> None:
    assigner = TumblingEventTimeWindows.of(Duration.of_millis(5000), Duration.of_millis(100))
    assert windows(assigner, timestamp) == [window]


def test_tumbling_hourly_windows_with_a_negative_offset_follow_flinks_doc_example() -> None:
    # Flink's docs: daily windows offset by -8 hours align to midnight in UTC+8.
    day, hour = 24 * 3600_000, 3600_000
    assigner = TumblingEventTimeWindows.of(Time.days(1), Time.hours(-8))
    assert windows(assigner, 0) == [tw(-8 * hour, 16 * hour)]
    assert windows(assigner, 16 * hour) == [tw(16 * hour, day + 16 * hour)]


def test_tumbling_processing_time_uses_the_context_clock() -> None:
    assigner = TumblingProcessingTimeWindows.of(timedelta(seconds=5))
    assert assigner.assign_windows("x", None, Clock(0)) == [tw(0, 5000)]
    assert assigner.assign_windows("x", 12, Clock(5000)) == [tw(5000, 10000)]
    offset = TumblingProcessingTimeWindows.of(5000, 100)
    assert offset.assign_windows("x", None, Clock(5099)) == [tw(100, 5100)]
    assert offset.assign_windows("x", None, Clock(-1)) == [tw(-4900, 100)]
    assert not assigner.is_event_time()
    assert isinstance(assigner.get_default_trigger(), ProcessingTimeTrigger)


# --- Sliding ---


def test_sliding_event_time_lists_all_windows_latest_start_first() -> None:
    assigner = SlidingEventTimeWindows.of(Time.milliseconds(5000), Time.milliseconds(1000))
    assert windows(assigner, 0) == [
        tw(0, 5000),
        tw(-1000, 4000),
        tw(-2000, 3000),
        tw(-3000, 2000),
        tw(-4000, 1000),
    ]
    assert windows(assigner, 4999) == [
        tw(4000, 9000),
        tw(3000, 8000),
        tw(2000, 7000),
        tw(1000, 6000),
        tw(0, 5000),
    ]
    assert windows(assigner, 5000) == [
        tw(5000, 10000),
        tw(4000, 9000),
        tw(3000, 8000),
        tw(2000, 7000),
        tw(1000, 6000),
    ]
    assert windows(assigner, -1) == [
        tw(-1000, 4000),
        tw(-2000, 3000),
        tw(-3000, 2000),
        tw(-4000, 1000),
        tw(-5000, 0),
    ]


def test_sliding_event_time_with_offset() -> None:
    assigner = SlidingEventTimeWindows.of(5000, 1000, 100)
    assert windows(assigner, 100) == [
        tw(100, 5100),
        tw(-900, 4100),
        tw(-1900, 3100),
        tw(-2900, 2100),
        tw(-3900, 1100),
    ]
    assert windows(assigner, 5099) == [
        tw(4100, 9100),
        tw(3100, 8100),
        tw(2100, 7100),
        tw(1100, 6100),
        tw(100, 5100),
    ]


def test_sliding_with_size_not_a_multiple_of_slide() -> None:
    # Flink's doc example shape: 10 min windows every 5 min put each element in two.
    assigner = SlidingEventTimeWindows.of(Time.minutes(10), Time.minutes(5))
    assert windows(assigner, 7 * 60_000) == [tw(300_000, 900_000), tw(0, 600_000)]
    uneven = SlidingEventTimeWindows.of(5, 3)
    assert windows(uneven, 4) == [tw(3, 8), tw(0, 5)]
    assert windows(uneven, 5) == [tw(3, 8)]
    sparse = SlidingEventTimeWindows.of(2, 5)  # slide > size: gaps between windows
    assert windows(sparse, 1) == [tw(0, 2)]
    assert windows(sparse, 3) == []


def test_sliding_processing_time_uses_the_context_clock() -> None:
    assigner = SlidingProcessingTimeWindows.of(5000, 1000)
    assert assigner.assign_windows("x", 12345, Clock(5000)) == [
        tw(5000, 10000),
        tw(4000, 9000),
        tw(3000, 8000),
        tw(2000, 7000),
        tw(1000, 6000),
    ]
    assert not assigner.is_event_time()


# --- Sessions ---


def test_event_time_session_windows_open_one_gap_from_the_element() -> None:
    assigner = EventTimeSessionWindows.with_gap(Time.milliseconds(5000))
    assert windows(assigner, 0) == [tw(0, 5000)]
    assert windows(assigner, 4999) == [tw(4999, 9999)]
    assert windows(assigner, -3) == [tw(-3, 4997)]
    assert assigner.is_merging and assigner.is_event_time()
    assert isinstance(assigner, MergingWindowAssigner)
    assert isinstance(assigner.get_default_trigger(), EventTimeTrigger)


def test_processing_time_session_windows_use_the_clock() -> None:
    assigner = ProcessingTimeSessionWindows.with_gap(Duration.of_seconds(5))
    assert assigner.assign_windows("x", 1, Clock(4999)) == [tw(4999, 9999)]
    assert assigner.is_merging and not assigner.is_event_time()
    assert isinstance(assigner.get_default_trigger(), ProcessingTimeTrigger)


class GapOfElement:
    def extract(self, element: Any) -> int:
        return int(element[1])


def test_dynamic_gaps_from_an_extractor_or_a_callable() -> None:
    by_object = EventTimeSessionWindows.with_dynamic_gap(GapOfElement())
    assert windows(by_object, 10, ("a", 7)) == [tw(10, 17)]
    by_callable = EventTimeSessionWindows.with_dynamic_gap(lambda e: Time.seconds(e))
    assert windows(by_callable, 10, 2) == [tw(10, 2010)]
    processing = ProcessingTimeSessionWindows.with_dynamic_gap(lambda e: e)
    assert processing.assign_windows(3, None, Clock(100)) == [tw(100, 103)]


@pytest.mark.parametrize("gap", [0, -1, Duration.of_millis(0)])
def test_dynamic_gap_must_be_positive_when_assigning(gap: Any) -> None:
    assigner = EventTimeSessionWindows.with_dynamic_gap(lambda e: gap)
    with pytest.raises(ValueError, match="dynamic gap must be positive"):
        windows(assigner, 10)
    processing = ProcessingTimeSessionWindows.with_dynamic_gap(lambda e: gap)
    with pytest.raises(ValueError, match="dynamic gap"):
        processing.assign_windows("x", None, Clock(0))


def test_dynamic_gap_extractor_must_be_callable() -> None:
    with pytest.raises(TypeError, match="extract"):
        EventTimeSessionWindows.with_dynamic_gap(5)


def merge(windows_: list[TimeWindow]) -> list[tuple[TimeWindow, list[TimeWindow]]]:
    return EventTimeSessionWindows.with_gap(3).merge_windows(windows_)


def test_merge_consecutive_and_touching_windows() -> None:
    # Flink's testMergeConsecutiveWindows.
    got = merge([tw(0, 1), tw(1, 2), tw(2, 3), tw(4, 5), tw(5, 6)])
    assert got == [(tw(0, 3), [tw(0, 1), tw(1, 2), tw(2, 3)]), (tw(4, 6), [tw(4, 5), tw(5, 6)])]


def test_merge_covering_windows_in_any_input_order() -> None:
    # Flink's testMergeCoveringWindow.
    got = merge([tw(5, 6), tw(1, 1), tw(4, 7), tw(0, 2)])
    assert got == [(tw(0, 2), [tw(0, 2), tw(1, 1)]), (tw(4, 7), [tw(4, 7), tw(5, 6)])]


def test_merge_leaves_single_and_apart_windows_out() -> None:
    assert merge([tw(0, 2)]) == []
    assert merge([]) == []
    assert merge([tw(0, 2), tw(3, 5)]) == []  # 2 < 3: a gap of one millisecond
    assert merge([tw(0, 2), tw(0, 2)]) == []  # equal windows count once


def test_merge_grows_the_cover_across_a_chain() -> None:
    # (9,12) intersects the cover (0,10), not the window before it (2,3).
    assert merge([tw(0, 10), tw(2, 3), tw(9, 12), tw(12, 13)]) == [
        (tw(0, 13), [tw(0, 10), tw(2, 3), tw(9, 12), tw(12, 13)])
    ]


# --- Global and count windows ---


def test_global_windows_put_everything_in_the_global_window() -> None:
    assigner = GlobalWindows.create()
    assert windows(assigner, None) == [GLOBAL_WINDOW]
    assert windows(assigner, -5) == [GLOBAL_WINDOW]
    assert isinstance(assigner.get_default_trigger(), NeverTrigger)
    assert assigner.get_default_evictor() is None
    assert not assigner.is_merging


def test_count_tumbling_windows_purge_every_n() -> None:
    assigner = CountTumblingWindowAssigner.of(3)
    assert windows(assigner, None) == [CountWindow(0)]
    trigger = assigner.get_default_trigger()
    assert isinstance(trigger, PurgingTrigger)
    assert isinstance(trigger.get_nested_trigger(), CountTrigger)
    assert repr(trigger) == "PurgingTrigger.of(CountTrigger.of(3))"
    assert assigner.get_default_evictor() is None


def test_count_sliding_windows_fire_every_slide_and_keep_size() -> None:
    assigner = CountSlidingWindowAssigner.of(5, 2)
    assert windows(assigner, 7) == [CountWindow(0)]
    assert repr(assigner.get_default_trigger()) == "CountTrigger.of(2)"
    evictor = assigner.get_default_evictor()
    assert isinstance(evictor, CountEvictor)
    assert repr(evictor) == "CountEvictor.of(5, do_evict_after=False)"


def test_default_evictor_is_none_for_time_windows() -> None:
    for assigner in (
        TumblingEventTimeWindows.of(5),
        SlidingEventTimeWindows.of(5, 1),
        EventTimeSessionWindows.with_gap(5),
    ):
        assert assigner.get_default_evictor() is None


# --- Timestamps and validation ---


@pytest.mark.parametrize(
    "assigner",
    [
        TumblingEventTimeWindows.of(5),
        SlidingEventTimeWindows.of(5, 1),
        EventTimeSessionWindows.with_gap(5),
        EventTimeSessionWindows.with_dynamic_gap(lambda e: 5),
    ],
    ids=repr,
)
@pytest.mark.parametrize("timestamp", [None, MIN_TIMESTAMP])
def test_event_time_assigners_need_a_timestamp(assigner: WindowAssigner, timestamp: Any) -> None:
    with pytest.raises(TypeError, match=r"forget to call 'assign_timestamps_and_watermarks") as e:
        windows(assigner, timestamp)
    assert "Record has no timestamp" in str(e.value)
    assert type(assigner).__name__ in str(e.value)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: TumblingEventTimeWindows.of(0), "size must be positive"),
        (lambda: TumblingEventTimeWindows.of(-5), "size must be positive"),
        (lambda: TumblingProcessingTimeWindows.of(Time.seconds(0)), "size must be positive"),
        (lambda: TumblingEventTimeWindows.of(5, 5), r"abs\(offset\) < size"),
        (lambda: TumblingEventTimeWindows.of(5, -5), r"abs\(offset\) < size"),
        (lambda: TumblingProcessingTimeWindows.of(5, 7), r"abs\(offset\) < size"),
        (lambda: SlidingEventTimeWindows.of(0, 1), "size must be positive"),
        (lambda: SlidingEventTimeWindows.of(5, 0), "slide must be positive"),
        (lambda: SlidingProcessingTimeWindows.of(5, -1), "slide must be positive"),
        (lambda: SlidingEventTimeWindows.of(10, 2, 2), r"abs\(offset\) < slide"),
        (lambda: SlidingProcessingTimeWindows.of(10, 2, -3), r"abs\(offset\) < slide"),
        (lambda: EventTimeSessionWindows.with_gap(0), "gap must be positive"),
        (lambda: ProcessingTimeSessionWindows.with_gap(-1), "gap must be positive"),
        (lambda: CountTumblingWindowAssigner.of(0), "size must be positive"),
        (lambda: CountSlidingWindowAssigner.of(5, 0), "slide must be positive"),
        (lambda: CountSlidingWindowAssigner.of(0, 1), "size must be positive"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(build: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_offsets_just_inside_the_limit_are_accepted() -> None:
    assert TumblingEventTimeWindows.of(5, 4).get_offset() == 4
    assert TumblingEventTimeWindows.of(5, -4).get_offset() == -4
    assert SlidingEventTimeWindows.of(10, 3, -2).get_offset() == -2


@pytest.mark.parametrize("bad", [1.5, "5", True, None])
def test_sizes_of_the_wrong_type_raise_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="size"):
        TumblingEventTimeWindows.of(bad)
    with pytest.raises(TypeError):
        CountTumblingWindowAssigner.of(bad)


def test_reprs_show_the_configuration() -> None:
    assert repr(TumblingEventTimeWindows.of(5, 1)) == "TumblingEventTimeWindows(size=5, offset=1)"
    assert repr(SlidingEventTimeWindows.of(5, 1)) == (
        "SlidingEventTimeWindows(size=5, slide=1, offset=0)"
    )
    assert repr(EventTimeSessionWindows.with_gap(3)) == "EventTimeSessionWindows(gap=3)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: TumblingEventTimeWindows.of(1000, 100),
        lambda: SlidingEventTimeWindows.of(5000, 1000, 300),
        lambda: SlidingEventTimeWindows.of(3500, 1000),  # size not a multiple: no reuse
    ],
)
def test_reusing_the_last_answer_never_changes_the_windows(make: Any) -> None:
    rng = random.Random(7)
    cached = make()
    timestamps = sorted(rng.randrange(-20_000, 20_000) for _ in range(2000))
    timestamps += [rng.randrange(-20_000, 20_000) for _ in range(2000)]  # and out of order
    for ts in timestamps:
        assert list(cached.assign_windows(None, ts, None)) == make().assign_windows(None, ts, None)
