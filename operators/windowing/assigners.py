"""Window assigners (PyFlink's names): which windows an element belongs to.

An assigner maps one element, with its timestamp, to the windows it falls in, and names the
trigger (and, for count windows, the evictor) those windows get unless the user sets
another. Event-time assigners use the element's timestamp; processing-time assigners ask the
:class:`WindowAssignerContext` for the operator's clock, so tests can inject one.

Session assigners are :class:`MergingWindowAssigner`: each element opens a window of one
gap, and windows that overlap or touch are merged (:meth:`MergingWindowAssigner.merge_windows`,
driven by :class:`~streamlet.operators.windowing.merging.MergingWindowSet`).

Every size, slide, gap and offset takes a :class:`~streamlet.operators.time.Time`,
:class:`~streamlet.operators.time.Duration`, :class:`datetime.timedelta` or an ``int`` of
milliseconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

from ..time import MIN_TIMESTAMP, to_millis
from .evictors import CountEvictor, Evictor
from .triggers import (
    CountTrigger,
    EventTimeTrigger,
    NeverTrigger,
    ProcessingTimeTrigger,
    PurgingTrigger,
    Trigger,
)
from .windows import GLOBAL_WINDOW, CountWindow, TimeWindow

__all__ = [
    "CountSlidingWindowAssigner",
    "CountTumblingWindowAssigner",
    "EventTimeSessionWindows",
    "GlobalWindows",
    "MergingWindowAssigner",
    "ProcessingTimeSessionWindows",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "WindowAssigner",
    "WindowAssignerContext",
]


class WindowAssignerContext(Protocol):
    """What an assigner may ask the window operator (implemented by the operator)."""

    def get_current_processing_time(self) -> int:
        """The operator's processing time in ms (the injected clock in tests)."""
        ...


class SessionWindowTimeGapExtractor(Protocol):
    """A dynamic session gap (PyFlink's name): the gap in ms that follows ``element``."""

    def extract(self, element: Any) -> int: ...


