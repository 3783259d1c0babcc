"""PyFlink functions that run a streamlet node's user function inside Flink's Python worker.

Imported only by :func:`~streamlet.flink.translate.run_on_flink` (it imports PyFlink at
module level). The classes live in an importable module, so the Python worker unpickles
them by reference to this installed code.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable, Iterable
from typing import Any

from pyflink.common import Duration, Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.common.watermark_strategy import WatermarkStrategy as FlinkWatermarkStrategy
from pyflink.datastream import (
    BroadcastProcessFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
)
from pyflink.datastream import OutputTag as FlinkOutputTag
from pyflink.datastream import ProcessFunction as FlinkProcessFunction
from pyflink.datastream.data_stream import CloseableIterator
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ValueStateDescriptor,
)

from streamlet.flink.keys import normalise_key
from streamlet.flink.refusal import watermark_kind
from streamlet.operators.broadcast import check_broadcast_function
from streamlet.operators.connected import check_co_function
from streamlet.operators.derived import _field_getter
from streamlet.operators.functions import FUNCTION_METHODS, FunctionAdapter
from streamlet.operators.records import OutputTag
from streamlet.operators.time import TimeDomain
from streamlet.state.errors import StateError

__all__ = [
    "Broadcast",
    "ByIndex",
    "Co",
    "Encode",
    "Filter",
    "FlatMap",
    "Identity",
    "KeyedBroadcast",
    "KeyedCo",
    "KeyedProcess",
    "Map",
    "NormalisedKey",
    "Process",
    "Reduce",
    "broadcast_descriptor",
    "collect_async",
    "field_reduce",
    "watermark_strategy",
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

        self._flink = flink_context
        self._index = read("get_index_of_this_subtask", 0)
        self._parallelism = read("get_number_of_parallel_subtasks", 1)
        self._task_name = read("get_task_name", "")

    def get_index_of_this_subtask(self) -> int:
        return int(self._index)

    def get_number_of_parallel_subtasks(self) -> int:
        return int(self._parallelism)

    def get_task_name(self) -> str:
        return str(self._task_name)

    # Keyed state (on a keyed stream): streamlet's descriptors, as Flink state. Every value
    # is pickled (streamlet's values are Python objects).

    def get_state(self, descriptor: Any) -> Any:
        return _ValueState(self._flink_value(descriptor.name), descriptor.default_value)

    def get_list_state(self, descriptor: Any) -> Any:
        pickled = Types.PICKLED_BYTE_ARRAY()
        return self._flink.get_list_state(ListStateDescriptor(descriptor.name, pickled))

    def get_map_state(self, descriptor: Any) -> Any:
        # Not pickled keys: Flink's heap backend compares map keys as Java byte[] (by
        # identity), so a pickled key put once is never found again. Keys are encoded as
        # strings (base64 of the pickle) and decoded on the way out.
        flink_descriptor = MapStateDescriptor(
            descriptor.name, Types.STRING(), Types.PICKLED_BYTE_ARRAY()
        )
        return _MapState(self._flink.get_map_state(flink_descriptor))

    def get_reducing_state(self, descriptor: Any) -> Any:
        return _ReducingState(self._flink_value(descriptor.name), descriptor.reduce)

    def get_aggregating_state(self, descriptor: Any) -> Any:
        return _AggregatingState(self._flink_value(descriptor.name), descriptor.aggregate_function)

    def _flink_value(self, name: str) -> Any:
        pickled = Types.PICKLED_BYTE_ARRAY()
        return self._flink.get_state(ValueStateDescriptor(name, pickled))


class _ValueState:
    def __init__(self, state: Any, default: Any) -> None:
        self._state = state
        self._default = default

    def value(self) -> Any:
        value = self._state.value()
        return self._default if value is None else value

    def update(self, value: Any) -> None:
        self._state.update(value)

    def clear(self) -> None:
        self._state.clear()


def _encode(key: Any) -> str:
    return base64.b64encode(pickle.dumps(key)).decode("ascii")


def _decode(key: str) -> Any:
    return pickle.loads(base64.b64decode(key))


class _MapState:
    def __init__(self, state: Any) -> None:
        self._state = state

    def get(self, key: Any) -> Any:
        return self._state.get(_encode(key))

    def put(self, key: Any, value: Any) -> None:
        self._state.put(_encode(key), value)

    def put_all(self, entries: Any) -> None:
        for key, value in dict(entries).items():
            self.put(key, value)

    def remove(self, key: Any) -> None:
        self._state.remove(_encode(key))

    def contains(self, key: Any) -> bool:
        return bool(self._state.contains(_encode(key)))

    def keys(self) -> list[Any]:
        return [_decode(k) for k in self._state.keys()]

    def values(self) -> list[Any]:
        return list(self._state.values())

    def items(self) -> list[tuple[Any, Any]]:
        return [(_decode(k), v) for k, v in self._state.items()]

    def is_empty(self) -> bool:
        return bool(self._state.is_empty())

    def clear(self) -> None:
        self._state.clear()


class _ReducingState:
    def __init__(self, state: Any, reduce: Callable[[Any, Any], Any]) -> None:
        self._state = state
        self._reduce = reduce

    def get(self) -> Any:
        return self._state.value()

    def add(self, value: Any) -> None:
        current = self._state.value()
        self._state.update(value if current is None else self._reduce(current, value))

    def clear(self) -> None:
        self._state.clear()


class _AggregatingState:
    def __init__(self, state: Any, function: Any) -> None:
        self._state = state
        self._function = function

    def get(self) -> Any:
        acc = self._state.value()
        return None if acc is None else self._function.get_result(acc)

    def add(self, value: Any) -> None:
        acc = self._state.value()
        if acc is None:
            acc = self._function.create_accumulator()
        self._state.update(self._function.add(value, acc))

    def clear(self) -> None:
        self._state.clear()


class _ProcessContext:
    """The ``ctx`` a streamlet process function gets, over Flink's."""

    def __init__(self, flink_ctx: Any, time_domain: Any = None) -> None:
        self._ctx = flink_ctx
        self._time_domain = time_domain

    def timestamp(self) -> int | None:
        return self._ctx.timestamp()

    def timer_service(self) -> Any:
        return self._ctx.timer_service()

    def get_current_key(self) -> Any:
        return self._ctx.get_current_key()

    def time_domain(self) -> Any:
        return self._time_domain


