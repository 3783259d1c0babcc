"""Evictors (Flink's; PyFlink has none): drop elements from a window before or after its
window function runs.

A window with an evictor keeps its elements (no incremental aggregation): when it fires,
the operator hands the evictor the window's elements as a list of :class:`TimestampedValue`,
which the evictor shortens in place, before (:meth:`Evictor.evict_before`) or after
(:meth:`Evictor.evict_after`) the function sees them; the operator keeps what is left.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple, Protocol

from ..time import to_millis

__all__ = ["CountEvictor", "Evictor", "EvictorContext", "TimeEvictor", "TimestampedValue"]


class TimestampedValue(NamedTuple):
    """One element of a window with its timestamp (``None`` for a record without one)."""

    value: Any
    timestamp: int | None

    def has_timestamp(self) -> bool:
        return self.timestamp is not None


class EvictorContext(Protocol):
    """What an evictor may ask the window operator (implemented by the operator)."""

    def get_current_processing_time(self) -> int: ...

    def get_current_watermark(self) -> int: ...


class Evictor(ABC):
    """Removes elements from a firing window's ``elements`` (in place, keeping the order of
    the rest); ``size`` is ``len(elements)``."""

    @abstractmethod
    def evict_before(
        self, elements: list[TimestampedValue], size: int, window: Any, ctx: EvictorContext
    ) -> None:
        """Evict before the window function runs."""

    @abstractmethod
    def evict_after(
        self, elements: list[TimestampedValue], size: int, window: Any, ctx: EvictorContext
    ) -> None:
        """Evict after the window function ran."""


class _BeforeOrAfter(Evictor):
    """Shared part of the built-ins: evict at one of the two points, chosen at creation."""

    __slots__ = ("_after",)

    def __init__(self, do_evict_after: bool) -> None:
        if not isinstance(do_evict_after, bool):
            raise TypeError(f"do_evict_after must be a bool, got {do_evict_after!r}")
        self._after = do_evict_after

    def _evict(self, elements: list[TimestampedValue], size: int) -> None:
        raise NotImplementedError

    def evict_before(
        self, elements: list[TimestampedValue], size: int, window: Any, ctx: EvictorContext
    ) -> None:
        if not self._after:
            self._evict(elements, size)

    def evict_after(
        self, elements: list[TimestampedValue], size: int, window: Any, ctx: EvictorContext
    ) -> None:
        if self._after:
            self._evict(elements, size)


class CountEvictor(_BeforeOrAfter):
    """Keeps the last ``max_count`` elements of a window (the earliest added go first)."""

    __slots__ = ("_max_count",)

    def __init__(self, max_count: int, do_evict_after: bool = False) -> None:
        if isinstance(max_count, bool) or not isinstance(max_count, int):
            raise TypeError(f"CountEvictor max_count must be an int, got {max_count!r}")
        if max_count < 0:
            raise ValueError(f"CountEvictor max_count must be at least 0, got {max_count!r}")
        super().__init__(do_evict_after)
        self._max_count = max_count

    @staticmethod
    def of(max_count: int, do_evict_after: bool = False) -> CountEvictor:
        return CountEvictor(max_count, do_evict_after)

    def _evict(self, elements: list[TimestampedValue], size: int) -> None:
        if size > self._max_count:
            del elements[: size - self._max_count]

    def __repr__(self) -> str:
        return f"CountEvictor.of({self._max_count}, do_evict_after={self._after})"


class TimeEvictor(_BeforeOrAfter):
    """Keeps the elements less than ``window_size`` older than the newest element: those
    with ``timestamp > newest - window_size``. Elements without a timestamp are kept."""

    __slots__ = ("_window_size",)

    def __init__(self, window_size: int, do_evict_after: bool = False) -> None:
        super().__init__(do_evict_after)
        self._window_size = window_size

    @staticmethod
    def of(window_size: Any, do_evict_after: bool = False) -> TimeEvictor:
        return TimeEvictor(to_millis(window_size, "TimeEvictor window_size"), do_evict_after)

    def get_window_size(self) -> int:
        return self._window_size

    def _evict(self, elements: list[TimestampedValue], size: int) -> None:
        stamps = [e.timestamp for e in elements if e.timestamp is not None]
        if not stamps:
            return
        cutoff = max(stamps) - self._window_size
        elements[:] = [e for e in elements if e.timestamp is None or e.timestamp > cutoff]

    def __repr__(self) -> str:
        return f"TimeEvictor.of({self._window_size}, do_evict_after={self._after})"
