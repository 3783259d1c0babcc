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
from itertools import compress
from typing import TYPE_CHECKING, Any

import anyio

from streamlet.state.descriptors import ValueStateDescriptor
from streamlet.state.errors import StreamletInternalError
from streamlet.state.json_codec import is_namedtuple_class
from streamlet.state.row import Row
from streamlet.state.timers import KeyedTimerQueue, timer_state_name

from .base import OperatorContext
from .core import (
    BatchTransform,
    BatchTransformOperator,
    KeyedBatchOperator,
    KeyedStep,
    TimedTransform,
    UserFunctionOperator,
    per_record,
)
from .functions import (
    FUNCTION_METHODS,
    FunctionAdapter,
    KeyedProcessFunction,
    ProcessFunction,
    TimerService,
)
from .processing_time import current_processing_time
from .records import OutputTag, SideOutputs, TimestampedBatch
from .time import TimeDomain

if TYPE_CHECKING:
    from streamlet.state.heap_backend import HeapKeyedStateBackend

__all__ = [
    "ASYNC_CONCURRENCY",
    "KeyedProcessOperator",
    "ProcessOperator",
    "aggregate_operator",
    "check_copyable",
    "field_reduce",
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


def _one_to_one(transform: Callable[[list[Any]], Any], is_async: bool) -> TimedTransform:
    """The timed form of a transform with one output per input record, in order."""
    if is_async:

        async def async_timed(batch: TimestampedBatch) -> TimestampedBatch:
            return TimestampedBatch(await transform(batch.records), batch.timestamps)

        return async_timed
    return lambda batch: TimestampedBatch(transform(batch.records), batch.timestamps)


def map_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["map"], "map")
    f = adapter.call
    if adapter.is_async:

        def gather(batch: list[Any]) -> Any:
            return _gather_ordered(f, batch)

        return BatchTransformOperator(adapter, gather, True, _one_to_one(gather, True))

    def map_batch(batch: list[Any]) -> list[Any]:
        return [f(x) for x in batch]

    return BatchTransformOperator(adapter, map_batch, False, _one_to_one(map_batch, False))


def filter_operator(fn: Any) -> BatchTransformOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["filter"], "filter")
    f = adapter.call
    if adapter.is_async:

        async def afilter(batch: list[Any]) -> list[Any]:
            keep = await _gather_ordered(f, batch)
            return [x for x, k in zip(batch, keep, strict=True) if k]

        async def afilter_timed(batch: TimestampedBatch) -> TimestampedBatch:
            keep = await _gather_ordered(f, batch.records)
            return TimestampedBatch(
                list(compress(batch.records, keep)), list(compress(batch.timestamps, keep))
            )

        return BatchTransformOperator(adapter, afilter, True, afilter_timed)

    def filter_timed(batch: TimestampedBatch) -> TimestampedBatch:
        keep = [bool(f(x)) for x in batch.records]
        return TimestampedBatch(
            list(compress(batch.records, keep)), list(compress(batch.timestamps, keep))
        )

    return BatchTransformOperator(
        adapter, lambda batch: [x for x in batch if f(x)], False, filter_timed
    )


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


def process_operator(fn: Any) -> ProcessOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["process"], "process")
    return ProcessOperator(adapter)


def keyed_process_operator(fn: Any, key_selector: Callable[[Any], Any]) -> KeyedProcessOperator:
    adapter = FunctionAdapter(fn, FUNCTION_METHODS["process"], "process")
    return KeyedProcessOperator(adapter, key_selector)


# --- process functions: timestamps, side outputs and (keyed) timers ---