def _outputs(result: Any, tags: dict[str, Any]) -> Iterable[Any]:
    """A streamlet function's outputs as Flink's: ``(OutputTag, value)`` pairs go to the
    side output of the same id."""
    if result is None:
        return
    for item in result:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], OutputTag):
            tag = tags.get(item[0].tag_id)
            if tag is not None:
                yield tag, item[1]
            continue
        yield item


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


class _Processes(_UserFunction):
    api = "process"

    def __init__(self, fn: Any, side_tags: list[str]) -> None:
        super().__init__(fn)
        self.side_tags = side_tags
        self.tags: dict[str, Any] = {}

    def open(self, runtime_context: Any) -> None:
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.tags = {tag: FlinkOutputTag(tag, pickled) for tag in self.side_tags}
        super().open(runtime_context)

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        return _outputs(self.call(value, _ProcessContext(ctx)), self.tags)


class Process(_Processes, FlinkProcessFunction):
    """A streamlet ProcessFunction on a non-keyed stream."""


class KeyedProcess(_Processes, KeyedProcessFunction):
    """A streamlet KeyedProcessFunction: state through streamlet's descriptors, timers,
    and ``(OutputTag, value)`` side outputs."""

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
        return _on_timer(self.fn, timestamp, ctx, self.tags)


def _on_timer(fn: Any, timestamp: int, ctx: Any, tags: dict[str, Any]) -> Iterable[Any]:
    """The user's ``on_timer`` (if any) with streamlet's TimeDomain in its context."""
    on_timer = getattr(fn, "on_timer", None)
    if on_timer is None:
        return ()
    domain = TimeDomain[ctx.time_domain().name]  # streamlet's enum, as users compare
    return _outputs(on_timer(timestamp, _ProcessContext(ctx, domain)), tags)


class _TwoInputs(_UserFunction):
    """A two-input node's user object: its ``open``/``close`` once, one method per input,
    side output tags made at ``open``."""

    def __init__(self, fn: Any, side_tags: list[str]) -> None:
        self.fn = fn
        self.side_tags = side_tags
        self.tags: dict[str, Any] = {}

    def open(self, runtime_context: Any) -> None:
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.tags = {tag: FlinkOutputTag(tag, pickled) for tag in self.side_tags}
        super().open(runtime_context)


