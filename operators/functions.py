"""User function types (PyFlink's names) and the adapter that calls them.

A user function is a plain callable (sync or ``async def``) or an instance of one of the
classes below, whose method (``map``, ``flat_map``, ``filter``, ``reduce``,
``process_element``, ``invoke``) is called per record and whose optional ``open`` /
``close`` run once per subtask. A function may also implement Flink's CheckpointedFunction
hooks (``initialize_state(context)`` and ``snapshot_state(context)``) to keep operator state,
and CheckpointListener's ``notify_checkpoint_complete(id)`` / ``notify_checkpoint_aborted(id)``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from streamlet.state.errors import StateError

from .metrics import MetricGroup

if TYPE_CHECKING:
    from streamlet.state.operator_state import OperatorStateBackend

    from .base import OperatorContext

__all__ = [
    "FUNCTION_METHODS",
    "CoFlatMapFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "FilterFunction",
    "FlatMapFunction",
    "FunctionAdapter",
    "FunctionInitializationContext",
    "FunctionSnapshotContext",
    "KeySelector",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "MapFunction",
    "ProcessFunction",
    "ReduceFunction",
    "RuntimeContext",
    "SinkFunction",
    "TimerService",
]

IN = TypeVar("IN")
"""Type of the records a function consumes."""
OUT = TypeVar("OUT")
"""Type of the records a function produces."""
KEY = TypeVar("KEY")
"""Type of the keys of a keyed stream."""

#: Operation -> the method a function object implements for it (``MapFunction.map``, ...).
FUNCTION_METHODS = {
    "map": "map",
    "flat_map": "flat_map",
    "filter": "filter",
    "process": "process_element",
    "reduce": "reduce",
    "add_sink": "invoke",
    # Two inputs: the first input's method (the second's is in connected.CO_METHODS).
    "co_map": "map1",
    "co_flat_map": "flat_map1",
    "co_process": "process_element1",
    # The broadcast state pattern: the events' method (the broadcast side's is
    # process_broadcast_element, see broadcast.BROADCAST_METHODS).
    "broadcast_process": "process_element",
    # The interval join's ProcessJoinFunction.process_element(left, right, ctx).
    "interval_join": "process_element",
}


class RuntimeContext:
    """What a user function sees of the subtask it runs in, and its door to state.

    Keyed state (``get_state`` and friends) exists only on keyed streams and is scoped to the
    key of the record being processed.
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: OperatorContext) -> None:
        self._ctx = ctx

    def get_index_of_this_subtask(self) -> int:
        return self._ctx.subtask_index

    def get_number_of_parallel_subtasks(self) -> int:
        return self._ctx.parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        return self._ctx.max_parallelism

    def get_task_name(self) -> str:
        return self._ctx.operator_name

    def get_task_name_with_subtasks(self) -> str:
        return self._ctx.task_name_with_subtask

    def get_job_name(self) -> str:
        return self._ctx.job_name

    def get_attempt_number(self) -> int:
        return self._ctx.attempt

    def get_metrics_group(self) -> MetricGroup:
        """This subtask's metric group: ``counter(name)``, ``gauge(name, fn)``,
        ``meter(name)``, ``distribution(name)``, ``add_group(name)`` (listed by
        ``JobClient.metrics()``)."""
        return self._ctx.metric_group

    def get_job_parameter(self, key: str, default_value: str) -> str:
        """A global job parameter (``env.get_config().set_global_job_parameters``)."""
        return self._ctx.job_parameters.get(key, default_value)

    def _keyed(self, what: str) -> Any:
        backend = self._ctx.keyed_backend
        if backend is None:
            raise StateError(
                f"{what} is keyed state, only available on a keyed stream (after key_by); "
                f"operator {self._ctx.operator_name!r} is not keyed"
            )
        return backend

    def get_state(self, descriptor: Any) -> Any:
        return self._keyed("get_state").get_state(descriptor)

    def get_list_state(self, descriptor: Any) -> Any:
        return self._keyed("get_list_state").get_list_state(descriptor)

    def get_map_state(self, descriptor: Any) -> Any:
        return self._keyed("get_map_state").get_map_state(descriptor)

    def get_reducing_state(self, descriptor: Any) -> Any:
        return self._keyed("get_reducing_state").get_reducing_state(descriptor)

    def get_aggregating_state(self, descriptor: Any) -> Any:
        return self._keyed("get_aggregating_state").get_aggregating_state(descriptor)


