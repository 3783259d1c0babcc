"""CountEvictor and TimeEvictor: what they keep, in place, before or after."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.operators.time import Time
from streamlet.operators.windowing import (
    CountEvictor,
    CountWindow,
    Evictor,
    TimeEvictor,
    TimestampedValue,
    TimeWindow,
)


class Ctx:
    def get_current_processing_time(self) -> int:
        return 0

    def get_current_watermark(self) -> int:
        return 0


def tv(*stamps: int | None) -> list[TimestampedValue]:
    return [TimestampedValue(f"v{i}", ts) for i, ts in enumerate(stamps)]


def before(evictor: Evictor, elements: list[TimestampedValue]) -> list[Any]:
    evictor.evict_before(elements, len(elements), CountWindow(0), Ctx())
    return [e.value for e in elements]


def after(evictor: Evictor, elements: list[TimestampedValue]) -> list[Any]:
    evictor.evict_after(elements, len(elements), CountWindow(0), Ctx())
    return [e.value for e in elements]


def test_count_evictor_keeps_the_last_max_count_in_place() -> None:
    elements = tv(1, 2, 3, 4, 5)
    same = elements
    assert before(CountEvictor.of(3), elements) == ["v2", "v3", "v4"]
    assert elements is same
    assert before(CountEvictor.of(5), tv(1, 2, 3)) == ["v0", "v1", "v2"]
    assert before(CountEvictor.of(0), tv(1, 2)) == []
    assert before(CountEvictor.of(2), []) == []


def test_count_evictor_evicts_before_or_after_as_configured() -> None:
    assert after(CountEvictor.of(1), tv(1, 2)) == ["v0", "v1"]
    assert before(CountEvictor.of(1, do_evict_after=True), tv(1, 2)) == ["v0", "v1"]
    assert after(CountEvictor.of(1, do_evict_after=True), tv(1, 2)) == ["v1"]


def test_count_evictor_validates() -> None:
    with pytest.raises(ValueError, match="max_count must be at least 0"):
        CountEvictor.of(-1)
    with pytest.raises(TypeError, match="max_count must be an int"):
        CountEvictor.of(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="do_evict_after"):
        CountEvictor.of(2, 1)  # type: ignore[arg-type]


def test_time_evictor_keeps_elements_newer_than_the_newest_minus_the_size() -> None:
    # Newest is 10, size 3: keep timestamp > 7 (7 itself goes, as in Flink).
    assert before(TimeEvictor.of(Time.milliseconds(3)), tv(10, 1, 7, 8, 9)) == ["v0", "v3", "v4"]
    assert before(TimeEvictor.of(0), tv(5, 5, 4)) == []  # nothing is newer than the newest
    assert before(TimeEvictor.of(100), tv(-50, 10)) == ["v0", "v1"]
    assert before(TimeEvictor.of(3), tv(-10, -5, -1)) == ["v2"]


def test_time_evictor_keeps_elements_without_timestamps() -> None:
    assert before(TimeEvictor.of(3), tv(None, 10, 1, None)) == ["v0", "v1", "v3"]
    assert before(TimeEvictor.of(3), tv(None, None)) == ["v0", "v1"]
    assert before(TimeEvictor.of(3), []) == []


def test_time_evictor_evicts_before_or_after_as_configured() -> None:
    assert after(TimeEvictor.of(3), tv(10, 1)) == ["v0", "v1"]
    assert before(TimeEvictor.of(3, do_evict_after=True), tv(10, 1)) == ["v0", "v1"]
    assert after(TimeEvictor.of(3, do_evict_after=True), tv(10, 1)) == ["v0"]


def test_time_evictor_validates() -> None:
    with pytest.raises(ValueError, match="window_size"):
        TimeEvictor.of(-1)
    with pytest.raises(TypeError, match="window_size"):
        TimeEvictor.of("3")
    assert TimeEvictor.of(Time.seconds(2)).get_window_size() == 2000


def test_evictors_on_time_windows_and_timestamped_value() -> None:
    elements = tv(1, 2, 3)
    CountEvictor.of(1).evict_before(elements, 3, TimeWindow(0, 5), Ctx())
    assert elements == [TimestampedValue("v2", 3)]
    assert elements[0].has_timestamp()
    assert not TimestampedValue("x", None).has_timestamp()
