"""Time values (PyFlink's names): ``Duration``, ``Time``, ``TimeDomain``, and the converter.

Flink keeps timestamps and watermarks as Java ``long`` milliseconds; streamlet keeps Python
``int`` milliseconds with the same bounds, :data:`MIN_TIMESTAMP` (Long.MIN_VALUE, "no
watermark yet") and :data:`MAX_WATERMARK_TIMESTAMP` (Long.MAX_VALUE, "end of time").

User-facing arguments that mean a span of time (an out-of-orderness bound, an idle timeout, a
window size) accept any of :class:`Duration`, :class:`Time`, :class:`datetime.timedelta` or
a plain ``int`` of milliseconds; :func:`to_millis` is the one place that turns them into
milliseconds and says what was wrong when it cannot.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from enum import Enum
from typing import Any

__all__ = [
    "MAX_WATERMARK_TIMESTAMP",
    "MIN_TIMESTAMP",
    "Duration",
    "Time",
    "TimeDomain",
    "to_millis",
]

MIN_TIMESTAMP = -(2**63)
"""The lowest timestamp (Java's Long.MIN_VALUE): the watermark before any was seen."""
MAX_WATERMARK_TIMESTAMP = 2**63 - 1
"""The highest timestamp (Java's Long.MAX_VALUE): the watermark that ends event time."""

_NANOS_PER_MILLI = 1_000_000
_NANOS_PER_MICRO = 1_000
_MILLIS_PER_SECOND = 1_000
_MILLIS_PER_MINUTE = 60 * _MILLIS_PER_SECOND
_MILLIS_PER_HOUR = 60 * _MILLIS_PER_MINUTE
_MILLIS_PER_DAY = 24 * _MILLIS_PER_HOUR
#: For reprs: the largest unit that divides a span of milliseconds evenly.
_UNITS_MS = (
    (_MILLIS_PER_DAY, "days"),
    (_MILLIS_PER_HOUR, "hours"),
    (_MILLIS_PER_MINUTE, "minutes"),
    (_MILLIS_PER_SECOND, "seconds"),
)
_ONE_MILLI = timedelta(milliseconds=1)


def _check_int(value: Any, where: str) -> int:
    """``value`` as an int; a TypeError naming ``where`` for bool, float, str, ..."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where} takes an int, got {value!r} ({type(value).__name__})")
    return int(value)


@functools.total_ordering
class Duration:
    """A span of time (PyFlink's ``pyflink.common.Duration``), held as integer nanoseconds.

    Build one with the ``of_*`` constructors (``Duration.of_seconds(5)``); negative spans are
    allowed, the code that takes a duration decides which it accepts. Durations compare and
    hash by their length, so ``Duration.of_seconds(1) == Duration.of_millis(1000)``.
    """

    __slots__ = ("_nanos",)

    _nanos: int

    def __init__(self, nanos: int) -> None:
        self._nanos = _check_int(nanos, "Duration")

    @staticmethod
    def of_nanos(nanos: int) -> Duration:
        return Duration(_check_int(nanos, "Duration.of_nanos"))

    @staticmethod
    def of_millis(millis: int) -> Duration:
        return Duration(_check_int(millis, "Duration.of_millis") * _NANOS_PER_MILLI)

    @staticmethod
    def of_seconds(seconds: int) -> Duration:
        ms = _check_int(seconds, "Duration.of_seconds") * _MILLIS_PER_SECOND
        return Duration(ms * _NANOS_PER_MILLI)

    @staticmethod
    def of_minutes(minutes: int) -> Duration:
        ms = _check_int(minutes, "Duration.of_minutes") * _MILLIS_PER_MINUTE
        return Duration(ms * _NANOS_PER_MILLI)

    @staticmethod
    def of_hours(hours: int) -> Duration:
        ms = _check_int(hours, "Duration.of_hours") * _MILLIS_PER_HOUR
        return Duration(ms * _NANOS_PER_MILLI)

    @staticmethod
    def of_days(days: int) -> Duration:
        ms = _check_int(days, "Duration.of_days") * _MILLIS_PER_DAY
        return Duration(ms * _NANOS_PER_MILLI)

    def to_nanos(self) -> int:
        return self._nanos

    def to_milliseconds(self) -> int:
        """Whole milliseconds, rounded down (floor: -1 ns is -1 ms, 999_999 ns is 0 ms)."""
        return self._nanos // _NANOS_PER_MILLI

    def to_timedelta(self) -> timedelta:
        """As a :class:`datetime.timedelta`, rounded down to whole microseconds (its unit)."""
        return timedelta(microseconds=self._nanos // _NANOS_PER_MICRO)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return self._nanos == other._nanos

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return self._nanos < other._nanos

    def __hash__(self) -> int:
        return hash((Duration, self._nanos))

    def __repr__(self) -> str:
        if self._nanos % _NANOS_PER_MILLI:
            return f"Duration.of_nanos({self._nanos})"
        ms = self._nanos // _NANOS_PER_MILLI
        for unit_ms, unit in _UNITS_MS:
            if ms and ms % unit_ms == 0:
                return f"Duration.of_{unit}({ms // unit_ms})"
        return f"Duration.of_millis({ms})"


class Time:
    """A span of whole milliseconds (PyFlink's ``pyflink.datastream.Time``): window sizes,
    slides and allowed lateness, ``Time.seconds(10)``."""

    __slots__ = ("_millis",)

    _millis: int

    def __init__(self, millis: int) -> None:
        self._millis = _check_int(millis, "Time")

    @staticmethod
    def milliseconds(millis: int) -> Time:
        return Time(_check_int(millis, "Time.milliseconds"))

    @staticmethod
    def seconds(seconds: int) -> Time:
        return Time(_check_int(seconds, "Time.seconds") * _MILLIS_PER_SECOND)

    @staticmethod
    def minutes(minutes: int) -> Time:
        return Time(_check_int(minutes, "Time.minutes") * _MILLIS_PER_MINUTE)

    @staticmethod
    def hours(hours: int) -> Time:
        return Time(_check_int(hours, "Time.hours") * _MILLIS_PER_HOUR)

    @staticmethod
    def days(days: int) -> Time:
        return Time(_check_int(days, "Time.days") * _MILLIS_PER_DAY)

    def to_milliseconds(self) -> int:
        return self._millis

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Time):
            return NotImplemented
        return self._millis == other._millis

    def __hash__(self) -> int:
        return hash((Time, self._millis))

    def __repr__(self) -> str:
        ms = self._millis
        for unit_ms, unit in _UNITS_MS:
            if ms and ms % unit_ms == 0:
                return f"Time.{unit}({ms // unit_ms})"
        return f"Time.milliseconds({ms})"


class TimeDomain(Enum):
    """Which clock a timer or a window follows (PyFlink's ``TimeDomain``)."""

    EVENT_TIME = 0
    """The records' timestamps, advanced by watermarks."""
    PROCESSING_TIME = 1
    """The machine's wall clock."""


def to_millis(value: Any, what: str, *, minimum: int | None = 0) -> int:
    """``value`` (a :class:`Duration`, :class:`Time`, :class:`datetime.timedelta` or an
    ``int`` of milliseconds) as whole milliseconds.

    Durations and timedeltas finer than a millisecond round down (the exact integer floor:
    ``timedelta(microseconds=1500)`` is 1 ms, ``timedelta(microseconds=-1)`` is -1 ms).
    ``what`` names the argument in the errors: a TypeError for any other type (bool and
    float included: a float of milliseconds is too easily seconds by mistake), and a
    ValueError when the result is below ``minimum`` (``minimum=None`` accepts any value).
    """
    if isinstance(value, bool):
        ms = None
    elif isinstance(value, int):
        ms = int(value)
    elif isinstance(value, Duration):
        ms = value.to_milliseconds()
    elif isinstance(value, Time):
        ms = value.to_milliseconds()
    elif isinstance(value, timedelta):
        ms = value // _ONE_MILLI
    else:
        ms = None
    if ms is None:
        raise TypeError(
            f"{what} must be a Duration, Time, datetime.timedelta or an int of milliseconds, "
            f"got {value!r} ({type(value).__name__}); e.g. Duration.of_seconds(5)"
        )
    if minimum is not None and ms < minimum:
        raise ValueError(f"{what} must be at least {minimum} ms, got {value!r} ({ms} ms)")
    return ms