class WindowAssigner(ABC):
    """Assigns each element to zero or more windows (Flink's ``WindowAssigner``)."""

    #: Whether windows of this assigner merge (session windows); see MergingWindowAssigner.
    is_merging: ClassVar[bool] = False

    @abstractmethod
    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        """The windows ``element`` (with ``timestamp``, ``None`` if it has none) belongs to."""

    @abstractmethod
    def get_default_trigger(self) -> Trigger:
        """The trigger of this assigner's windows when the user sets none."""

    @abstractmethod
    def is_event_time(self) -> bool:
        """Whether windows follow event time (watermarks) rather than the wall clock."""

    def get_default_evictor(self) -> Evictor | None:
        """The evictor of this assigner's windows when the user sets none (usually none)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MergingWindowAssigner(WindowAssigner):
    """An assigner whose windows merge when they overlap or touch (session windows)."""

    is_merging: ClassVar[bool] = True

    def merge_windows(
        self, windows: Iterable[TimeWindow]
    ) -> list[tuple[TimeWindow, list[TimeWindow]]]:
        """Every group of two or more windows that overlap or touch, as ``(the window that
        covers the group, the group's windows)``; a window alone in its group is left out.

        Flink's ``TimeWindow.mergeWindows``: sort by start, then grow the current group while
        the next window intersects the group's cover. Equal windows count once.
        """
        return merge_time_windows(windows)


def merge_time_windows(windows: Iterable[TimeWindow]) -> list[tuple[TimeWindow, list[TimeWindow]]]:
    """See :meth:`MergingWindowAssigner.merge_windows` (the plain function behind it)."""
    merged: list[tuple[TimeWindow, list[TimeWindow]]] = []
    cover: TimeWindow | None = None
    group: list[TimeWindow] = []
    for candidate in sorted(set(windows)):
        if cover is not None and cover.intersects(candidate):
            cover = cover.cover(candidate)
            group.append(candidate)
            continue
        if cover is not None and len(group) > 1:
            merged.append((cover, group))
        cover, group = candidate, [candidate]
    if cover is not None and len(group) > 1:
        merged.append((cover, group))
    return merged


_NO_TIMESTAMP_HINT = (
    "Record has no timestamp (the event-time window assigner {name} needs one). Is the time "
    "characteristic set to processing time, or did you forget to call "
    "'assign_timestamps_and_watermarks(...)'?"
)


def _event_timestamp(timestamp: int | None, assigner: WindowAssigner) -> int:
    if timestamp is None or timestamp == MIN_TIMESTAMP:
        raise TypeError(_NO_TIMESTAMP_HINT.format(name=type(assigner).__name__))
    return timestamp


def _positive(value: Any, what: str) -> int:
    ms = to_millis(value, what, minimum=None)
    if ms <= 0:
        raise ValueError(f"{what} must be positive, got {value!r} ({ms} ms)")
    return ms


def _offset(offset: Any, limit: int, limit_name: str, what: str) -> int:
    ms = 0 if offset is None else to_millis(offset, f"{what} offset", minimum=None)
    if abs(ms) >= limit:
        raise ValueError(
            f"{what} offset must satisfy abs(offset) < {limit_name} ({limit} ms), got "
            f"{offset!r} ({ms} ms); an offset only shifts the windows, so use it modulo "
            f"the {limit_name}"
        )
    return ms


# --- Tumbling ---


class _TumblingWindows(WindowAssigner):
    """Shared part of the tumbling assigners: fixed-size windows that do not overlap."""

    __slots__ = ("_last", "_offset", "_size")

    def __init__(self, size: int, offset: int) -> None:
        self._last: list[Any] | None = None
        self._size = size
        self._offset = offset

    @classmethod
    def _build(cls, size: Any, offset: Any) -> Any:
        name = cls.__name__
        size_ms = _positive(size, f"{name} size")
        return cls(size_ms, _offset(offset, size_ms, "size", name))

    def get_size(self) -> int:
        """The window size in ms."""
        return self._size

    def get_offset(self) -> int:
        """The offset in ms the windows are aligned to (windows start at offset + k*size)."""
        return self._offset

    def _window_at(self, timestamp: int) -> list[Any]:
        # Consecutive records mostly fall into one window: the last answer is reused (the
        # caller must not change the list), which saves making and hashing a new window.
        start = timestamp - (timestamp - self._offset) % self._size
        last = self._last
        if last is not None and last[0][0] == start:
            return last
        windows = self._last = [TimeWindow(start, start + self._size)]
        return windows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self._size}, offset={self._offset})"


class TumblingEventTimeWindows(_TumblingWindows):
    """Event-time windows of one size that do not overlap: ``[offset + k*size, ... + size)``.

    With size 1 hour and offset 15 minutes the windows are 0:15-1:15, 1:15-2:15, ...
    """

    @staticmethod
    def of(size: Any, offset: Any = None) -> TumblingEventTimeWindows:
        """Windows of ``size``, shifted by ``offset`` (``abs(offset) < size``, default 0)."""
        built: TumblingEventTimeWindows = TumblingEventTimeWindows._build(size, offset)
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._window_at(_event_timestamp(timestamp, self))

    def get_default_trigger(self) -> Trigger:
        return EventTimeTrigger.create()

    def is_event_time(self) -> bool:
        return True


class TumblingProcessingTimeWindows(_TumblingWindows):
    """Processing-time windows of one size that do not overlap, by the operator's clock."""

    @staticmethod
    def of(size: Any, offset: Any = None) -> TumblingProcessingTimeWindows:
        """Windows of ``size``, shifted by ``offset`` (``abs(offset) < size``, default 0)."""
        built: TumblingProcessingTimeWindows = TumblingProcessingTimeWindows._build(size, offset)
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._window_at(context.get_current_processing_time())

    def get_default_trigger(self) -> Trigger:
        return ProcessingTimeTrigger.create()

    def is_event_time(self) -> bool:
        return False


# --- Sliding ---


class _SlidingWindows(WindowAssigner):
    """Shared part of the sliding assigners: windows of ``size`` starting every ``slide``."""

    __slots__ = ("_last", "_offset", "_size", "_slide")

    def __init__(self, size: int, slide: int, offset: int) -> None:
        self._last: list[Any] | None = None
        self._size = size
        self._slide = slide
        self._offset = offset

    @classmethod
    def _build(cls, size: Any, slide: Any, offset: Any) -> Any:
        name = cls.__name__
        size_ms = _positive(size, f"{name} size")
        slide_ms = _positive(slide, f"{name} slide")
        return cls(size_ms, slide_ms, _offset(offset, slide_ms, "slide", name))

    def get_size(self) -> int:
        """The window size in ms."""
        return self._size

    def get_slide(self) -> int:
        """How far apart window starts are, in ms."""
        return self._slide

    def get_offset(self) -> int:
        """The offset in ms window starts are aligned to (offset + k*slide)."""
        return self._offset

    def _windows_at(self, timestamp: int) -> list[Any]:
        size, slide = self._size, self._slide
        start = timestamp - (timestamp - self._offset) % slide
        last = self._last
        if last is not None and last[0][0] == start:
            # When size is a multiple of slide, the windows depend on the latest start only:
            # the last answer is reused (the caller must not change the list).
            return last
        # Latest start first, as Flink lists them; every start with start + size > timestamp.
        windows = [TimeWindow(s, s + size) for s in range(start, timestamp - size, -slide)]
        if size % slide == 0:
            self._last = windows
        return windows

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self._size}, slide={self._slide}, offset={self._offset})"
        )


