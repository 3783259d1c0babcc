"""Triggers (PyFlink's names): when a window's contents are emitted, and when dropped.

The window operator asks a window's trigger about every element added to it and every timer
that fires for it; the trigger answers with a :class:`TriggerResult` and may register timers
and keep state through the :class:`TriggerContext`. That state is partitioned: scoped to the
current key *and* window, so one trigger instance serves every window of every key. Trigger
objects therefore hold configuration only, never per-window values.

Triggers of merging windows (sessions) must say :meth:`Trigger.can_merge` and, in
:meth:`Trigger.on_merge`, combine the merged windows' state
(:meth:`OnMergeContext.merge_partitioned_state`) and re-register the timers they need for the
merged window.

The built-ins follow Flink's semantics (its ``EventTimeTrigger``, ``ProcessingTimeTrigger``,
``CountTrigger``, ``PurgingTrigger``, ``Continuous*Trigger`` and ``GlobalWindows``'
``NeverTrigger``), including the names of their partitioned state ("count", "fire-time").
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Protocol

from streamlet.state import ReducingStateDescriptor, StateDescriptor

from ..time import to_millis

__all__ = [
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountTrigger",
    "EventTimeTrigger",
    "NeverTrigger",
    "OnMergeContext",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "Trigger",
    "TriggerContext",
    "TriggerResult",
]


class TriggerResult(Enum):
    """What the window operator does with a window after asking its trigger."""

    CONTINUE = (False, False)
    """Nothing: keep collecting."""
    FIRE = (True, False)
    """Emit the window's result and keep its contents (later firings see them again)."""
    PURGE = (False, True)
    """Drop the window's contents without emitting."""
    FIRE_AND_PURGE = (True, True)
    """Emit the window's result, then drop its contents."""

    def is_fire(self) -> bool:
        return self.value[0]

    def is_purge(self) -> bool:
        return self.value[1]


class TriggerContext(Protocol):
    """What a trigger may ask of the window operator (implemented by the operator), for the
    current key and the window being asked about."""

    def get_current_processing_time(self) -> int:
        """The operator's processing time in ms."""
        ...

    def get_current_watermark(self) -> int:
        """The operator's current event-time watermark in ms."""
        ...

    def register_processing_time_timer(self, time: int) -> None:
        """Call the trigger's ``on_processing_time`` for this window at processing ``time``."""
        ...

    def register_event_time_timer(self, time: int) -> None:
        """Call the trigger's ``on_event_time`` for this window when the watermark reaches
        ``time``."""
        ...

    def delete_processing_time_timer(self, time: int) -> None: ...

    def delete_event_time_timer(self, time: int) -> None: ...

    def get_partitioned_state(self, descriptor: StateDescriptor) -> Any:
        """The state ``descriptor`` declares, scoped to the current key and window (a
        ValueState, ReducingState, ListState, ... view by the descriptor's kind)."""
        ...


class OnMergeContext(TriggerContext, Protocol):
    """The context of :meth:`Trigger.on_merge`, whose window is the merge result."""

    def merge_partitioned_state(self, descriptor: StateDescriptor) -> None:
        """Fold the state ``descriptor`` declares of every merged window into the state of
        the merge result (a reducing or aggregating state merges its values)."""
        ...


