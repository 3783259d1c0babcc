"""Joins of two streams (Flink's names in snake_case): interval joins, window joins and
co-groups.

- ``a.key_by(k1).interval_join(b.key_by(k2)).between(lower, upper).process(fn)``: each left
  record at ``t`` meets every right record of its key in ``[t + lower, t + upper]`` (both
  bounds inclusive unless ``lower_bound_exclusive()`` / ``upper_bound_exclusive()``), in
  event time; ``fn`` is a :class:`~streamlet.operators.joins.ProcessJoinFunction`. The
  operator is :class:`~streamlet.operators.joins.IntervalJoinOperator`.
- ``a.join(b).where(k1).equal_to(k2).window(assigner).apply(fn)``: the pairs of records of
  equal keys in the same window, ``fn`` a JoinFunction (one output per pair), a
  FlatJoinFunction or a callable ``f(first, second)``.
- ``a.co_group(b).where(k1).equal_to(k2).window(assigner).apply(fn)``: per key and window
  both inputs' records, ``fn.co_group(firsts, seconds)`` (also when one side is empty).

The window forms are built as Flink's ``CoGroupedStreams`` builds them: each input mapped to
``(0, record)`` / ``(1, record)``, the two unioned, keyed by a selector that applies the
input's own key selector, windowed, and a window function that splits by tag
(:class:`~streamlet.operators.joins.CoGroupWindowFunction`). Results carry the window's
``max_timestamp()``. ``trigger``, ``evictor`` and ``allowed_lateness`` apply to that window.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from streamlet.operators.connected import KeySelectors
from streamlet.operators.functions import key_selector_of
from streamlet.operators.joins import CoGroupWindowFunction, FlatJoinFunction, IntervalJoinSpec
from streamlet.operators.records import OutputTag
from streamlet.operators.time import to_millis
from streamlet.operators.windowing.assigners import WindowAssigner
from streamlet.operators.windowing.evictors import Evictor
from streamlet.operators.windowing.triggers import Trigger

__all__ = ["CoGroupedStreams", "IntervalJoin", "IntervalJoined", "JoinedStreams"]


class KeyedStream(Protocol):
    """What the interval join needs of its keyed streams (``datastream`` creates joins, so
    this module does not import it)."""

    _key_selector: Callable[[Any], Any] | None

    def _interval_join_node(
        self, second: Any, func: Any, key_selectors: KeySelectors, spec: IntervalJoinSpec
    ) -> Any: ...


class DataStream(Protocol):
    """What a window join needs of its streams: tagging, union, key_by, window."""

    def map(self, func: Any, output_type: Any = None) -> Any: ...

    def union(self, *streams: Any) -> Any: ...


# --- interval join ---


class IntervalJoin:
    """Two keyed streams to join by event time (``left.interval_join(right)``); say the
    bounds with :meth:`between`."""

    def __init__(self, left: KeyedStream, right: KeyedStream) -> None:
        for what, stream in (("left", left), ("right", right)):
            if getattr(stream, "_key_selector", None) is None:
                raise TypeError(
                    f"interval_join() needs two keyed streams, but the {what} one is not "
                    f"keyed: write a.key_by(k1).interval_join(b.key_by(k2))"
                )
        self._left = left
        self._right = right

    def between(self, lower_bound: Any, upper_bound: Any) -> IntervalJoined:
        """Join a left record at ``t`` with the right records in ``[t + lower_bound,
        t + upper_bound]`` (each a Time, Duration, timedelta or int of ms; negative for
        right records before the left one).

        :raises ValueError: if ``lower_bound > upper_bound``
        :raises TypeError: if a bound is not a span of time
        """
        lower = to_millis(lower_bound, "interval_join lower_bound", minimum=None)
        upper = to_millis(upper_bound, "interval_join upper_bound", minimum=None)
        return IntervalJoined(self._left, self._right, IntervalJoinSpec(lower, upper))


class IntervalJoined:
    """An interval join with its bounds; finish it with :meth:`process`."""

    def __init__(self, left: KeyedStream, right: KeyedStream, spec: IntervalJoinSpec) -> None:
        self._left = left
        self._right = right
        self._spec = spec

    def _change(self, **changes: Any) -> IntervalJoined:
        self._spec = dataclasses.replace(self._spec, **changes)
        return self

    def lower_bound_exclusive(self) -> IntervalJoined:
        """Exclude the lower bound: right records must be after ``t + lower_bound``."""
        return self._change(lower_inclusive=False)

    def upper_bound_exclusive(self) -> IntervalJoined:
        """Exclude the upper bound: right records must be before ``t + upper_bound``."""
        return self._change(upper_inclusive=False)

    def side_output_left_late_data(self, output_tag: OutputTag) -> IntervalJoined:
        """Send left records that arrive behind the watermark to side output ``output_tag``
        instead of dropping them (read it with ``get_side_output`` on the result)."""
        return self._change(left_late_tag=_tag(output_tag, "side_output_left_late_data"))

    def side_output_right_late_data(self, output_tag: OutputTag) -> IntervalJoined:
        """As :meth:`side_output_left_late_data`, for the right input's late records."""
        return self._change(right_late_tag=_tag(output_tag, "side_output_right_late_data"))

    def process(self, process_join_function: Any, output_type: Any = None) -> Any:
        """Call ``process_join_function.process_element(left, right, ctx)`` (a
        ProcessJoinFunction, or a callable of those arguments) for every joined pair; its
        outputs carry the later of the two timestamps. Returns the joined stream.

        :raises TypeError: for a class, or an object without ``process_element``
        """
        fn = process_join_function
        if isinstance(fn, type):
            raise TypeError(
                f"interval_join(...).process() needs an instance, got the class "
                f"{fn.__name__}; pass {fn.__name__}() instead"
            )
        if not (callable(getattr(fn, "process_element", None)) or callable(fn)):
            raise TypeError(
                f"interval_join(...).process() needs a ProcessJoinFunction (or a callable "
                f"(left, right, ctx)), got {fn!r}"
            )
        left, right = self._left, self._right
        assert left._key_selector is not None and right._key_selector is not None
        key_selectors = KeySelectors(left._key_selector, right._key_selector)
        return left._interval_join_node(right, fn, key_selectors, self._spec)


