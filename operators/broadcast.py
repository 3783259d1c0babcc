"""The broadcast state pattern: ``events.connect(rules.broadcast(descriptor)).process(f)``.

A low-volume stream (rules, configuration) is broadcast to every subtask of an operator of
two inputs and kept in *broadcast state*, a map per ``MapStateDescriptor`` that is identical
on every subtask; the other stream (events) keeps its partitioning and reads that state.

- the events are the first input (``process_batch``): ``process_element(value, ctx)`` sees
  the broadcast state read-only (:class:`~streamlet.state.operator_state.ReadOnlyBroadcastState`),
  as each subtask gets different events and a write there would make the copies differ;
- the broadcast side is the second input (``process_batch2``):
  ``process_broadcast_element(value, ctx)`` may write it; every subtask runs it for every
  broadcast element, so (for a deterministic function) every copy stays the same.

On a keyed event stream (:class:`KeyedBroadcastProcessFunction`) ``process_element`` also
has its key, keyed state and timers (``on_timer``), and ``process_broadcast_element``, which
has no key, reaches keyed state through ``ctx.apply_to_keyed_state(descriptor, function)``:
``function(key, state)`` for every key of this subtask with a value in that state (Java's
``KeyedStateFunction``; PyFlink has no such call).

The broadcast states live in the operator state backend, registered at ``open`` from the
descriptors given to ``broadcast(...)``; only subtask 0 writes them into a checkpoint and a
restore gives that copy to every subtask, at any parallelism.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from streamlet.state.descriptors import MapStateDescriptor, StateDescriptor
from streamlet.state.errors import StateError
from streamlet.state.operator_state import (
    BroadcastState,
    OperatorStateBackend,
    ReadOnlyBroadcastState,
)

from .derived import KeyedProcessOperator, ProcessOperator, _ProcessCalls, _take_side_outputs
from .functions import FunctionAdapter, TimerService, _RichFunction
from .records import TimestampedBatch

__all__ = [
    "BROADCAST_METHODS",
    "BroadcastContext",
    "BroadcastProcessFunction",
    "BroadcastProcessOperator",
    "BroadcastReadOnlyContext",
    "KeyedBroadcastContext",
    "KeyedBroadcastOnTimerContext",
    "KeyedBroadcastProcessFunction",
    "KeyedBroadcastProcessOperator",
    "KeyedBroadcastReadOnlyContext",
    "broadcast_process_operator",
    "check_broadcast_descriptors",
    "check_broadcast_function",
    "keyed_broadcast_process_operator",
]

IN1 = TypeVar("IN1")
"""Type of the records of the non-broadcast (event) input."""
IN2 = TypeVar("IN2")
"""Type of the records of the broadcast input."""
OUT = TypeVar("OUT")
"""Type of the records a broadcast function produces."""
KEY = TypeVar("KEY")
"""Type of the keys of the keyed event stream."""

#: The two methods of a broadcast function: the event side's, the broadcast side's.
BROADCAST_METHODS = ("process_element", "process_broadcast_element")

#: The keyed backend's method that registers each kind of keyed state.
_KEYED_GETTERS = {
    "value": "get_state",
    "list": "get_list_state",
    "map": "get_map_state",
    "reducing": "get_reducing_state",
    "aggregating": "get_aggregating_state",
}


# --- contexts ---


class _BaseContext:
    """What both sides of a broadcast function see: the element's timestamp, time, and the
    broadcast states (read-only or writable, by the subclass)."""

    __slots__ = ("_last_descriptor", "_last_state", "_owner", "_states", "_timestamp")

    def __init__(self, owner: Any, states: dict[str, Any]) -> None:
        # The operator: it knows its watermark and its processing time.
        self._owner = owner
        self._states = states
        self._timestamp: int | None = None
        # The last descriptor asked for and its state: a function calls
        # get_broadcast_state(RULES) per record with one descriptor object, so the hot
        # path is one identity test.
        self._last_descriptor: Any = None
        self._last_state: Any = None

    def timestamp(self) -> int | None:
        """The current element's timestamp, or None if it has none."""
        return self._timestamp

    def current_processing_time(self) -> int:
        """The job's processing time now (ms)."""
        result: int = self._owner.processing_time_now()
        return result

    def current_watermark(self) -> int:
        """The operator's input watermark (``-2**63`` before the first watermark)."""
        result: int = self._owner.current_watermark
        return result

    def _lookup(self, descriptor: Any) -> Any:
        state = self._states.get(getattr(descriptor, "name", ""))
        if state is None or not isinstance(descriptor, MapStateDescriptor):
            declared = sorted(self._states)
            raise StateError(
                f"get_broadcast_state() got {descriptor!r}, which is not a broadcast state of "
                f"this operator (declared: {declared}); pass the MapStateDescriptor given to "
                f"broadcast(...), or add it there: stream.broadcast(descriptor, ...)"
            )
        self._last_descriptor = descriptor
        self._last_state = state
        return state


