"""The one table of DataStream operations: what each API call is, declaratively.

An :class:`Operation` names the API call (``"map"``, ``"sum"``, ``"sink_to"``, ...), the
method a user function object implements for it (from
:data:`~streamlet.operators.functions.FUNCTION_METHODS`, ``None`` where the user gives no
function), and the operator factories for a non-keyed and a keyed stream (``None`` where the
operation does not exist on that kind of stream). A node of the logical graph records its
operation with its function, key selector and arguments; the local runtime builds operators
with :meth:`Operation.create`, and a translator to another engine reads the same record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from . import broadcast, connected, derived, joins
from .base import Operator
from .derived import fresh_copy
from .functions import FUNCTION_METHODS, FunctionAdapter
from .sinks.base import Sink
from .sinks.simple import CallbackSinkWriter, PrintSinkWriter, QueueSinkWriter
from .timestamps import TimestampsAndWatermarksOperator
from .windowing.operator import WindowOperator, WindowSpec

__all__ = ["OPERATIONS", "Operation", "OperationKind"]

OperationKind = Literal["source", "operator", "sink"]

#: ``(function, *args) -> Operator``: a non-keyed operator factory.
OperatorFactory = Callable[..., Operator[Any, Any]]
#: ``(function, key_selector, *args) -> Operator``: a keyed operator factory.
KeyedOperatorFactory = Callable[..., Operator[Any, Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One DataStream operation (see the module docstring)."""

    api: str
    kind: OperationKind
    #: The method of a function object called per record, ``None`` if no user function.
    method: str | None
    operator: OperatorFactory | None = None
    keyed_operator: KeyedOperatorFactory | None = None
    #: How many inputs its operator has: 2 for the operations of ``connect``.
    inputs: int = 1

    def create(
        self,
        function: Any,
        key_selector: Callable[[Any], Any] | connected.KeySelectors | None,
        args: tuple[Any, ...],
    ) -> Operator[Any, Any]:
        """A fresh operator instance (one per subtask and attempt) with its own function copy.

        :raises TypeError: for a source (its operator is made from its splits) or an
            operation that does not exist on a (non-)keyed stream
        """
        fn = None if function is None else fresh_copy(function)
        factory = self.operator if key_selector is None else self.keyed_operator
        if factory is None:
            if self.kind == "source":
                raise TypeError("a source's operator is made by the runtime, from its splits")
            stream = "non-keyed" if key_selector is None else "keyed"
            raise TypeError(f"operation {self.api!r} has no operator for a {stream} stream")
        if key_selector is None:
            return factory(fn, *args)
        return factory(fn, key_selector, *args)


def _aggregate(kind: str) -> KeyedOperatorFactory:
    def make(_fn: None, key_selector: Callable[[Any], Any], position: int | str) -> Any:
        return derived.aggregate_operator(kind, position, key_selector)

    make.__qualname__ = make.__name__ = f"{kind}_operator"
    return make


def _callback_sink(fn: Any) -> CallbackSinkWriter:
    return CallbackSinkWriter(FunctionAdapter(fn, FUNCTION_METHODS["add_sink"], "add_sink"))


def _print_sink(
    _fn: None, sink_identifier: str | None, formatter: Callable[[Any], str] = str
) -> PrintSinkWriter:
    return PrintSinkWriter(sink_identifier, formatter=formatter)


def _sink_to(_fn: None, sink: Sink) -> Any:
    return sink.create_writer()


def _timestamps(_fn: None, strategy: Any) -> TimestampsAndWatermarksOperator:
    return TimestampsAndWatermarksOperator(strategy)


def _window(_fn: None, key_selector: Callable[[Any], Any], spec: WindowSpec) -> WindowOperator:
    # Each subtask gets its own copies of the user's objects (as for every function).
    fresh = replace(
        spec,
        assigner=fresh_copy(spec.assigner),
        trigger=None if spec.trigger is None else fresh_copy(spec.trigger),
        evictor=None if spec.evictor is None else fresh_copy(spec.evictor),
        function=None if spec.function is None else fresh_copy(spec.function),
        window_function=None if spec.window_function is None else fresh_copy(spec.window_function),
    )
    return WindowOperator(fresh, key_selector)


def _collect_sink(_fn: None, send: Any) -> QueueSinkWriter:
    return QueueSinkWriter(send)


def _table(*operations: Operation) -> dict[str, Operation]:
    return {op.api: op for op in operations}


#: API name -> operation; the only place that says which factory an operation uses.
OPERATIONS: dict[str, Operation] = _table(
    Operation("source", "source", None),
    Operation(
        "map", "operator", FUNCTION_METHODS["map"], derived.map_operator, derived.keyed_map_operator
    ),
    Operation(
        "flat_map",
        "operator",
        FUNCTION_METHODS["flat_map"],
        derived.flat_map_operator,
        derived.keyed_flat_map_operator,
    ),
    Operation(
        "filter",
        "operator",
        FUNCTION_METHODS["filter"],
        derived.filter_operator,
        derived.keyed_filter_operator,
    ),
    Operation(
        "process",
        "operator",
        FUNCTION_METHODS["process"],
        derived.process_operator,
        derived.keyed_process_operator,
    ),
    Operation("reduce", "operator", FUNCTION_METHODS["reduce"], None, derived.reduce_operator),
    Operation("assign_timestamps_and_watermarks", "operator", None, _timestamps),
    Operation("window", "operator", None, None, _window),
    *(
        Operation(kind, "operator", None, None, _aggregate(kind))
        for kind in ("sum", "min", "max", "min_by", "max_by")
    ),
    # Two inputs (``connect``): the function object has a method per input (CO_METHODS).
    Operation(
        "co_map",
        "operator",
        FUNCTION_METHODS["co_map"],
        connected.co_map_operator,
        connected.keyed_co_map_operator,
        inputs=2,
    ),
    Operation(
        "co_flat_map",
        "operator",
        FUNCTION_METHODS["co_flat_map"],
        connected.co_flat_map_operator,
        connected.keyed_co_flat_map_operator,
        inputs=2,
    ),
    Operation(
        "co_process",
        "operator",
        FUNCTION_METHODS["co_process"],
        connected.co_process_operator,
        connected.keyed_co_process_operator,
        inputs=2,
    ),
    # The broadcast state pattern: input 0 the events, input 1 the broadcast side; the
    # argument is the tuple of broadcast state descriptors.
    Operation(
        "broadcast_process",
        "operator",
        FUNCTION_METHODS["broadcast_process"],
        broadcast.broadcast_process_operator,
        broadcast.keyed_broadcast_process_operator,
        inputs=2,
    ),
    # Keyed two-input only: the interval join (its argument an IntervalJoinSpec).
    Operation(
        "interval_join",
        "operator",
        FUNCTION_METHODS["interval_join"],
        None,
        joins.interval_join_operator,
        inputs=2,
    ),
    Operation("add_sink", "sink", FUNCTION_METHODS["add_sink"], _callback_sink),
    Operation("print", "sink", None, _print_sink),
    Operation("sink_to", "sink", None, _sink_to),
    Operation("execute_and_collect", "sink", None, _collect_sink),
)
