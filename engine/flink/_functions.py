"""PyFlink functions that run a streamlet node's user function inside Flink's Python worker.

Imported only by :func:`~streamlet.flink.translate.run_on_flink` (it imports PyFlink at
module level). The classes live in an importable module, so the Python worker unpickles
them by reference to this installed code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    FilterFunction,
    FlatMapFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
)
from pyflink.datastream.data_stream import CloseableIterator
from pyflink.datastream.state import ValueStateDescriptor

from streamlet.flink.keys import normalise_key
from streamlet.operators.derived import _field_getter
from streamlet.operators.functions import FUNCTION_METHODS, FunctionAdapter

__all__ = [
    "ByIndex",
    "Filter",
    "FlatMap",
    "Map",
    "NormalisedKey",
    "Reduce",
    "collect_async",
    "field_reduce",
]


class _Context:
    """The RuntimeContext a user's ``open()`` gets on Flink.

    PyFlink's own getters raise in thread mode, so the values are read once in ``open`` (in
    a ``try``) and served from here.
    """

    def __init__(self, flink_context: Any) -> None:
        def read(getter: str, default: Any) -> Any:
            try:
                return getattr(flink_context, getter)()
            except Exception:
                return default

        self._index = read("get_index_of_this_subtask", 0)
        self._parallelism = read("get_number_of_parallel_subtasks", 1)
        self._task_name = read("get_task_name", "")

    def get_index_of_this_subtask(self) -> int:
        return int(self._index)

    def get_number_of_parallel_subtasks(self) -> int:
        return int(self._parallelism)

    def get_task_name(self) -> str:
        return str(self._task_name)


class _UserFunction:
    """Holds a streamlet user function and runs its ``open``/``close`` hooks."""

    api = "map"

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.call: Callable[..., Any] = FunctionAdapter(
            fn, FUNCTION_METHODS[self.api], self.api
        ).call

    def open(self, runtime_context: Any) -> None:
        hook = getattr(self.fn, "open", None)
        if callable(hook) and not isinstance(self.fn, type):
            hook(_Context(runtime_context))

    def close(self) -> None:
        hook = getattr(self.fn, "close", None)
        if callable(hook) and not isinstance(self.fn, type):
            hook()


class Map(_UserFunction, MapFunction):
    api = "map"

    def map(self, value: Any) -> Any:
        return self.call(value)


class FlatMap(_UserFunction, FlatMapFunction):
    api = "flat_map"

    def flat_map(self, value: Any) -> Iterable[Any]:
        return self.call(value)


class Filter(_UserFunction, FilterFunction):
    api = "filter"

    def filter(self, value: Any) -> bool:
        return bool(self.call(value))


class ByIndex(MapFunction):
    """Element ``i`` of a collection: a collection source read by index from Flink's
    NumberSequenceSource, which checkpoints its position (PyFlink's from_collection does not)."""

    def __init__(self, data: list[Any]) -> None:
        self.data = data

    def map(self, value: Any) -> Any:
        return self.data[int(value)]


class NormalisedKey(KeySelector):
    """The user's key selector, with keys normalised to streamlet's key equality."""

    def __init__(self, selector: Any) -> None:
        self.selector = selector

    def get_key(self, value: Any) -> Any:
        return normalise_key(self.selector(value))


class Reduce(KeyedProcessFunction):
    """A rolling keyed reduce with its running value in a ValueState of a fixed name.

    Not PyFlink's KeyedStream.reduce/sum: they name their state with a fresh random uuid
    on every open, so a restore from a checkpoint finds no state and starts over.
    """

    def __init__(self, reduce: Callable[[Any, Any], Any], state_name: str) -> None:
        self.reduce = reduce
        self.state_name = state_name
        self.state: Any = None

    def open(self, runtime_context: Any) -> None:
        descriptor = ValueStateDescriptor(self.state_name, Types.PICKLED_BYTE_ARRAY())
        self.state = runtime_context.get_state(descriptor)

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        current = self.state.value()
        new = value if current is None else self.reduce(current, value)
        self.state.update(new)
        yield new


def field_reduce(kind: str, position: int | str) -> Callable[[Any, Any], Any]:
    """The reduce of ``sum``/``min``/``max`` over one field, as streamlet computes it."""
    get, replace = _field_getter(position, kind)
    if kind == "sum":
        return lambda a, b: replace(a, get(a) + get(b))
    if kind == "min":
        return lambda a, b: replace(a, min(get(a), get(b)))
    return lambda a, b: replace(a, max(get(a), get(b)))


def collect_async(ds: Any, type_info: Any) -> Any:
    """An iterator over ``ds``'s records that fills once the job is executed (Java's
    ``collectAsync``): the job is then run whole, with its other sinks."""
    return CloseableIterator(ds._j_data_stream.collectAsync(), type_info)