class _ProcessCalls:
    """Runs a process function's ``process_element`` (or ``on_timer``) over records and
    collects what it emits, with timestamps.

    :param call: ``call(record, ctx)`` (or ``on_timer(timestamp, ctx)``)
    :param api: the API name for error messages
    """

    __slots__ = ("_api", "_call", "_is_async", "_is_async_gen")

    def __init__(self, call: Callable[..., Any], api: str) -> None:
        self._call = call
        self._api = api
        self._is_async_gen = inspect.isasyncgenfunction(call)
        self._is_async = self._is_async_gen or inspect.iscoroutinefunction(call)

    @property
    def is_async(self) -> bool:
        return self._is_async

    @property
    def call(self) -> Callable[..., Any]:
        return self._call

    def run(self, records: Any, ctx: Any) -> list[Any]:
        """Call the function for each of ``records`` (sync functions); return the outputs."""
        call = self._call
        out: list[Any] = []
        extend = out.extend
        for record in records:
            result = call(record, ctx)
            if result is not None:
                if type(result) is str:
                    _check_iterable(result, self._api)
                extend(result)
        return out

    def run_timed(self, records: Any, timestamps: list[int | None], ctx: Any) -> TimestampedBatch:
        """:meth:`run` for records with timestamps: ``ctx.timestamp()`` is each record's, and
        so is the timestamp of what it emits."""
        call = self._call
        out: list[Any] = []
        stamps: list[int | None] = []
        extend = out.extend
        for record, timestamp in zip(records, timestamps, strict=True):
            ctx._timestamp = timestamp
            result = call(record, ctx)
            if result is not None:
                if type(result) is str:
                    _check_iterable(result, self._api)
                before = len(out)
                extend(result)
                emitted = len(out) - before
                if emitted == 1:
                    stamps.append(timestamp)
                elif emitted:
                    stamps.extend([timestamp] * emitted)
        ctx._timestamp = None
        return TimestampedBatch(out, stamps)

    async def run_async(self, records: Any, timestamps: list[int | None] | None, ctx: Any) -> Any:
        """:meth:`run` / :meth:`run_timed` for ``async def`` functions and async generators,
        one record at a time (so none sees another record's key)."""
        call = self._call
        out: list[Any] = []
        stamps: list[int | None] = []
        stamp_iter = iter(timestamps) if timestamps is not None else None
        for record in records:
            timestamp = next(stamp_iter) if stamp_iter is not None else None
            ctx._timestamp = timestamp
            if self._is_async_gen:
                emitted = await _collect_async_gen(call(record, ctx))
            else:
                result = await call(record, ctx)
                emitted = [] if result is None else list(_check_iterable(result, self._api))
            out.extend(emitted)
            stamps.extend([timestamp] * len(emitted))
        ctx._timestamp = None
        return out if timestamps is None else TimestampedBatch(out, stamps)

    async def call_once(self, first: Any, ctx: Any) -> list[Any]:
        """Call the function once (``on_timer(timestamp, ctx)``); return what it emitted."""
        call = self._call
        if self._is_async_gen:
            return await _collect_async_gen(call(first, ctx))
        result = call(first, ctx)
        if self._is_async:
            result = await result
        if result is None:
            return []
        return list(_check_iterable(result, self._api))


def _is_side(item: Any) -> bool:
    return type(item) is tuple and len(item) == 2 and type(item[0]) is OutputTag


def _take_side_outputs(out: Any) -> tuple[Any, SideOutputs | None]:
    """Split the ``(OutputTag, value)`` items out of ``out`` (a list or TimestampedBatch);
    return the main output and the side outputs (None when there are none)."""
    if not OutputTag.any_created:
        return out, None
    timed = type(out) is TimestampedBatch
    records = out.records if timed else out
    for item in records:
        if type(item) is tuple and len(item) == 2 and type(item[0]) is OutputTag:
            break
    else:
        return out, None
    side: SideOutputs = {}
    if not timed:
        main: list[Any] = []
        for item in records:
            if _is_side(item):
                side.setdefault(item[0].tag_id, []).append(item[1])
            else:
                main.append(item)
        return main, side
    main_batch = TimestampedBatch([], [])
    for item, timestamp in zip(records, out.timestamps, strict=True):
        if _is_side(item):
            part = side.get(item[0].tag_id)
            if part is None:
                part = side[item[0].tag_id] = TimestampedBatch([], [])
            part.records.append(item[1])
            part.timestamps.append(timestamp)
        else:
            main_batch.records.append(item)
            main_batch.timestamps.append(timestamp)
    return main_batch, side


def _not_open_batch(batch: list[Any]) -> list[Any]:
    raise StreamletInternalError("process operators run their own loop")


def _no_timers(name: str) -> TypeError:
    return TypeError(
        f"operator {name!r}: timers are only available on a keyed stream; call key_by(...) "
        f"before process() to register timers"
    )


class ProcessOperator(BatchTransformOperator):
    """A ProcessFunction on a non-keyed stream: ``process_element(value, ctx)`` with the
    record's timestamp and time in ``ctx``, side outputs, and no timers (a non-keyed stream
    has none, as in Flink)."""

    def __init__(self, adapter: FunctionAdapter) -> None:
        super().__init__(adapter, _not_open_batch, False)
        self._calls = _ProcessCalls(adapter.call, "process")

    async def open(self, ctx: Any) -> None:
        await super().open(ctx)
        self._ctx = ProcessFunction.Context(TimerService(self))

    def processing_time_now(self) -> int:
        return current_processing_time(self.ctx.processing_time)

    def register_timer(self, domain: str, timestamp: int) -> None:
        raise _no_timers(self.ctx.operator_name)

    def delete_timer(self, domain: str, timestamp: int) -> None:
        raise _no_timers(self.ctx.operator_name)

    async def process_batch(self, batch: Any) -> Any:
        return await self._process(batch, self._calls)

    async def _process(self, batch: Any, calls: _ProcessCalls) -> Any:
        timed = type(batch) is TimestampedBatch
        if calls.is_async:
            out = await calls.run_async(
                batch.records if timed else batch, batch.timestamps if timed else None, self._ctx
            )
        elif timed:
            out = calls.run_timed(batch.records, batch.timestamps, self._ctx)
        else:
            out = calls.run(batch, self._ctx)
        out, self.side_outputs = _take_side_outputs(out)
        return out


