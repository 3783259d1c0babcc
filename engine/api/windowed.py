"""``WindowedStream`` and ``AllWindowedStream``: the windowing API (PyFlink's names).

``keyed.window(assigner)`` returns a WindowedStream; its settings (``trigger``,
``allowed_lateness``, ``side_output_late_data``, ``evictor``) return the same stream, and a
window function (``reduce``, ``aggregate``, ``process``, ``apply``) adds the window operator
to the graph and returns its output stream. ``ds.window_all(assigner)`` windows a non-keyed
stream in one subtask, as in Flink.
"""

from __future__ import annotations

from typing import Any, Protocol

from streamlet.operators.records import OutputTag
from streamlet.operators.time import to_millis
from streamlet.operators.windowing.assigners import WindowAssigner
from streamlet.operators.windowing.evictors import Evictor
from streamlet.operators.windowing.operator import WindowSpec
from streamlet.operators.windowing.triggers import Trigger

__all__ = ["AllWindowedStream", "WindowedStream"]


#: A DataStream (the windowed result); ``Any`` so that this module and ``datastream``, which
#: creates windowed streams, do not import each other.
DataStream = Any


class KeyedStream(Protocol):
    """What a windowed stream needs of its keyed stream: adding the window node."""

    def _window_node(self, spec: WindowSpec, name: str, output_type: Any = None) -> Any: ...

    def _output_type(self) -> Any: ...


class WindowedStream:
    """A keyed stream cut into windows by an assigner; finish it with a window function."""

    def __init__(self, keyed: KeyedStream, assigner: WindowAssigner) -> None:
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(f"window() needs a WindowAssigner, got {assigner!r}")
        self._keyed = keyed
        self._assigner = assigner
        self._trigger: Trigger | None = None
        self._evictor: Evictor | None = None
        self._lateness = 0
        self._late_tag: str | None = None
        self._all = False

    def trigger(self, trigger: Trigger) -> WindowedStream:
        """Decide when windows fire with ``trigger`` instead of the assigner's default."""
        if not isinstance(trigger, Trigger):
            raise TypeError(f"trigger() needs a Trigger, got {trigger!r}")
        if self._assigner.is_merging and not trigger.can_merge():
            raise TypeError(
                f"the trigger {trigger!r} cannot merge (can_merge() is False), but "
                f"{type(self._assigner).__name__} merges windows: use a trigger that can"
            )
        self._trigger = trigger
        return self

    def allowed_lateness(self, time: Any) -> WindowedStream:
        """Keep event-time windows this long after their end (ms, Duration, Time or
        timedelta): elements arriving meanwhile fire the window again (default 0)."""
        self._lateness = to_millis(time, "allowed_lateness")
        return self

    def side_output_late_data(self, output_tag: OutputTag) -> WindowedStream:
        """Send elements that are late for all their windows to side output ``output_tag``
        (read it with ``get_side_output(output_tag)`` on the windowed result)."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError(f"side_output_late_data() needs an OutputTag, got {output_tag!r}")
        self._late_tag = output_tag.tag_id
        return self

    def evictor(self, evictor: Evictor) -> WindowedStream:
        """Remove elements from a window before or after its function runs (beyond
        PyFlink; Flink's ``CountEvictor``, ``TimeEvictor``). The window then keeps its
        elements, whatever the function."""
        if not isinstance(evictor, Evictor):
            raise TypeError(f"evictor() needs an Evictor, got {evictor!r}")
        self._evictor = evictor
        return self

    # --- window functions ---

    def reduce(
        self, reduce_function: Any, window_function: Any = None, output_type: Any = None
    ) -> DataStream:
        """Fold each window's elements with ``reduce_function`` (one value per window kept);
        ``window_function`` (a ProcessWindowFunction or WindowFunction) gets the result."""
        _check_callable(reduce_function, "reduce", "reduce")
        if output_type is None and window_function is None:
            output_type = self._keyed._output_type()  # a reduce keeps its input's type
        return self._build(
            "reduce", reduce_function, window_function, "Window(Reduce)", output_type
        )

    def aggregate(
        self,
        aggregate_function: Any,
        window_function: Any = None,
        accumulator_type: Any = None,
        output_type: Any = None,
    ) -> DataStream:
        """Fold each window's elements into an AggregateFunction's accumulator (one per
        window kept); emit ``get_result`` (through ``window_function`` if given)."""
        for method in ("create_accumulator", "add", "get_result"):
            if not callable(getattr(aggregate_function, method, None)):
                raise TypeError(
                    f"aggregate() needs an AggregateFunction (create_accumulator, add, "
                    f"get_result), got {aggregate_function!r} without {method}()"
                )
        if self._assigner.is_merging and self._evictor is None:
            merge = getattr(type(aggregate_function), "merge", None)
            from streamlet.state.descriptors import AggregateFunction

            if merge is None or merge is AggregateFunction.merge:
                raise TypeError(
                    f"{type(self._assigner).__name__} merges windows, so the "
                    f"AggregateFunction {aggregate_function!r} must implement merge()"
                )
        return self._build(
            "aggregate", aggregate_function, window_function, "Window(Aggregate)", output_type
        )

    def process(self, process_window_function: Any, output_type: Any = None) -> DataStream:
        """Run a ProcessWindowFunction over each fired window's elements."""
        _check_callable(process_window_function, "process", "process")
        return self._build("process", process_window_function, None, "Window(Process)", output_type)

    def apply(self, window_function: Any, output_type: Any = None) -> DataStream:
        """Run a WindowFunction (``apply(key, window, inputs)``) over each fired window."""
        _check_callable(window_function, "apply", "apply")
        return self._build("apply", window_function, None, "Window(Apply)", output_type)

    def _build(
        self, kind: str, function: Any, window_function: Any, name: str, output_type: Any = None
    ) -> DataStream:
        if window_function is not None and not (
            callable(getattr(window_function, "process", None))
            or callable(getattr(window_function, "apply", None))
            or callable(window_function)
        ):
            raise TypeError(
                f"window_function must be a ProcessWindowFunction or a WindowFunction, got "
                f"{window_function!r}"
            )
        spec = WindowSpec(
            assigner=self._assigner,
            trigger=self._trigger,
            evictor=self._evictor,
            allowed_lateness=self._lateness,
            late_tag=self._late_tag,
            kind=kind,
            function=function,
            window_function=window_function,
            all_windows=self._all,
        )
        stream = self._keyed._window_node(spec, name, output_type)
        if self._all:
            node = stream._own_node("window_all")
            node.parallelism = 1
            node.parallelism_limit = 1
        return stream


class AllWindowedStream(WindowedStream):
    """Windows over a whole (non-keyed) stream: one subtask computes them, as in Flink.

    Its functions take no key: ``ProcessAllWindowFunction.process(context, elements)``,
    ``AllWindowFunction.apply(window, inputs)``.
    """

    def __init__(self, keyed: KeyedStream, assigner: WindowAssigner) -> None:
        super().__init__(keyed, assigner)
        self._all = True


def _check_callable(fn: Any, method: str, api: str) -> None:
    if isinstance(fn, type):
        raise TypeError(f"{api}() needs a function or an instance, got the class {fn.__name__}")
    if not (callable(getattr(fn, method, None)) or callable(fn)):
        raise TypeError(f"{api}() needs a callable or an object with {method}(), got {fn!r}")