class BroadcastReadOnlyContext(_BaseContext):
    """``process_element``'s context: the broadcast states read-only."""

    __slots__ = ()

    def get_broadcast_state(self, descriptor: MapStateDescriptor) -> ReadOnlyBroadcastState:
        """The broadcast state of ``descriptor``, read-only (writes raise StateError).

        :raises StateError: if ``descriptor`` was not given to ``broadcast(...)``
        """
        if descriptor is self._last_descriptor:
            state: ReadOnlyBroadcastState = self._last_state
            return state
        return self._lookup(descriptor)


class BroadcastContext(_BaseContext):
    """``process_broadcast_element``'s context: the broadcast states writable."""

    __slots__ = ()

    def get_broadcast_state(self, descriptor: MapStateDescriptor) -> BroadcastState:
        """The broadcast state of ``descriptor``: ``get``, ``put``, ``put_all``,
        ``remove``, ``clear`` and the reads.

        :raises StateError: if ``descriptor`` was not given to ``broadcast(...)``
        """
        if descriptor is self._last_descriptor:
            state: BroadcastState = self._last_state
            return state
        return self._lookup(descriptor)


class KeyedBroadcastReadOnlyContext(BroadcastReadOnlyContext):
    """``process_element``'s context on a keyed stream: also the key and timers."""

    __slots__ = ("_backend", "_timer_service")

    def __init__(
        self, owner: Any, states: dict[str, Any], backend: Any, timer_service: TimerService
    ) -> None:
        super().__init__(owner, states)
        self._backend = backend
        self._timer_service = timer_service

    def get_current_key(self) -> Any:
        """The key of the record (or timer) being processed."""
        return self._backend.get_current_key()

    def timer_service(self) -> TimerService:
        """Time and the current key's timers (``on_timer`` fires them)."""
        return self._timer_service


class KeyedBroadcastOnTimerContext(KeyedBroadcastReadOnlyContext):
    """``on_timer``'s context: also which kind of timer fired."""

    __slots__ = ("_time_domain",)

    def __init__(
        self, owner: Any, states: dict[str, Any], backend: Any, timer_service: TimerService
    ) -> None:
        super().__init__(owner, states, backend, timer_service)
        self._time_domain: Any = None

    def time_domain(self) -> Any:
        """``TimeDomain.EVENT_TIME`` or ``TimeDomain.PROCESSING_TIME``."""
        return self._time_domain


class KeyedBroadcastContext(BroadcastContext):
    """``process_broadcast_element``'s context on a keyed stream: a broadcast element has
    no key, so keyed state is reached through :meth:`apply_to_keyed_state`."""

    __slots__ = ("_backend",)

    def __init__(self, owner: Any, states: dict[str, Any], backend: Any) -> None:
        super().__init__(owner, states)
        self._backend = backend

    def apply_to_keyed_state(
        self, state_descriptor: StateDescriptor, function: Callable[[Any, Any], Any]
    ) -> None:
        """Call ``function(key, state)`` for every key of this subtask that has a value in
        the keyed state of ``state_descriptor``, once each, with ``state`` scoped to that
        key (so ``state.value()``, ``state.update(...)``, ``state.clear()`` act on it).

        The keys are listed before the first call: what ``function`` clears or adds does
        not change which keys are visited. Other subtasks visit their own keys (each runs
        this for the same broadcast element).

        :raises TypeError: if ``state_descriptor`` is not a state descriptor, or
            ``function`` is not a synchronous callable
        """
        getter = _KEYED_GETTERS.get(getattr(state_descriptor, "kind", ""))
        if getter is None or not isinstance(state_descriptor, StateDescriptor):
            raise TypeError(
                f"apply_to_keyed_state() needs a state descriptor (ValueStateDescriptor, "
                f"ListStateDescriptor, MapStateDescriptor, ...), got {state_descriptor!r}"
            )
        if not callable(function) or inspect.iscoroutinefunction(function):
            raise TypeError(
                f"apply_to_keyed_state() needs a synchronous function(key, state), got {function!r}"
            )
        backend = self._backend
        state = getattr(backend, getter)(state_descriptor)
        try:
            for key in backend.keys(state_descriptor.name):
                backend.set_current_key(key)
                result = function(key, state)
                if inspect.isawaitable(result):
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                    raise TypeError(
                        f"apply_to_keyed_state() needs a synchronous function(key, state); "
                        f"{function!r} returned an awaitable"
                    )
        finally:
            backend.clear_current_key()