@dataclass(frozen=True, slots=True)
class FunctionInitializationContext:
    """Passed to ``initialize_state``: operator state, and whether it was restored."""

    operator_state_store: OperatorStateBackend
    runtime_context: RuntimeContext
    restored: bool

    def get_operator_state_store(self) -> OperatorStateBackend:
        return self.operator_state_store

    def is_restored(self) -> bool:
        return self.restored


@dataclass(frozen=True, slots=True)
class FunctionSnapshotContext:
    """Passed to ``snapshot_state``: the checkpoint being taken."""

    checkpoint_id: int

    def get_checkpoint_id(self) -> int:
        return self.checkpoint_id


class _RichFunction(ABC):  # noqa: B024 - a mixin of optional hooks
    """Optional lifecycle hooks shared by every function class."""

    def open(self, runtime_context: RuntimeContext) -> None:  # noqa: B027
        """Called once per subtask before the first record."""

    def close(self) -> None:  # noqa: B027
        """Called once per subtask after the last record, also after a failure."""


class MapFunction(_RichFunction, Generic[IN, OUT]):
    @abstractmethod
    def map(self, value: IN) -> OUT: ...


class FlatMapFunction(_RichFunction, Generic[IN, OUT]):
    @abstractmethod
    def flat_map(self, value: IN) -> Iterable[OUT]:
        """Return (or yield) zero or more records."""


class FilterFunction(_RichFunction, Generic[IN]):
    @abstractmethod
    def filter(self, value: IN) -> bool: ...


class ReduceFunction(_RichFunction, Generic[IN]):
    @abstractmethod
    def reduce(self, value1: IN, value2: IN) -> IN: ...


class KeySelector(Generic[IN, KEY]):
    @abstractmethod
    def get_key(self, value: IN) -> KEY: ...


class TimerService:
    """Timers and time as a process function sees them (PyFlink's ``TimerService``).

    Times are epoch milliseconds. On a keyed stream timers belong to the current key:
    registering the same (key, timestamp) twice makes one timer, and ``delete_*`` affects the
    current key only. A non-keyed stream has no timers: the register and delete methods
    raise there.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: Any) -> None:
        # The operator: it knows its watermark, its processing time and its timer queues.
        self._owner = owner

    def current_processing_time(self) -> int:
        """The job's processing time now (ms)."""
        return self._owner.processing_time_now()

    def current_watermark(self) -> int:
        """The operator's input watermark (``-2**63`` before the first watermark)."""
        return self._owner.current_watermark

    def register_event_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` for the current key once the watermark reaches ``timestamp``."""
        self._owner.register_timer("event", timestamp)

    def register_processing_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` for the current key once processing time reaches ``timestamp``."""
        self._owner.register_timer("processing", timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        """Delete the current key's event-time timer at ``timestamp`` (if there is one)."""
        self._owner.delete_timer("event", timestamp)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Delete the current key's processing-time timer at ``timestamp`` (if any)."""
        self._owner.delete_timer("processing", timestamp)


class ProcessFunction(_RichFunction, Generic[IN, OUT]):
    """A per-record function on a non-keyed stream that may emit any number of records.

    ``process_element`` returns or yields records; ``yield tag, value`` with an
    :class:`~streamlet.operators.records.OutputTag` emits to a side output.
    """

    class Context:
        """What ``process_element`` knows of the record and of time."""

        __slots__ = ("_timer_service", "_timestamp")

        def __init__(self, timer_service: TimerService | None = None) -> None:
            self._timer_service = timer_service
            self._timestamp: int | None = None

        def timestamp(self) -> int | None:
            """The current record's timestamp, or None if it has none."""
            return self._timestamp

        def timer_service(self) -> TimerService:
            """Time (and, on a keyed stream, timers)."""
            if self._timer_service is None:
                raise StateError("timer_service() is only available while a job runs")
            return self._timer_service

    @abstractmethod
    def process_element(self, value: IN, ctx: ProcessFunction.Context) -> Iterable[OUT] | None:
        """Return (or yield) zero or more records."""