class _KeyedTimerService(TimerService):
    """A keyed operator's TimerService: registering goes straight to the timer queue (made
    at the first timer), two calls per timer rather than four."""

    __slots__ = ("_event", "_processing")

    def __init__(self, owner: KeyedProcessOperator) -> None:
        super().__init__(owner)
        self._event: KeyedTimerQueue | None = None
        self._processing: KeyedTimerQueue | None = None

    def register_event_time_timer(self, timestamp: int) -> None:
        queue = self._event
        if queue is None:
            queue = self._event = self._owner._queue("event")
        queue.register(timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        queue = self._event or self._owner._queues.get("event")
        if queue is not None:
            queue.delete(timestamp)
        elif type(timestamp) is not int:  # no timers to delete, but still a bad argument
            raise TypeError(f"a timer's timestamp must be an int (ms), got {timestamp!r}")


class KeyedProcessOperator(UserFunctionOperator):
    """A KeyedProcessFunction: ``process_element`` with keyed state scoped to each record's
    key, side outputs, and event- and processing-time timers (keyed state too, see
    :class:`~streamlet.state.timers.KeyedTimerQueue`) that call ``on_timer`` with their key
    current.

    The timer queues are created at the first registration, or at ``open`` when the restored
    state holds timers, so an operator that never uses timers stores none.
    """

    keyed = True
    accepts_timestamps = True
    timed = True

    def __init__(self, adapter: FunctionAdapter, key_selector: Callable[[Any], Any]) -> None:
        super().__init__(adapter)
        self._key_selector = key_selector
        self._calls = _ProcessCalls(adapter.call, "process")
        obj = adapter.obj
        on_timer = None if obj is adapter.call else getattr(obj, "on_timer", None)
        self._timer_calls = _ProcessCalls(on_timer, "on_timer") if callable(on_timer) else None
        self._queues: dict[str, KeyedTimerQueue] = {}

    async def open(self, ctx: Any) -> None:
        backend = ctx.keyed_backend
        if backend is None:
            raise StreamletInternalError(
                f"keyed operator {ctx.operator_name!r} was opened without a keyed state backend"
            )
        self._backend = backend
        await super().open(ctx)
        service = _KeyedTimerService(self)
        self._ctx = KeyedProcessFunction.Context(backend, service)
        self._timer_ctx = KeyedProcessFunction.OnTimerContext(backend, service)
        for domain in ("event", "processing"):
            if backend.has_state_named(timer_state_name(domain)):
                self._queue(domain)
        self._request_processing_time()

    def _queue(self, domain: str) -> KeyedTimerQueue:
        queue = self._queues.get(domain)
        if queue is None:
            queue = self._queues[domain] = KeyedTimerQueue(self._backend, domain)
        return queue

    def _request_processing_time(self) -> None:
        service = self.ctx.processing_time
        if service is not None:
            service.request_earliest(self._queues.get("processing"))

    # --- the TimerService's owner ---

    def processing_time_now(self) -> int:
        return current_processing_time(self.ctx.processing_time)

    def register_timer(self, domain: str, timestamp: int) -> None:
        self._queue(domain).register(timestamp)
        if domain == "processing" and self.ctx.processing_time is not None:
            self.ctx.processing_time.request(timestamp)

    def delete_timer(self, domain: str, timestamp: int) -> None:
        queue = self._queues.get(domain)
        if queue is not None:
            queue.delete(timestamp)

    # --- records, watermarks, processing time ---

    async def process_batch(self, batch: Any) -> Any:
        return await self._process(batch, self._calls, self._key_selector)

    async def _process(
        self, batch: Any, calls: _ProcessCalls, key_selector: Callable[[Any], Any]
    ) -> Any:
        """Run ``calls`` over ``batch`` with each record's key (by ``key_selector``) current."""
        each_record = self._backend.each_record
        if type(batch) is TimestampedBatch:
            records = each_record(batch.records, key_selector)
            if calls.is_async:
                out = await calls.run_async(records, batch.timestamps, self._ctx)
            else:
                out = calls.run_timed(records, batch.timestamps, self._ctx)
        elif calls.is_async:
            out = await calls.run_async(each_record(batch, key_selector), None, self._ctx)
        else:
            out = calls.run(each_record(batch, key_selector), self._ctx)
        out, self.side_outputs = _take_side_outputs(out)
        return out

    async def process_watermark(self, watermark: int) -> Any:
        self.current_watermark = watermark
        queue = self._queues.get("event")
        if queue is None:
            return []
        return await self._fire(queue, watermark, TimeDomain.EVENT_TIME)

    async def on_processing_time(self, now_ms: int) -> Any:
        queue = self._queues.get("processing")
        if queue is None:
            return []
        out = await self._fire(queue, now_ms, TimeDomain.PROCESSING_TIME)
        self._request_processing_time()
        return out

    async def _fire(self, queue: KeyedTimerQueue, limit: int, domain: TimeDomain) -> Any:
        """Fire every timer of ``queue`` due at ``limit``, in timestamp order, each with its
        key current; what event-time timers emit carries the timer's timestamp."""
        ctx = self._timer_ctx
        ctx._time_domain = domain
        calls = self._timer_calls
        event_time = domain is TimeDomain.EVENT_TIME
        out: list[Any] = []
        stamps: list[int | None] = []
        if calls is None:
            for _ in queue.due(limit):
                pass  # the function has no on_timer: the timer fires into nothing
        elif not calls.is_async:
            # The sync loop written out: a timer's whole cost is here and in due().
            call = calls.call
            extend = out.extend
            for timestamp in queue.due(limit):
                ctx._timestamp = timestamp
                produced = call(timestamp, ctx)
                if produced is not None:
                    if type(produced) is str:
                        _check_iterable(produced, "on_timer")
                    before = len(out)
                    extend(produced)
                    count = len(out) - before
                    if count:
                        stamps.extend([timestamp if event_time else None] * count)
        else:
            for timestamp in queue.due(limit):
                ctx._timestamp = timestamp
                emitted = await calls.call_once(timestamp, ctx)
                out.extend(emitted)
                stamps.extend([timestamp if event_time else None] * len(emitted))
        ctx._timestamp = None
        result: Any = TimestampedBatch(out, stamps) if event_time else out
        result, self.side_outputs = _take_side_outputs(result)
        return result


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
    ) -> tuple[BatchTransform, TimedTransform]:
        reduce_values = backend.reduce_values
        backend.get_state(_REDUCE_STATE)  # registered at open, as a user's state would be

        def reduce_batch(batch: list[Any]) -> list[Any]:
            return reduce_values(_REDUCE_STATE, batch, key_selector, reduce)

        def reduce_timed(batch: TimestampedBatch) -> TimestampedBatch:
            # The running value carries the timestamp of the record that updated it.
            out = reduce_values(_REDUCE_STATE, batch.records, key_selector, reduce)
            return TimestampedBatch(out, batch.timestamps)

        return reduce_batch, reduce_timed

    return RollingReduceOperator(adapter, key_selector, make_step)