class Trigger(ABC):
    """Decides when a window fires and purges (Flink's ``Trigger``); holds no window state
    itself, see the module docs."""

    @abstractmethod
    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        """Called for every element added to ``window``."""

    @abstractmethod
    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        """Called when a processing-time timer this trigger registered for ``window`` fires."""

    @abstractmethod
    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        """Called when an event-time timer this trigger registered for ``window`` fires."""

    def can_merge(self) -> bool:
        """Whether this trigger supports merging windows (:meth:`on_merge`)."""
        return False

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        """Called when windows were merged into ``window``: merge their partitioned state and
        register the timers ``window`` needs (the merged windows' timers are deleted)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not support merging windows (session windows); "
            f"override can_merge() to return True and implement on_merge(window, ctx)"
        )

    @abstractmethod
    def clear(self, window: Any, ctx: TriggerContext) -> None:
        """Called when ``window`` is discarded: delete its timers and partitioned state."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EventTimeTrigger(Trigger):
    """Fires once the watermark passes the window's end (the default of event-time
    assigners); an element arriving after that, within the allowed lateness, fires at once."""

    @staticmethod
    def create() -> EventTimeTrigger:
        return EventTimeTrigger()

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        end = window.max_timestamp()
        if end <= ctx.get_current_watermark():
            return TriggerResult.FIRE  # the watermark is past the window: a late firing
        ctx.register_event_time_timer(end)
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        end = window.max_timestamp()
        # Not when the watermark is already past: that timer would fire at once, and the
        # next element (or none) decides, as for a window that never merged.
        if end > ctx.get_current_watermark():
            ctx.register_event_time_timer(end)

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        ctx.delete_event_time_timer(window.max_timestamp())


class ProcessingTimeTrigger(Trigger):
    """Fires when the operator's clock reaches the window's end (the default of
    processing-time assigners)."""

    @staticmethod
    def create() -> ProcessingTimeTrigger:
        return ProcessingTimeTrigger()

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        ctx.register_processing_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.FIRE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        end = window.max_timestamp()
        if end > ctx.get_current_processing_time():
            ctx.register_processing_time_timer(end)

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        ctx.delete_processing_time_timer(window.max_timestamp())


_COUNT = ReducingStateDescriptor("count", operator.add)


class CountTrigger(Trigger):
    """Fires every ``count`` elements of a window (the count is partitioned state "count",
    reset at each firing; merged windows add their counts)."""

    __slots__ = ("_max_count",)

    def __init__(self, max_count: int) -> None:
        if isinstance(max_count, bool) or not isinstance(max_count, int):
            raise TypeError(f"CountTrigger count must be an int, got {max_count!r}")
        if max_count <= 0:
            raise ValueError(f"CountTrigger count must be positive, got {max_count!r}")
        self._max_count = max_count

    @staticmethod
    def of(count: int) -> CountTrigger:
        return CountTrigger(count)

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        count = ctx.get_partitioned_state(_COUNT)
        count.add(1)
        if count.get() >= self._max_count:
            count.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        ctx.merge_partitioned_state(_COUNT)

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        ctx.get_partitioned_state(_COUNT).clear()

    def __repr__(self) -> str:
        return f"CountTrigger.of({self._max_count})"


class PurgingTrigger(Trigger):
    """Wraps ``trigger`` so that each of its firings also purges (FIRE -> FIRE_AND_PURGE)."""

    __slots__ = ("_nested",)

    def __init__(self, nested: Trigger) -> None:
        if not isinstance(nested, Trigger):
            raise TypeError(f"PurgingTrigger.of takes a Trigger, got {nested!r}")
        self._nested = nested

    @staticmethod
    def of(nested_trigger: Trigger) -> PurgingTrigger:
        return PurgingTrigger(nested_trigger)

    def get_nested_trigger(self) -> Trigger:
        return self._nested

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return TriggerResult.FIRE_AND_PURGE if result.is_fire() else result

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        return self._purging(self._nested.on_element(element, timestamp, window, ctx))

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self._nested.on_event_time(time, window, ctx))

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self._nested.on_processing_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self._nested.can_merge()

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        self._nested.on_merge(window, ctx)

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        self._nested.clear(window, ctx)

    def __repr__(self) -> str:
        return f"PurgingTrigger.of({self._nested!r})"


#: The next early firing of a Continuous*Trigger (the smallest wins when windows merge).
_FIRE_TIME = ReducingStateDescriptor("fire-time", min)


def _interval(interval: Any, what: str) -> int:
    ms = to_millis(interval, f"{what} interval", minimum=None)
    if ms <= 0:
        raise ValueError(f"{what} interval must be positive, got {interval!r} ({ms} ms)")
    return ms