class _CoFunctions(_TwoInputs):
    """``connect(...).map / flat_map / process``: all three run as Flink's co-process
    function, which calls the user's ``map1``/``map2``, ``flat_map1``/``flat_map2`` or
    ``process_element1``/``process_element2``.

    A CoMap's result is one record (even a tuple that looks like a side output), a
    CoFlatMap's any number, a CoProcess's any number with ``yield tag, value`` side outputs:
    as on streamlet's runtime.
    """

    def __init__(self, fn: Any, api: str, side_tags: list[str]) -> None:
        super().__init__(fn, side_tags)
        self.co_api = api
        self.calls = check_co_function(fn, api)

    def _run(self, index: int, value: Any, ctx: Any) -> Iterable[Any]:
        call = self.calls[index]
        if self.co_api == "co_map":
            return (call(value),)
        if self.co_api == "co_flat_map":
            result = call(value)
            return () if result is None else result
        return _outputs(call(value, _ProcessContext(ctx)), self.tags)

    def process_element1(self, value: Any, ctx: Any) -> Iterable[Any]:
        return self._run(0, value, ctx)

    def process_element2(self, value: Any, ctx: Any) -> Iterable[Any]:
        return self._run(1, value, ctx)


class Co(_CoFunctions, CoProcessFunction):
    """A co-function on connected streams that are not both keyed."""


class KeyedCo(_CoFunctions, KeyedCoProcessFunction):
    """A co-function on connected keyed streams: keyed state shared by both inputs (each
    keyed by its own selector), one set of timers, ``on_timer`` with its key current."""

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
        return _on_timer(self.fn, timestamp, ctx, self.tags)


def broadcast_descriptor(name: str) -> Any:
    """Flink's descriptor of the broadcast state ``name``: keys as base64 strings of their
    pickle (a pickled byte[] key is compared by identity in Java, so never found again),
    values pickled."""
    return MapStateDescriptor(name, Types.STRING(), Types.PICKLED_BYTE_ARRAY())


class _BroadcastState:
    """One broadcast state as streamlet's ``BroadcastState`` (``writable``) or
    ``ReadOnlyBroadcastState``, over Flink's."""

    def __init__(self, state: Any, writable: bool) -> None:
        self._state = state
        self._writable = writable

    def get(self, key: Any) -> Any:
        return self._state.get(_encode(key))

    def contains(self, key: Any) -> bool:
        return bool(self._state.contains(_encode(key)))

    def keys(self) -> list[Any]:
        return [_decode(k) for k in self._state.keys()]

    def values(self) -> list[Any]:
        return list(self._state.values())

    def items(self) -> list[tuple[Any, Any]]:
        return [(_decode(k), v) for k, v in self._state.items()]

    def is_empty(self) -> bool:
        return bool(self._state.is_empty())

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def _check_writable(self, method: str) -> None:
        if not self._writable:
            raise StateError(
                f"broadcast state is read-only in process_element(): {method}() is refused, "
                f"as every subtask sees other events and the copies would differ; write it "
                f"in process_broadcast_element()"
            )

    def put(self, key: Any, value: Any) -> None:
        self._check_writable("put")
        self._state.put(_encode(key), value)

    def put_all(self, entries: Any) -> None:
        self._check_writable("put_all")
        for key, value in dict(entries).items():
            self._state.put(_encode(key), value)

    def remove(self, key: Any) -> None:
        self._check_writable("remove")
        self._state.remove(_encode(key))

    def clear(self) -> None:
        self._check_writable("clear")
        for key in list(self._state.keys()):
            self._state.remove(key)


class _BroadcastContext:
    """The ``ctx`` of a broadcast function's methods, over Flink's: the timestamp, time,
    the broadcast states (of the descriptors given to ``broadcast(...)``), and on a keyed
    event stream the key and timers."""

    def __init__(
        self, flink_ctx: Any, names: frozenset[str], writable: bool, time_domain: Any = None
    ) -> None:
        self._ctx = flink_ctx
        self._names = names
        self._writable = writable
        self._time_domain = time_domain

    def timestamp(self) -> int | None:
        return self._ctx.timestamp()

    def current_processing_time(self) -> int:
        return int(self._ctx.current_processing_time())

    def current_watermark(self) -> int:
        return int(self._ctx.current_watermark())

    def get_broadcast_state(self, descriptor: Any) -> _BroadcastState:
        name = getattr(descriptor, "name", None)
        if name not in self._names:
            raise StateError(
                f"get_broadcast_state() got {descriptor!r}, which is not a broadcast state of "
                f"this operator (declared: {sorted(self._names)}); pass the "
                f"MapStateDescriptor given to broadcast(...)"
            )
        state = self._ctx.get_broadcast_state(broadcast_descriptor(name))
        return _BroadcastState(state, self._writable)

    def get_current_key(self) -> Any:
        return self._ctx.get_current_key()

    def timer_service(self) -> Any:
        return self._ctx.timer_service()

    def time_domain(self) -> Any:
        return self._time_domain

    def apply_to_keyed_state(self, state_descriptor: Any, function: Any) -> None:
        raise StateError(
            "ctx.apply_to_keyed_state() has no counterpart in PyFlink (Java's "
            "KeyedStateFunction is not exposed to Python functions): run this job on "
            "streamlet's own runtime (runner='local')"
        )