# --- function classes ---


class BroadcastProcessFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """``events.connect(rules.broadcast(descriptor)).process(f)`` on a non-keyed event stream.

    ``process_element`` runs per event with the broadcast state read-only;
    ``process_broadcast_element`` runs per broadcast element on every subtask and may write
    it. Both return or yield records; ``yield tag, value`` emits to a side output.
    """

    #: What ``process_element`` and ``process_broadcast_element`` see.
    ReadOnlyContext: TypeAlias = BroadcastReadOnlyContext
    Context: TypeAlias = BroadcastContext

    @abstractmethod
    def process_element(self, value: IN1, ctx: BroadcastReadOnlyContext) -> Iterable[OUT] | None:
        """An event: read ``ctx.get_broadcast_state(descriptor)``, return (or yield) records."""

    @abstractmethod
    def process_broadcast_element(self, value: IN2, ctx: BroadcastContext) -> Iterable[OUT] | None:
        """A broadcast element: update ``ctx.get_broadcast_state(descriptor)``."""


class KeyedBroadcastProcessFunction(_RichFunction, Generic[KEY, IN1, IN2, OUT]):
    """``events.key_by(k).connect(rules.broadcast(descriptor)).process(f)``.

    As :class:`BroadcastProcessFunction`, and ``process_element`` has the event's key
    (``ctx.get_current_key()``), keyed state and timers (``ctx.timer_service()``, fired by
    :meth:`on_timer` with their key current); ``process_broadcast_element`` reaches keyed
    state with ``ctx.apply_to_keyed_state(descriptor, function)``.
    """

    #: What ``process_element``, ``process_broadcast_element`` and ``on_timer`` see.
    ReadOnlyContext: TypeAlias = KeyedBroadcastReadOnlyContext
    Context: TypeAlias = KeyedBroadcastContext
    OnTimerContext: TypeAlias = KeyedBroadcastOnTimerContext

    @abstractmethod
    def process_element(
        self, value: IN1, ctx: KeyedBroadcastReadOnlyContext
    ) -> Iterable[OUT] | None:
        """An event, its key current: return (or yield) records."""

    @abstractmethod
    def process_broadcast_element(
        self, value: IN2, ctx: KeyedBroadcastContext
    ) -> Iterable[OUT] | None:
        """A broadcast element (no key): update the broadcast state."""

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastOnTimerContext) -> Iterable[OUT] | None:
        """A timer of ``ctx.get_current_key()`` fired (as KeyedProcessFunction.on_timer)."""
        return None


# --- checks ---