class SlidingEventTimeWindows(_SlidingWindows):
    """Event-time windows of ``size`` that start every ``slide``: an element falls in about
    ``size / slide`` of them (size 10 min, slide 5 min: each element is in two windows)."""

    @staticmethod
    def of(size: Any, slide: Any, offset: Any = None) -> SlidingEventTimeWindows:
        """Windows of ``size`` every ``slide``, shifted by ``offset`` (``abs(offset) < slide``)."""
        built: SlidingEventTimeWindows = SlidingEventTimeWindows._build(size, slide, offset)
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._windows_at(_event_timestamp(timestamp, self))

    def get_default_trigger(self) -> Trigger:
        return EventTimeTrigger.create()

    def is_event_time(self) -> bool:
        return True


class SlidingProcessingTimeWindows(_SlidingWindows):
    """Processing-time windows of ``size`` that start every ``slide``, by the operator's clock."""

    @staticmethod
    def of(size: Any, slide: Any, offset: Any = None) -> SlidingProcessingTimeWindows:
        """Windows of ``size`` every ``slide``, shifted by ``offset`` (``abs(offset) < slide``)."""
        built: SlidingProcessingTimeWindows = SlidingProcessingTimeWindows._build(
            size, slide, offset
        )
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._windows_at(context.get_current_processing_time())

    def get_default_trigger(self) -> Trigger:
        return ProcessingTimeTrigger.create()

    def is_event_time(self) -> bool:
        return False


# --- Sessions ---


def _gap_function(extractor: Any, what: str) -> Callable[[Any], Any]:
    fn = getattr(extractor, "extract", None)
    if callable(fn):
        return fn
    if callable(extractor):
        return extractor
    raise TypeError(
        f"{what} extractor must have an extract(element) method returning the gap, or be a "
        f"callable element -> gap, got {extractor!r}"
    )


class _SessionWindows(MergingWindowAssigner):
    """Shared part of the session assigners: each element opens ``[t, t + gap)``."""

    __slots__ = ("_gap", "_gap_of")

    def __init__(self, gap: int | None, gap_of: Callable[[Any], Any] | None) -> None:
        self._gap = gap
        self._gap_of = gap_of

    @classmethod
    def _static(cls, gap: Any) -> Any:
        return cls(_positive(gap, f"{cls.__name__} gap"), None)

    @classmethod
    def _dynamic(cls, extractor: Any) -> Any:
        return cls(None, _gap_function(extractor, f"{cls.__name__}.with_dynamic_gap"))

    def get_gap(self) -> int | None:
        """The session gap in ms; ``None`` for a dynamic gap."""
        return self._gap

    def _window_at(self, element: Any, timestamp: int) -> list[Any]:
        gap = self._gap
        if gap is None:
            assert self._gap_of is not None
            raw = self._gap_of(element)
            gap = to_millis(raw, f"{type(self).__name__} dynamic gap", minimum=None)
            if gap <= 0:
                raise ValueError(
                    f"{type(self).__name__} dynamic gap must be positive, but the extractor "
                    f"returned {raw!r} ({gap} ms) for {element!r}"
                )
        return [TimeWindow(timestamp, timestamp + gap)]

    def __repr__(self) -> str:
        gap = "dynamic" if self._gap is None else self._gap
        return f"{type(self).__name__}(gap={gap})"


