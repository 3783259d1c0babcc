"""The windows themselves: :class:`TimeWindow`, :class:`CountWindow`, :class:`GlobalWindow`.

A window is the namespace of a key's window contents, trigger state and timers, so windows
are stored as keys of dicts inside keyed state. They are ``NamedTuple`` classes defined at
module level for that reason: they hash and compare by value, cost no more than a tuple, and
the default state codec (:mod:`streamlet.state.json_codec`) restores a module-level
namedtuple as the same class, also when it is a dict key.

Every window answers :meth:`max_timestamp`: the last millisecond that belongs to it, which
is the timestamp its results carry and the event time at which it is complete.
"""

from __future__ import annotations

from typing import NamedTuple

from ..time import MAX_WATERMARK_TIMESTAMP

__all__ = ["GLOBAL_WINDOW", "CountWindow", "GlobalWindow", "TimeWindow"]


class TimeWindow(NamedTuple):
    """The half-open span of event or processing time ``[start, end)``, in milliseconds."""

    start: int
    end: int

    def max_timestamp(self) -> int:
        """The last millisecond inside the window (``end - 1``)."""
        return self.end - 1

    def intersects(self, other: TimeWindow) -> bool:
        """Whether the two windows overlap or touch (``[0, 5)`` and ``[5, 9)`` do).

        Touching counts, as in Flink, so that two sessions whose gaps meet become one.
        """
        return self.start <= other.end and self.end >= other.start

    def cover(self, other: TimeWindow) -> TimeWindow:
        """The smallest window that contains both windows."""
        return TimeWindow(min(self.start, other.start), max(self.end, other.end))

    @staticmethod
    def get_window_start_with_offset(timestamp: int, offset: int, window_size: int) -> int:
        """The start of the window of ``window_size`` ms, aligned to ``offset``, that holds
        ``timestamp``.

        Windows start at ``offset + k * window_size`` for every integer ``k``; negative
        timestamps fall in the window that starts at or before them (Python's ``%`` floors,
        which is the correction Flink applies to Java's remainder by hand).
        """
        if window_size <= 0:
            raise ValueError(f"window_size must be positive, got {window_size!r}")
        return timestamp - (timestamp - offset) % window_size


class CountWindow(NamedTuple):
    """A window of a count-based assigner, told apart by ``id``; it never ends in time."""

    id: int

    def max_timestamp(self) -> int:
        """:data:`~streamlet.operators.time.MAX_WATERMARK_TIMESTAMP`: count windows have no
        end in time, their trigger decides."""
        return MAX_WATERMARK_TIMESTAMP


class GlobalWindow(NamedTuple):
    """The one window of :class:`~streamlet.operators.windowing.assigners.GlobalWindows`
    (use :data:`GLOBAL_WINDOW`)."""

    def max_timestamp(self) -> int:
        """:data:`~streamlet.operators.time.MAX_WATERMARK_TIMESTAMP`: it never ends in time."""
        return MAX_WATERMARK_TIMESTAMP


GLOBAL_WINDOW = GlobalWindow()
"""The one instance of :class:`GlobalWindow` (all instances are equal anyway)."""