def check_broadcast_function(fn: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Return ``fn``'s ``process_element`` and ``process_broadcast_element``.

    :raises TypeError: if ``fn`` is a class or lacks one of them
    """
    if isinstance(fn, type):
        raise TypeError(
            f"connect(broadcast_stream).process() needs an instance, got the class "
            f"{fn.__name__}; pass {fn.__name__}() instead"
        )
    methods = [getattr(fn, name, None) for name in BROADCAST_METHODS]
    missing = [n for n, m in zip(BROADCAST_METHODS, methods, strict=True) if not callable(m)]
    if missing:
        raise TypeError(
            f"connect(broadcast_stream).process() needs a BroadcastProcessFunction or "
            f"KeyedBroadcastProcessFunction (process_element() for the events and "
            f"process_broadcast_element() for the broadcast elements), got {fn!r} of type "
            f"{type(fn).__name__}, which lacks {' and '.join(m + '()' for m in missing)}"
        )
    return methods[0], methods[1]  # type: ignore[return-value]


def check_broadcast_descriptors(descriptors: Sequence[Any]) -> tuple[MapStateDescriptor, ...]:
    """Return ``descriptors`` as a tuple, checked: MapStateDescriptors of distinct names.

    :raises TypeError: if one is not a MapStateDescriptor
    :raises ValueError: if two share a name
    """
    checked = tuple(descriptors)
    for descriptor in checked:
        if not isinstance(descriptor, MapStateDescriptor):
            raise TypeError(
                f"broadcast(...) takes MapStateDescriptors (broadcast state is a map), got "
                f"{descriptor!r}"
            )
    names = [d.name for d in checked]
    if len(set(names)) != len(names):
        raise ValueError(f"broadcast(...) got two MapStateDescriptors of one name: {names}")
    return checked


def _register(
    operator_state: OperatorStateBackend, descriptors: Sequence[MapStateDescriptor]
) -> dict[str, BroadcastState]:
    return {d.name: operator_state.get_broadcast_state(d) for d in descriptors}


async def _run(calls: _ProcessCalls, batch: Any, ctx: Any) -> Any:
    """Run ``calls`` over ``batch`` with ``ctx``, per batch (a per-record await only for an
    async user function)."""
    timed = type(batch) is TimestampedBatch
    if calls.is_async:
        return await calls.run_async(
            batch.records if timed else batch, batch.timestamps if timed else None, ctx
        )
    if timed:
        return calls.run_timed(batch.records, batch.timestamps, ctx)
    return calls.run(batch, ctx)


# --- operators ---


class BroadcastProcessOperator(ProcessOperator):
    """A BroadcastProcessFunction: events (input 0) through ``process_element`` with the
    broadcast states read-only, broadcast elements (input 1) through
    ``process_broadcast_element`` with them writable. No timers (a non-keyed stream has
    none). Both contexts and the read-only views are made once, at ``open``."""

    two_inputs = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        process_broadcast_element: Callable[..., Any],
        descriptors: Sequence[MapStateDescriptor],
    ) -> None:
        super().__init__(adapter)
        self._calls2 = _ProcessCalls(process_broadcast_element, "process_broadcast_element")
        self._descriptors = tuple(descriptors)

    async def open(self, ctx: Any) -> None:
        # Registered before the user's open() / initialize_state(), which may read them.
        states = _register(ctx.operator_state, self._descriptors)
        await super().open(ctx)
        views = {name: ReadOnlyBroadcastState(state) for name, state in states.items()}
        self._ctx = BroadcastReadOnlyContext(self, views)  # type: ignore[assignment]
        self._bctx = BroadcastContext(self, dict(states))

    async def process_batch2(self, batch: Any) -> Any:
        out, self.side_outputs = _take_side_outputs(await _run(self._calls2, batch, self._bctx))
        return out


class KeyedBroadcastProcessOperator(KeyedProcessOperator):
    """A KeyedBroadcastProcessFunction: events (input 0) with their key current, keyed
    state, timers and the broadcast states read-only; broadcast elements (input 1) with no
    key current, the broadcast states writable and keyed state through
    ``apply_to_keyed_state``."""

    two_inputs = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        process_broadcast_element: Callable[..., Any],
        key_selector: Callable[[Any], Any],
        descriptors: Sequence[MapStateDescriptor],
    ) -> None:
        super().__init__(adapter, key_selector)
        self._calls2 = _ProcessCalls(process_broadcast_element, "process_broadcast_element")
        self._descriptors = tuple(descriptors)

    async def open(self, ctx: Any) -> None:
        states = _register(ctx.operator_state, self._descriptors)
        await super().open(ctx)
        service = self._ctx.timer_service()
        views = {name: ReadOnlyBroadcastState(state) for name, state in states.items()}
        backend = self._backend
        self._ctx = KeyedBroadcastReadOnlyContext(self, views, backend, service)  # type: ignore[assignment]
        self._timer_ctx = KeyedBroadcastOnTimerContext(self, views, backend, service)  # type: ignore[assignment]
        self._bctx = KeyedBroadcastContext(self, dict(states), backend)

    async def process_batch2(self, batch: Any) -> Any:
        # A broadcast element has no key: keyed state views must not see the last event's.
        self._backend.clear_current_key()
        try:
            out = await _run(self._calls2, batch, self._bctx)
        except StateError as exc:
            if not str(exc).startswith("no current key"):
                raise
            raise StateError(
                f"process_broadcast_element() of operator {self.ctx.operator_name!r} used "
                f"keyed state, but a broadcast element has no key; reach keyed state with "
                f"ctx.apply_to_keyed_state(descriptor, function), which calls "
                f"function(key, state) for every key ({exc})"
            ) from exc
        out, self.side_outputs = _take_side_outputs(out)
        return out


def broadcast_process_operator(
    fn: Any, descriptors: Sequence[MapStateDescriptor]
) -> BroadcastProcessOperator:
    _, process_broadcast_element = check_broadcast_function(fn)
    return BroadcastProcessOperator(
        FunctionAdapter(fn, "process_element", "process"),
        process_broadcast_element,
        check_broadcast_descriptors(descriptors),
    )


def keyed_broadcast_process_operator(
    fn: Any, key_selector: Callable[[Any], Any], descriptors: Sequence[MapStateDescriptor]
) -> KeyedBroadcastProcessOperator:
    _, process_broadcast_element = check_broadcast_function(fn)
    return KeyedBroadcastProcessOperator(
        FunctionAdapter(fn, "process_element", "process"),
        process_broadcast_element,
        key_selector,
        check_broadcast_descriptors(descriptors),
    )