class _BroadcastFunctions(_TwoInputs):
    """``events.connect(rules.broadcast(...)).process(f)``: ``process_element`` with the
    broadcast states read-only, ``process_broadcast_element`` with them writable."""

    def __init__(self, fn: Any, state_names: list[str], side_tags: list[str]) -> None:
        super().__init__(fn, side_tags)
        self.state_names = frozenset(state_names)
        self.calls = check_broadcast_function(fn)

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        context = _BroadcastContext(ctx, self.state_names, writable=False)
        return _outputs(self.calls[0](value, context), self.tags)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        context = _BroadcastContext(ctx, self.state_names, writable=True)
        return _outputs(self.calls[1](value, context), self.tags)


class Broadcast(_BroadcastFunctions, BroadcastProcessFunction):
    """A streamlet BroadcastProcessFunction (non-keyed events)."""


class KeyedBroadcast(_BroadcastFunctions, KeyedBroadcastProcessFunction):
    """A streamlet KeyedBroadcastProcessFunction: events with their key, keyed state and
    timers; ``on_timer`` sees the broadcast states read-only."""

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
        on_timer = getattr(self.fn, "on_timer", None)
        if on_timer is None:
            return ()
        domain = TimeDomain[ctx.time_domain().name]
        context = _BroadcastContext(ctx, self.state_names, writable=False, time_domain=domain)
        return _outputs(on_timer(timestamp, context), self.tags)


class Identity(MapFunction):
    """Passes records on: after Flink's ``key_by``, it keeps them on the subtask that owns
    their key (the one keyed input of connected streams that are not both keyed)."""

    def map(self, value: Any) -> Any:
        return value


class Encode(MapFunction):
    """A record as its line for Flink's FileSink: the streamlet sink's encoder, run here
    (Flink's SimpleStringEncoder writes the Java string, plus a newline)."""

    def __init__(self, encoder: Callable[[Any], str]) -> None:
        self.encoder = encoder

    def map(self, value: Any) -> str:
        line = self.encoder(value)
        if not isinstance(line, str):
            raise TypeError(f"the FileSink's encoder returned {line!r}, not a str")
        return line


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


class _Timestamps(TimestampAssigner):
    """A streamlet timestamp assigner as Flink's."""

    def __init__(self, assigner: Any) -> None:
        self.assigner = assigner

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        # Flink passes Long.MIN_VALUE for "no timestamp"; streamlet says None.
        previous = None if record_timestamp < -(2**62) else record_timestamp
        return int(self.assigner.extract_timestamp(value, previous))


def watermark_strategy(strategy: Any) -> Any:
    """Flink's WatermarkStrategy for a streamlet one with a built-in generator (checked by
    :func:`~streamlet.flink.refusal.check_translatable`)."""
    kind = watermark_kind(strategy)
    assert kind is not None, "custom watermark generators are refused before translation"
    if kind[0] == "monotonous":
        flink = FlinkWatermarkStrategy.for_monotonous_timestamps()
    elif kind[0] == "bounded":
        flink = FlinkWatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(kind[1]))
    else:
        flink = FlinkWatermarkStrategy.no_watermarks()
    assigner = strategy.create_timestamp_assigner()
    if assigner is not None:
        flink = flink.with_timestamp_assigner(_Timestamps(assigner))
    idle = strategy.get_idle_timeout_ms()
    if idle is not None:
        flink = flink.with_idleness(Duration.of_millis(idle))
    return flink


def collect_async(ds: Any, type_info: Any) -> Any:
    """An iterator over ``ds``'s records that fills once the job is executed (Java's
    ``collectAsync``): the job is then run whole, with its other sinks."""
    return CloseableIterator(ds._j_data_stream.collectAsync(), type_info)
