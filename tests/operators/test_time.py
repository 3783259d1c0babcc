"""Duration, Time, TimeDomain and to_millis: exact values, floors, and the errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streamlet.operators.time import (
    MAX_WATERMARK_TIMESTAMP,
    MIN_TIMESTAMP,
    Duration,
    Time,
    TimeDomain,
    to_millis,
)


def test_timestamp_bounds_are_javas_long_range() -> None:
    assert MIN_TIMESTAMP == -9223372036854775808
    assert MAX_WATERMARK_TIMESTAMP == 9223372036854775807


@pytest.mark.parametrize(
    ("duration", "nanos"),
    [
        (Duration.of_nanos(7), 7),
        (Duration.of_millis(3), 3_000_000),
        (Duration.of_seconds(2), 2_000_000_000),
        (Duration.of_minutes(1), 60_000_000_000),
        (Duration.of_hours(1), 3_600_000_000_000),
        (Duration.of_days(1), 86_400_000_000_000),
        (Duration.of_millis(-5), -5_000_000),
    ],
)
def test_duration_constructors_store_exact_nanos(duration: Duration, nanos: int) -> None:
    assert duration.to_nanos() == nanos


def test_duration_to_milliseconds_floors() -> None:
    assert Duration.of_seconds(5).to_milliseconds() == 5000
    assert Duration.of_nanos(999_999).to_milliseconds() == 0
    assert Duration.of_nanos(1_000_001).to_milliseconds() == 1
    assert Duration.of_nanos(-1).to_milliseconds() == -1


def test_duration_to_timedelta() -> None:
    assert Duration.of_millis(1500).to_timedelta() == timedelta(seconds=1, milliseconds=500)
    assert Duration.of_nanos(1999).to_timedelta() == timedelta(microseconds=1)
    assert Duration.of_days(2).to_timedelta() == timedelta(days=2)


def test_duration_equality_hash_and_ordering() -> None:
    assert Duration.of_seconds(1) == Duration.of_millis(1000)
    assert hash(Duration.of_seconds(1)) == hash(Duration.of_millis(1000))
    assert Duration.of_seconds(1) != Duration.of_millis(1001)
    assert Duration.of_millis(1) < Duration.of_millis(2) <= Duration.of_millis(2)
    assert Duration.of_minutes(1) > Duration.of_seconds(59) >= Duration.of_seconds(59)
    assert sorted([Duration.of_seconds(2), Duration.of_millis(5)]) == [
        Duration.of_millis(5),
        Duration.of_seconds(2),
    ]
    assert Duration.of_millis(5) != 5
    assert Duration.of_millis(5) != Time.milliseconds(5)
    with pytest.raises(TypeError):
        _ = Duration.of_millis(5) < 5


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration.of_millis(1500), "Duration.of_millis(1500)"),
        (Duration.of_seconds(120), "Duration.of_minutes(2)"),
        (Duration.of_hours(48), "Duration.of_days(2)"),
        (Duration.of_nanos(5), "Duration.of_nanos(5)"),
        (Duration.of_millis(0), "Duration.of_millis(0)"),
    ],
)
def test_duration_repr(duration: Duration, text: str) -> None:
    assert repr(duration) == text


@pytest.mark.parametrize("bad", [1.5, "5", True, None])
def test_duration_constructors_reject_non_ints(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"Duration\.of_seconds takes an int"):
        Duration.of_seconds(bad)


def test_time_constructors_and_value() -> None:
    assert Time.milliseconds(250).to_milliseconds() == 250
    assert Time.seconds(3).to_milliseconds() == 3000
    assert Time.minutes(2).to_milliseconds() == 120_000
    assert Time.hours(1).to_milliseconds() == 3_600_000
    assert Time.days(1).to_milliseconds() == 86_400_000


def test_time_equality_hash_and_repr() -> None:
    assert Time.seconds(60) == Time.minutes(1)
    assert hash(Time.seconds(60)) == hash(Time.minutes(1))
    assert Time.seconds(1) != Time.seconds(2)
    assert repr(Time.seconds(90)) == "Time.seconds(90)"
    assert repr(Time.milliseconds(60_000)) == "Time.minutes(1)"
    assert repr(Time.milliseconds(7)) == "Time.milliseconds(7)"
    with pytest.raises(TypeError, match=r"Time\.seconds takes an int, got 1\.5"):
        Time.seconds(1.5)  # type: ignore[arg-type]


def test_time_domain_members() -> None:
    assert {d.name for d in TimeDomain} == {"EVENT_TIME", "PROCESSING_TIME"}
    assert TimeDomain["EVENT_TIME"] != TimeDomain["PROCESSING_TIME"]


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (0, 0),
        (1234, 1234),
        (Duration.of_seconds(2), 2000),
        (Duration.of_nanos(2_999_999), 2),
        (Time.minutes(1), 60_000),
        (timedelta(seconds=1, milliseconds=5), 1005),
        (timedelta(microseconds=1500), 1),
        (timedelta(microseconds=999), 0),
    ],
)
def test_to_millis_accepts_all_time_types(value: Any, ms: int) -> None:
    result = to_millis(value, "x")
    assert result == ms
    assert type(result) is int


def test_to_millis_floors_negative_sub_millisecond_values() -> None:
    assert to_millis(timedelta(microseconds=-1), "x", minimum=None) == -1
    assert to_millis(Duration.of_nanos(-1), "x", minimum=None) == -1


@pytest.mark.parametrize("bad", [True, False, 1.0, "5", None, [5], b"5"])
def test_to_millis_rejects_other_types_naming_the_argument(bad: Any) -> None:
    with pytest.raises(TypeError) as info:
        to_millis(bad, "window_size")
    text = str(info.value)
    assert text.startswith("window_size must be a Duration, Time, datetime.timedelta or an int")
    assert repr(bad) in text
    assert type(bad).__name__ in text


def test_to_millis_minimum() -> None:
    with pytest.raises(ValueError, match=r"^idle_timeout must be at least 1 ms, got 0 \(0 ms\)$"):
        to_millis(0, "idle_timeout", minimum=1)
    with pytest.raises(ValueError, match=r"^bound must be at least 0 ms, got -1"):
        to_millis(-1, "bound")
    with pytest.raises(ValueError, match=r"\(0 ms\)"):
        to_millis(timedelta(microseconds=500), "idle_timeout", minimum=1)
    assert to_millis(1, "idle_timeout", minimum=1) == 1
    assert to_millis(-(10**20), "offset", minimum=None) == -(10**20)