class KeyedProcessFunction(_RichFunction, Generic[KEY, IN, OUT]):
    """A per-record function on a keyed stream with keyed state scoped to the current key,
    and timers: ``ctx.timer_service().register_event_time_timer(ts)`` calls
    :meth:`on_timer` for that key once the watermark reaches ``ts``."""

    class Context(ProcessFunction.Context):
        """What ``process_element`` knows: the record's timestamp and key, time, timers."""

        __slots__ = ("_backend",)

        def __init__(self, backend: Any, timer_service: TimerService | None = None) -> None:
            super().__init__(timer_service)
            self._backend = backend

        def get_current_key(self) -> Any:
            """The key of the record (or timer) being processed."""
            return self._backend.get_current_key()

    class OnTimerContext(Context):
        """What ``on_timer`` knows: also which kind of timer fired."""

        __slots__ = ("_time_domain",)

        def __init__(self, backend: Any, timer_service: TimerService | None = None) -> None:
            super().__init__(backend, timer_service)
            self._time_domain: Any = None

        def time_domain(self) -> Any:
            """``TimeDomain.EVENT_TIME`` or ``TimeDomain.PROCESSING_TIME``."""
            return self._time_domain

    @abstractmethod
    def process_element(self, value: IN, ctx: KeyedProcessFunction.Context) -> Iterable[OUT] | None:
        """Return (or yield) zero or more records."""

    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterable[OUT] | None:
        """A timer registered for ``ctx.get_current_key()`` fired; return (or yield) records.

        Records emitted from an event-time timer carry ``timestamp``; from a processing-time
        timer, no timestamp (as in Flink).
        """
        return None


# --- functions of two inputs (``a.connect(b)``) ---

IN1 = TypeVar("IN1")
"""Type of the records of a connected pair's first input."""
IN2 = TypeVar("IN2")
"""Type of the records of a connected pair's second input."""


class CoMapFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """``connect(...).map``: ``map1`` for each record of the first input, ``map2`` for the
    second's; on connected keyed streams both see keyed state of the record's key."""

    @abstractmethod
    def map1(self, value: IN1) -> OUT: ...

    @abstractmethod
    def map2(self, value: IN2) -> OUT: ...


class CoFlatMapFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """``connect(...).flat_map``: zero or more records per record of either input."""

    @abstractmethod
    def flat_map1(self, value: IN1) -> Iterable[OUT] | None: ...

    @abstractmethod
    def flat_map2(self, value: IN2) -> Iterable[OUT] | None: ...


class CoProcessFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """``connect(...).process`` on non-keyed streams: ``process_element1`` /
    ``process_element2`` with the record's timestamp and time in ``ctx``, and side outputs
    (``yield tag, value``). No timers: they need connected keyed streams
    (:class:`KeyedCoProcessFunction`)."""

    #: What ``process_element1/2`` see: ProcessFunction's context.
    Context: TypeAlias = ProcessFunction.Context

    @abstractmethod
    def process_element1(self, value: IN1, ctx: ProcessFunction.Context) -> Iterable[OUT] | None:
        """A record of the first input: return (or yield) zero or more records."""

    @abstractmethod
    def process_element2(self, value: IN2, ctx: ProcessFunction.Context) -> Iterable[OUT] | None:
        """A record of the second input: return (or yield) zero or more records."""


