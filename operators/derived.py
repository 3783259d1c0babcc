"""The DataStream operations, derived from the primitives in :mod:`.core`.

Each factory returns a fresh operator instance; the engine calls it once per subtask and
attempt, so no state leaks between subtasks or across a restart. User function objects are
deep-copied per instance for the same reason (Flink serializes a copy to every subtask).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from streamlet.state.descriptors import ValueStateDescriptor
from streamlet.state.json_codec import is_namedtuple_class

from .core import (
    BatchTransform,
    BatchTransformOperator,
    KeyedBatchOperator,
    KeyedBatchStepFactory,
    KeyedStep,
    per_record,
)
from .functions import FUNCTION_METHODS, FunctionAdapter, KeyedProcessFunction, ProcessFunction

if TYPE_CHECKING:
    from streamlet.state.heap_backend import HeapKeyedStateBackend

__all__ = [
    "ASYNC_CONCURRENCY",
    "aggregate_operator",
    "check_copyable",
    "filter_operator",
    "flat_map_operator",
    "fresh_copy",
    "keyed_filter_operator",
    "keyed_flat_map_operator",
    "keyed_map_operator",
    "keyed_process_operator",
    "map_operator",
    "process_operator",
    "reduce_operator",
]

#: How many calls of an ``async def`` map function may be in flight at once per subtask.
ASYNC_CONCURRENCY = 16


def fresh_copy(fn: Any) -> Any:
    """The copy of a user function one operator instance gets (Flink ships each subtask its
    own): plain functions and methods are shared, as they carry no per-subtask state;
    function objects are deep-copied, so no state leaks between subtasks or attempts."""
    if inspect.isfunction(fn) or inspect.isbuiltin(fn) or inspect.ismethod(fn):
        return fn
    return copy.deepcopy(fn)


def check_copyable(fn: Any, api: str) -> None:
    """Check, at the API call, that :func:`fresh_copy` will work for ``fn``.

    :raises TypeError: if ``fn`` is an instance that cannot be deep-copied
    """
    try:
        fresh_copy(fn)
    except Exception as exc:
        raise TypeError(
            f"{api}() got a function object {fn!r} that cannot be copied to every subtask "
            f"({type(exc).__name__}: {exc}); create resources in open() instead of __init__"
        ) from exc


def _check_iterable(result: Any, api: str) -> Any:
    if isinstance(result, str | bytes):
        raise TypeError(
            f"{api} function returned a {type(result).__name__} ({result!r:.40}); "
            f"return a list of records, e.g. [value]"
        )
    return result


async def _gather_ordered(call: Callable[[Any], Any], batch: list[Any]) -> list[Any]:
    """Await ``call`` for every record, at most ASYNC_CONCURRENCY at once, keeping order.

    The first exception of a call is raised as itself (not wrapped in an exception group).
    """
    if len(batch) == 1:
        return [await call(batch[0])]
    results: list[Any] = [None] * len(batch)
    failure: list[Exception] = []

    async def one(index: int, record: Any, scope: anyio.CancelScope) -> None:
        try:
            results[index] = await call(record)
        except Exception as exc:
            failure.append(exc)
            scope.cancel()

    for start in range(0, len(batch), ASYNC_CONCURRENCY):
        async with anyio.create_task_group() as tg:
            for index in range(start, min(start + ASYNC_CONCURRENCY, len(batch))):
                tg.start_soon(one, index, batch[index], tg.cancel_scope)
        if failure:
            raise failure[0]
    return results


async def _collect_async_gen(agen: Any) -> list[Any]:
    return [item async for item in agen]


# --- stateless (non-keyed) operations ---


def map_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["map"], "map")
    f = adapter.call
    if adapter.is_async:
        return BatchTransformOperator(adapter, lambda batch: _gather_ordered(f, batch), True)
    return BatchTransformOperator(adapter, lambda batch: [f(x) for x in batch], False)


def filter_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["filter"], "filter")
    f = adapter.call
    if adapter.is_async:

        async def afilter(batch: list[Any]) -> list[Any]:
            keep = await _gather_ordered(f, batch)
            return [x for x, k in zip(batch, keep, strict=True) if k]

        return BatchTransformOperator(adapter, afilter, True)
    return BatchTransformOperator(adapter, lambda batch: [x for x in batch if f(x)], False)


def _flat(
    call: Callable[..., Any], adapter: FunctionAdapter, api: str, extra: tuple[Any, ...] = ()
) -> tuple[Callable[[list[Any]], Any], bool]:
    if adapter.is_async_gen:

        async def agen_batch(batch: list[Any]) -> list[Any]:
            out: list[Any] = []
            for x in batch:
                out.extend(await _collect_async_gen(call(x, *extra)))
            return out

        return agen_batch, True
    if adapter.is_async:

        async def async_batch(batch: list[Any]) -> list[Any]:
            out: list[Any] = []
            for x in batch:
                result = await call(x, *extra)
                if result is not None:
                    out.extend(_check_iterable(result, api))
            return out

        return async_batch, True

    def sync_batch(batch: list[Any]) -> list[Any]:
        out: list[Any] = []
        extend = out.extend
        for x in batch:
            result = call(x, *extra)
            if result is not None:
                if type(result) is str or type(result) is bytes:
                    _check_iterable(result, api)
                extend(result)
        return out

    return sync_batch, False


def flat_map_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["flat_map"], "flat_map")
    transform, is_async = _flat(adapter.call, adapter, "flat_map")
    return BatchTransformOperator(adapter, transform, is_async)


def process_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["process"], "process")
    transform, is_async = _flat(adapter.call, adapter, "process", (ProcessFunction.Context(),))
    return BatchTransformOperator(adapter, transform, is_async)


# --- keyed operations: keyed batch steps over the keyed primitive ---


def _keyed_process_step(call: Callable[..., Any]) -> KeyedBatchStepFactory:
    """The step of a synchronous KeyedProcessFunction: :func:`.core.per_record` with the
    call written into the loop (no step call per record)."""

    def make_step(
        backend: HeapKeyedStateBackend, key_selector: Callable[[Any], Any]
    ) -> BatchTransform:
        ctx = KeyedProcessFunction.Context(backend)
        each_record = backend.each_record

        def process_batch(batch: list[Any]) -> list[Any]:
            out: list[Any] = []
            extend = out.extend
            for record in each_record(batch, key_selector):
                result = call(record, ctx)
                if result is not None:
                    if type(result) is str:
                        _check_iterable(result, "process")
                    extend(result)
            return out

        return process_batch

    return make_step


def keyed_process_operator(fn: Any, key_selector: Callable[[Any], Any]) -> KeyedBatchOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["process"], "process")
    call = adapter.call
    if not adapter.is_async:
        return KeyedBatchOperator(adapter, key_selector, _keyed_process_step(call))

    def step_of(backend: HeapKeyedStateBackend) -> KeyedStep:
        ctx = KeyedProcessFunction.Context(backend)
        if adapter.is_async_gen:

            async def agen_step(record: Any, out: list[Any]) -> None:
                out.extend(await _collect_async_gen(call(record, ctx)))

            return agen_step

        async def async_step(record: Any, out: list[Any]) -> None:
            result = await call(record, ctx)
            if result is not None:
                out.extend(_check_iterable(result, "process"))

        return async_step

    return KeyedBatchOperator(adapter, key_selector, per_record(step_of))


def _keyed_per_record(
    fn: Any, method: str, api: str, key_selector: Callable[[Any], Any], shape: str
) -> KeyedBatchOperator:
    adapter = FunctionAdapter(fn, method, api)
    call = adapter.call

    # The shape is decided here, once per operator, not per record.
    def step_of(backend: HeapKeyedStateBackend) -> KeyedStep:
        if adapter.is_async_gen and shape == "flat_map":

            async def agen_step(record: Any, out: list[Any]) -> None:
                out.extend(await _collect_async_gen(call(record)))

            return agen_step
        if adapter.is_async:
            if shape == "map":

                async def async_map_step(record: Any, out: list[Any]) -> None:
                    out.append(await call(record))

                return async_map_step
            if shape == "filter":

                async def async_filter_step(record: Any, out: list[Any]) -> None:
                    if await call(record):
                        out.append(record)

                return async_filter_step

            async def async_flat_step(record: Any, out: list[Any]) -> None:
                result = await call(record)
                if result is not None:
                    out.extend(_check_iterable(result, api))

            return async_flat_step
        if shape == "map":
            return lambda record, out: out.append(call(record))
        if shape == "filter":

            def filter_step(record: Any, out: list[Any]) -> None:
                if call(record):
                    out.append(record)

            return filter_step

        def flat_step(record: Any, out: list[Any]) -> None:
            result = call(record)
            if result is not None:
                out.extend(_check_iterable(result, api))

        return flat_step

    return KeyedBatchOperator(adapter, key_selector, per_record(step_of))


def keyed_map_operator(fn: Any, key_selector: Callable[[Any], Any]) -> KeyedBatchOperator:
    return _keyed_per_record(fn, FUNCTION_METHODS["map"], "map", key_selector, "map")


def keyed_flat_map_operator(fn: Any, key_selector: Callable[[Any], Any]) -> KeyedBatchOperator:
    return _keyed_per_record(fn, FUNCTION_METHODS["flat_map"], "flat_map", key_selector, "flat_map")


def keyed_filter_operator(fn: Any, key_selector: Callable[[Any], Any]) -> KeyedBatchOperator:
    return _keyed_per_record(fn, FUNCTION_METHODS["filter"], "filter", key_selector, "filter")


_REDUCE_STATE = ValueStateDescriptor("_reduce")


def reduce_operator(
    fn: Any, key_selector: Callable[[Any], Any], api: str = "reduce"
) -> KeyedBatchOperator:
    """Rolling reduce: emits the updated value for every record (Flink's KeyedStream.reduce).

    The running value lives in a keyed ``ValueState`` (named ``_reduce``), so it is
    checkpointed, restored and redistributed by key group like any user state. The step
    folds the whole batch into it with one backend call
    (:meth:`~streamlet.state.heap_backend.HeapKeyedStateBackend.reduce_values`).
    """
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["reduce"], api)
    if adapter.is_async:
        raise TypeError(f"{api}() needs a synchronous reduce function, got an async one")
    reduce = adapter.call

    def make_step(
        backend: HeapKeyedStateBackend, key_selector: Callable[[Any], Any]
    ) -> BatchTransform:
        reduce_values = backend.reduce_values
        backend.get_state(_REDUCE_STATE)  # registered at open, as a user's state would be
        return lambda batch: reduce_values(_REDUCE_STATE, batch, key_selector, reduce)

    return KeyedBatchOperator(adapter, key_selector, make_step)


def _field_getter(
    position: int | str | None, api: str
) -> tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]:
    """Return (get field, replace field) for tuples/lists, dicts, objects or plain numbers."""

    def get(record: Any) -> Any:
        if isinstance(record, int | float) and not isinstance(record, bool):
            return record
        if isinstance(record, tuple | list) and isinstance(position, int):
            return record[position]
        if isinstance(record, dict):
            return record[position]
        if isinstance(position, str) and hasattr(record, position):
            return getattr(record, position)
        raise TypeError(
            f"{api}({position!r}) cannot read field {position!r} of a record of type "
            f"{type(record).__name__}: {record!r}"
        )

    def replace(record: Any, value: Any) -> Any:
        # A new record, never a mutated one: the previous aggregate was already emitted, and
        # records may be immutable (tuples, namedtuples, frozen dataclasses).
        if isinstance(record, int | float) and not isinstance(record, bool):
            return value
        if isinstance(record, tuple):
            if isinstance(position, int):
                items = list(record)
                items[position] = value
                if type(record) is tuple:
                    return tuple(items)
                if is_namedtuple_class(type(record)):
                    return record._make(items)  # type: ignore[attr-defined]
                return type(record)(items)
            if is_namedtuple_class(type(record)) and isinstance(position, str):
                return record._replace(**{position: value})  # type: ignore[attr-defined]
        if isinstance(record, list):
            items = list(record)
            items[position] = value  # type: ignore[index]
            return items
        if isinstance(record, dict):
            return {**record, position: value}
        try:
            if dataclasses.is_dataclass(record) and not isinstance(record, type):
                return dataclasses.replace(record, **{position: value})  # type: ignore[arg-type]
            out = copy.copy(record)
            setattr(out, position, value)  # type: ignore[arg-type]
            return out
        except (AttributeError, TypeError, ValueError) as exc:
            raise TypeError(
                f"{api}({position!r}) cannot replace field {position!r} of a record of type "
                f"{type(record).__name__} ({type(exc).__name__}: {exc}); use a dict, tuple, "
                f"namedtuple or dataclass whose field is an __init__ parameter, or reduce()"
            ) from exc

    return get, replace


def aggregate_operator(
    kind: str, position: int | str, key_selector: Callable[[Any], Any]
) -> KeyedBatchOperator:
    """``sum`` / ``min`` / ``max`` / ``min_by`` / ``max_by`` over one field, as a rolling reduce.

    ``sum``/``min``/``max`` keep the other fields of the first record of the key and replace
    the aggregated field; ``min_by``/``max_by`` keep the whole record holding the extreme.
    """
    get, replace = _field_getter(position, kind)
    if kind == "sum":

        def reduce(a: Any, b: Any) -> Any:
            return replace(a, get(a) + get(b))

    elif kind == "min":

        def reduce(a: Any, b: Any) -> Any:
            return replace(a, min(get(a), get(b)))

    elif kind == "max":

        def reduce(a: Any, b: Any) -> Any:
            return replace(a, max(get(a), get(b)))

    elif kind == "min_by":

        def reduce(a: Any, b: Any) -> Any:
            return b if get(b) < get(a) else a

    elif kind == "max_by":

        def reduce(a: Any, b: Any) -> Any:
            return b if get(b) > get(a) else a

    else:  # pragma: no cover - the API only passes the kinds above
        raise ValueError(f"unknown aggregation {kind!r}")
    return reduce_operator(reduce, key_selector, kind)