def _tag(output_tag: Any, what: str) -> str:
    if not isinstance(output_tag, OutputTag):
        raise TypeError(f"{what}() needs an OutputTag, got {output_tag!r}")
    return output_tag.tag_id


# --- window join and co-group ---


def _tag_first(value: Any) -> tuple[int, Any]:
    return (0, value)


def _tag_second(value: Any) -> tuple[int, Any]:
    return (1, value)


class _UnionKeySelector:
    """The key of a tagged record: its input's key selector applied to its value."""

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> None:
        self.first = first
        self.second = second

    def __call__(self, tagged: tuple[int, Any]) -> Any:
        tag, value = tagged
        return self.second(value) if tag else self.first(value)


class _WindowedPair:
    """What the window join and the co-group share: the two inputs, their key selectors,
    the window and its settings, set in order (where, equal_to, window)."""

    _api = ""

    def __init__(self, first: DataStream, second: DataStream) -> None:
        self._first = first
        self._second = second
        self._key1: Callable[[Any], Any] | None = None
        self._key2: Callable[[Any], Any] | None = None
        self._assigner: WindowAssigner | None = None
        self._trigger: Trigger | None = None
        self._evictor: Evictor | None = None
        self._lateness = 0

    def _copy(self, **changes: Any) -> Any:
        other = copy.copy(self)
        for name, value in changes.items():
            setattr(other, name, value)
        return other

    def _need(self, what: str, *, key1: bool = False, key2: bool = False) -> None:
        chain = f"{self._api}(other).where(key1).equal_to(key2).window(assigner)"
        if key1 and self._key1 is None:
            raise TypeError(f"{what}() needs where(key_selector) first: {chain}")
        if key2 and self._key2 is None:
            raise TypeError(f"{what}() needs equal_to(key_selector) after where(): {chain}")

    def where(self, key_selector: Any, key_type: Any = None) -> Any:
        """The first input's key selector (keys as in ``key_by``)."""
        return self._copy(_key1=key_selector_of(key_selector))

    def equal_to(self, key_selector: Any, key_type: Any = None) -> Any:
        """The second input's key selector: records whose keys are equal meet.

        :raises TypeError: without :meth:`where` first
        """
        self._need("equal_to", key1=True)
        return self._copy(_key2=key_selector_of(key_selector))

    def window(self, assigner: WindowAssigner) -> Any:
        """The windows records meet in (``TumblingEventTimeWindows.of(...)``, ...).

        :raises TypeError: without :meth:`where` and :meth:`equal_to`, or for an assigner
            that is not a WindowAssigner
        """
        self._need("window", key1=True, key2=True)
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(f"window() needs a WindowAssigner, got {assigner!r}")
        return self._copy(_assigner=assigner)

    def trigger(self, trigger: Trigger) -> Any:
        """Fire the windows with ``trigger`` instead of the assigner's default."""
        self._need_window("trigger")
        if not isinstance(trigger, Trigger):
            raise TypeError(f"trigger() needs a Trigger, got {trigger!r}")
        return self._copy(_trigger=trigger)

    def evictor(self, evictor: Evictor) -> Any:
        """Evict records from the windows before or after the function runs."""
        self._need_window("evictor")
        if not isinstance(evictor, Evictor):
            raise TypeError(f"evictor() needs an Evictor, got {evictor!r}")
        return self._copy(_evictor=evictor)

    def allowed_lateness(self, time: Any) -> Any:
        """Keep event-time windows this long after their end (see WindowedStream)."""
        self._need_window("allowed_lateness")
        return self._copy(_lateness=to_millis(time, "allowed_lateness"))

    def _need_window(self, what: str) -> None:
        self._need(what, key1=True, key2=True)
        if self._assigner is None:
            raise TypeError(
                f"{what}() needs window(assigner) first: {self._api}(other).where(key1)"
                f".equal_to(key2).window(assigner).{what}(...)"
            )

    def _apply(self, kind: str, function: Any) -> Any:
        self._need_window("apply")
        assert self._key1 is not None and self._key2 is not None
        window_function = CoGroupWindowFunction(kind, function)
        label = "Join" if self._api == "join" else "CoGroup"
        tagged = self._first.map(_tag_first).name(f"{label}: tag first input")
        tagged_second = self._second.map(_tag_second).name(f"{label}: tag second input")
        windowed = (
            tagged.union(tagged_second)
            .key_by(_UnionKeySelector(self._key1, self._key2))
            .window(self._assigner)
        )
        if self._trigger is not None:
            windowed = windowed.trigger(self._trigger)
        if self._evictor is not None:
            windowed = windowed.evictor(self._evictor)
        if self._lateness:
            windowed = windowed.allowed_lateness(self._lateness)
        return windowed.apply(window_function).name(f"Window({label})")


class JoinedStreams(_WindowedPair):
    """``a.join(b)``: pairs of records with equal keys in the same window (an inner join)."""

    _api = "join"

    def apply(self, function: Any, output_type: Any = None) -> Any:
        """Call ``function`` for every pair of a window: a JoinFunction's ``join(first,
        second)`` (or a callable) returns one output, a FlatJoinFunction's returns or
        yields any number. Outputs carry the window's ``max_timestamp()``.

        :raises TypeError: before ``window()``, or for an unusable function
        """
        kind = "flat_join" if isinstance(function, FlatJoinFunction) else "join"
        return self._apply(kind, function)


class CoGroupedStreams(_WindowedPair):
    """``a.co_group(b)``: per key and window, the records of both inputs."""

    _api = "co_group"

    def apply(self, function: Any, output_type: Any = None) -> Any:
        """Call ``function.co_group(firsts, seconds)`` (a CoGroupFunction, or a callable)
        once per key and window that has records of either input; it returns or yields
        the outputs, which carry the window's ``max_timestamp()``.

        :raises TypeError: before ``window()``, or for an unusable function
        """
        return self._apply("co_group", function)