class RollingReduceOperator(KeyedBatchOperator):
    """A rolling reduce (``reduce``, ``sum``, ``min``, ...): in STREAMING an updated value
    per record; in BATCH execution only each key's final value, at the end of the input
    (Flink's batch reduce), in key-group order, without a timestamp."""

    async def open(self, ctx: OperatorContext) -> None:
        await super().open(ctx)
        self._final_only = ctx.batch_execution

    async def process_batch(self, batch: Any) -> Any:
        out = await super().process_batch(batch)
        return [] if self._final_only else out

    async def end_input(self) -> list[Any]:
        if not self._final_only:
            return []
        backend = self.ctx.keyed_backend
        assert backend is not None
        state = backend.get_state(_REDUCE_STATE)
        finals = []
        for key in backend.keys(_REDUCE_STATE.name):
            backend.set_current_key(key)
            finals.append(state.value())
        return finals


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
        if isinstance(record, Row):
            return record[position]  # by index or field name
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
        if isinstance(record, Row):
            out = Row._make(record._fields, list(record), record.get_row_kind())
            out[position] = value
            return out
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


def field_reduce(kind: str, position: int | str) -> Callable[[Any, Any], Any]:
    """The rolling reduce of ``sum`` / ``min`` / ``max`` / ``min_by`` / ``max_by`` over one
    field (shared with the Flink runner, so both compute the same).

    ``sum``/``min``/``max`` keep the other fields of the first record of the key and replace
    the aggregated field; ``min_by``/``max_by`` keep the whole record holding the extreme
    (the first of equal ones, as Flink's ``minBy``/``maxBy``).
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
    return reduce


def aggregate_operator(
    kind: str, position: int | str, key_selector: Callable[[Any], Any]
) -> KeyedBatchOperator:
    """``sum`` / ``min`` / ``max`` / ``min_by`` / ``max_by`` over one field, as a rolling
    reduce (see :func:`field_reduce`)."""
    return reduce_operator(field_reduce(kind, position), key_selector, kind)