class EventTimeSessionWindows(_SessionWindows):
    """Event-time sessions: a key's elements closer than ``gap`` apart share one window."""

    @staticmethod
    def with_gap(gap: Any) -> EventTimeSessionWindows:
        """Sessions that end after ``gap`` without elements (``gap`` > 0)."""
        built: EventTimeSessionWindows = EventTimeSessionWindows._static(gap)
        return built

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> EventTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``), which must be positive."""
        built: EventTimeSessionWindows = EventTimeSessionWindows._dynamic(extractor)
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._window_at(element, _event_timestamp(timestamp, self))

    def get_default_trigger(self) -> Trigger:
        return EventTimeTrigger.create()

    def is_event_time(self) -> bool:
        return True


class ProcessingTimeSessionWindows(_SessionWindows):
    """Processing-time sessions: a key's elements that arrive closer than ``gap`` apart."""

    @staticmethod
    def with_gap(gap: Any) -> ProcessingTimeSessionWindows:
        """Sessions that end after ``gap`` without elements (``gap`` > 0)."""
        built: ProcessingTimeSessionWindows = ProcessingTimeSessionWindows._static(gap)
        return built

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> ProcessingTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``), which must be positive."""
        built: ProcessingTimeSessionWindows = ProcessingTimeSessionWindows._dynamic(extractor)
        return built

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return self._window_at(element, context.get_current_processing_time())

    def get_default_trigger(self) -> Trigger:
        return ProcessingTimeTrigger.create()

    def is_event_time(self) -> bool:
        return False


# --- Global and count windows ---


class GlobalWindows(WindowAssigner):
    """Puts every element in the one :data:`~.windows.GLOBAL_WINDOW`; its default trigger
    never fires, so set a trigger (``.trigger(CountTrigger.of(100))``)."""

    @staticmethod
    def create() -> GlobalWindows:
        return GlobalWindows()

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return [GLOBAL_WINDOW]

    def get_default_trigger(self) -> Trigger:
        return NeverTrigger()

    def is_event_time(self) -> bool:
        return False


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int number of elements, got {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return value


_COUNT_WINDOW = CountWindow(0)


class CountTumblingWindowAssigner(WindowAssigner):
    """Windows of ``n`` elements per key (``keyed.count_window(n)``): every element goes to
    ``CountWindow(0)``, whose default trigger fires and purges at every ``n``-th element."""

    __slots__ = ("_size",)

    def __init__(self, size: int) -> None:
        self._size = size

    @staticmethod
    def of(window_size: int) -> CountTumblingWindowAssigner:
        return CountTumblingWindowAssigner(_count(window_size, "CountTumblingWindowAssigner size"))

    def get_size(self) -> int:
        return self._size

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return [_COUNT_WINDOW]

    def get_default_trigger(self) -> Trigger:
        return PurgingTrigger.of(CountTrigger.of(self._size))

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"CountTumblingWindowAssigner(size={self._size})"


class CountSlidingWindowAssigner(WindowAssigner):
    """Windows of the last ``size`` elements per key, every ``slide`` elements
    (``keyed.count_window(size, slide)``): every element goes to ``CountWindow(0)``, whose
    default trigger fires every ``slide`` elements and default evictor keeps the last
    ``size``."""

    __slots__ = ("_size", "_slide")

    def __init__(self, size: int, slide: int) -> None:
        self._size = size
        self._slide = slide

    @staticmethod
    def of(window_size: int, window_slide: int) -> CountSlidingWindowAssigner:
        return CountSlidingWindowAssigner(
            _count(window_size, "CountSlidingWindowAssigner size"),
            _count(window_slide, "CountSlidingWindowAssigner slide"),
        )

    def get_size(self) -> int:
        return self._size

    def get_slide(self) -> int:
        return self._slide

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[Any]:
        return [_COUNT_WINDOW]

    def get_default_trigger(self) -> Trigger:
        return CountTrigger.of(self._slide)

    def get_default_evictor(self) -> Evictor | None:
        return CountEvictor.of(self._size)

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"CountSlidingWindowAssigner(size={self._size}, slide={self._slide})"