class _ContinuousTrigger(Trigger):
    """Shared part of the continuous triggers: early firings every ``interval``, aligned to
    multiples of it, never later than the window's end; the next one is kept in the
    partitioned state "fire-time"."""

    __slots__ = ("_interval",)

    def __init__(self, interval: int) -> None:
        self._interval = interval

    def get_interval(self) -> int:
        return self._interval

    def _register(self, time: int, window: Any, ctx: TriggerContext) -> None:
        raise NotImplementedError

    def _delete(self, time: int, ctx: TriggerContext) -> None:
        raise NotImplementedError

    def _register_next(self, time: int, window: Any, ctx: TriggerContext, state: Any) -> None:
        next_fire = min(time + self._interval, window.max_timestamp())
        state.add(next_fire)
        self._register(next_fire, window, ctx)

    def _aligned(self, time: int) -> int:
        """The multiple of the interval at or before ``time`` (floor, also when negative)."""
        return time - time % self._interval

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        ctx.merge_partitioned_state(_FIRE_TIME)
        next_fire = ctx.get_partitioned_state(_FIRE_TIME).get()
        if next_fire is not None:
            self._register(next_fire, window, ctx)

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        state = ctx.get_partitioned_state(_FIRE_TIME)
        next_fire = state.get()
        if next_fire is not None:
            self._delete(next_fire, ctx)
            state.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}.of({self._interval})"


class ContinuousEventTimeTrigger(_ContinuousTrigger):
    """Fires every ``interval`` of event time while the window is open, and at its end."""

    @staticmethod
    def of(interval: Any) -> ContinuousEventTimeTrigger:
        return ContinuousEventTimeTrigger(_interval(interval, "ContinuousEventTimeTrigger"))

    def _register(self, time: int, window: Any, ctx: TriggerContext) -> None:
        ctx.register_event_time_timer(time)

    def _delete(self, time: int, ctx: TriggerContext) -> None:
        ctx.delete_event_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        end = window.max_timestamp()
        if end <= ctx.get_current_watermark():
            return TriggerResult.FIRE  # the watermark is past the window: a late firing
        ctx.register_event_time_timer(end)
        state = ctx.get_partitioned_state(_FIRE_TIME)
        if state.get() is None:
            if timestamp is None:
                raise TypeError(
                    "ContinuousEventTimeTrigger got a record without a timestamp; call "
                    "'assign_timestamps_and_watermarks(...)' first, or use "
                    "ContinuousProcessingTimeTrigger"
                )
            self._register_next(self._aligned(timestamp), window, ctx, state)
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        if time == window.max_timestamp():
            return TriggerResult.FIRE
        state = ctx.get_partitioned_state(_FIRE_TIME)
        if state.get() == time:
            state.clear()
            self._register_next(time, window, ctx, state)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE


class ContinuousProcessingTimeTrigger(_ContinuousTrigger):
    """Fires every ``interval`` of processing time while the window is open."""

    @staticmethod
    def of(interval: Any) -> ContinuousProcessingTimeTrigger:
        return ContinuousProcessingTimeTrigger(
            _interval(interval, "ContinuousProcessingTimeTrigger")
        )

    def _register(self, time: int, window: Any, ctx: TriggerContext) -> None:
        ctx.register_processing_time_timer(time)

    def _delete(self, time: int, ctx: TriggerContext) -> None:
        ctx.delete_processing_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        state = ctx.get_partitioned_state(_FIRE_TIME)
        if state.get() is None:
            now = ctx.get_current_processing_time()
            self._register_next(self._aligned(now), window, ctx, state)
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        state = ctx.get_partitioned_state(_FIRE_TIME)
        if state.get() == time:
            state.clear()
            self._register_next(time, window, ctx, state)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE


class NeverTrigger(Trigger):
    """Never fires (the default of :class:`~.assigners.GlobalWindows`, whose one window
    never ends): set a real trigger with ``.trigger(...)``."""

    def on_element(
        self, element: Any, timestamp: int | None, window: Any, ctx: TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Any, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_merge(self, window: Any, ctx: OnMergeContext) -> None:
        """Nothing to merge."""

    def clear(self, window: Any, ctx: TriggerContext) -> None:
        """Nothing to clear."""