class KeyedCoProcessFunction(_RichFunction, Generic[KEY, IN1, IN2, OUT]):
    """``connect(...).process`` on connected keyed streams: both inputs share the keyed state
    of the current key, and timers call :meth:`on_timer` with their key current, as in a
    :class:`KeyedProcessFunction`."""

    #: KeyedProcessFunction's contexts: the key, time and timers.
    Context: TypeAlias = KeyedProcessFunction.Context
    OnTimerContext: TypeAlias = KeyedProcessFunction.OnTimerContext

    @abstractmethod
    def process_element1(
        self, value: IN1, ctx: KeyedProcessFunction.Context
    ) -> Iterable[OUT] | None:
        """A record of the first input, its key current."""

    @abstractmethod
    def process_element2(
        self, value: IN2, ctx: KeyedProcessFunction.Context
    ) -> Iterable[OUT] | None:
        """A record of the second input, its key current."""

    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterable[OUT] | None:
        """A timer of ``ctx.get_current_key()`` fired (as in KeyedProcessFunction.on_timer)."""
        return None


class SinkFunction(_RichFunction, Generic[IN]):
    """A sink called once per record (at-least-once: replayed records are written again)."""

    @abstractmethod
    def invoke(self, value: IN) -> None: ...


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


class FunctionAdapter:
    """Calls one user function uniformly, whatever shape the user gave it.

    :param fn: a callable or an object with ``method``
    :param method: the per-record method name (``map``, ``filter``, ...)
    :param api: the API call name, for error messages
    :raises TypeError: if ``fn`` is neither callable nor has ``method``
    """

    __slots__ = ("call", "is_async", "is_async_gen", "method", "obj")

    def __init__(self, fn: Any, method: str, api: str) -> None:
        call: Callable[..., Any] | None
        if isinstance(fn, type):
            if hasattr(fn, method) or issubclass(fn, _RichFunction):
                raise TypeError(
                    f"{api}() needs a function or an instance, got the class {fn.__name__}; "
                    f"pass {fn.__name__}() instead"
                )
            call = fn  # a type used as a function, such as str or bool
        else:
            call = getattr(fn, method, None)
            if call is None or not callable(call):
                if not callable(fn):
                    raise TypeError(
                        f"{api}() needs a callable or an object with a {method}() method, "
                        f"got {fn!r} of type {type(fn).__name__}"
                    )
                call = fn
        self.obj = fn
        self.method = method
        self.call: Callable[..., Any] = call
        self.is_async_gen = inspect.isasyncgenfunction(call)
        self.is_async = (
            inspect.iscoroutinefunction(call)
            or self.is_async_gen
            or (
                inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004
            )
        )

    def _hook(self, name: str) -> Callable[..., Any] | None:
        obj = self.obj
        if obj is self.call:
            # A plain function: its attributes are not lifecycle hooks.
            return None
        hook = getattr(obj, name, None)
        return hook if callable(hook) else None

    async def open(self, runtime_context: RuntimeContext) -> None:
        hook = self._hook("open")
        if hook is not None:
            await _maybe_await(hook(runtime_context))

    async def close(self) -> None:
        hook = self._hook("close")
        if hook is not None:
            await _maybe_await(hook())

    async def initialize_state(self, context: FunctionInitializationContext) -> None:
        hook = self._hook("initialize_state")
        if hook is not None:
            await _maybe_await(hook(context))

    async def snapshot_state(self, checkpoint_id: int) -> None:
        hook = self._hook("snapshot_state")
        if hook is not None:
            await _maybe_await(hook(FunctionSnapshotContext(checkpoint_id)))

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        hook = self._hook("notify_checkpoint_complete")
        if hook is not None:
            await _maybe_await(hook(checkpoint_id))

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        hook = self._hook("notify_checkpoint_aborted")
        if hook is not None:
            await _maybe_await(hook(checkpoint_id))


def key_selector_of(key_selector: Any) -> Callable[[Any], Any]:
    """Return the plain callable behind a key selector (a function or a KeySelector).

    :raises TypeError: if it is neither
    """
    call = getattr(key_selector, "get_key", key_selector)
    if not callable(call) or isinstance(key_selector, type):
        raise TypeError(
            f"key_by() needs a callable or a KeySelector instance, got {key_selector!r}"
        )
    if inspect.iscoroutinefunction(call):
        raise TypeError("key_by() needs a synchronous key selector, got an async function")
    return call
