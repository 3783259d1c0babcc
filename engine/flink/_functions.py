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

from pyflink.common import Duration, Time, Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.common.watermark_strategy import WatermarkStrategy as FlinkWatermarkStrategy
from pyflink.datastream import AggregateFunction as FlinkAggregateFunction
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
    ReduceFunction,
)
from pyflink.datastream import CountWindow as FlinkCountWindow
from pyflink.datastream import OutputTag as FlinkOutputTag
from pyflink.datastream import ProcessFunction as FlinkProcessFunction
from pyflink.datastream import ProcessWindowFunction as FlinkProcessWindowFunction
from pyflink.datastream import TimeWindow as FlinkTimeWindow
from pyflink.datastream import Trigger as FlinkTrigger
from pyflink.datastream import TriggerResult as FlinkTriggerResult
from pyflink.datastream import window as flink_window
from pyflink.datastream.data_stream import CloseableIterator
from pyflink.datastream.state import AggregatingStateDescriptor as FlinkAggregatingStateDescriptor
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ValueStateDescriptor,
)
from pyflink.datastream.state import ReducingStateDescriptor as FlinkReducingStateDescriptor
from pyflink.datastream.window import SessionWindowTimeGapExtractor

from streamlet.flink.keys import normalise_key
from streamlet.flink.refusal import watermark_kind
from streamlet.operators.broadcast import check_broadcast_function
from streamlet.operators.connected import check_co_function
from streamlet.operators.derived import field_reduce
from streamlet.operators.functions import FUNCTION_METHODS, FunctionAdapter
from streamlet.operators.records import OutputTag
from streamlet.operators.time import TimeDomain
from streamlet.operators.windowing.windows import GLOBAL_WINDOW, CountWindow, TimeWindow
from streamlet.state.errors import StateError

__all__ = [
    "Broadcast",
    "ByIndex",
    "Co",
    "Encode",
    "Filter",
    "FlatMap",
    "GapExtractor",
    "Identity",
    "KeyedBroadcast",
    "KeyedCo",
    "KeyedProcess",
    "Map",
    "NormalisedKey",
    "Process",
    "Reduce",
    "WindowAggregate",
    "WindowProcess",
    "WindowReduce",
    "WindowTrigger",
    "broadcast_descriptor",
    "collect_async",
    "field_reduce",
    "streamlet_window",
    "watermark_strategy",
    "window_assigner",
    "windowed",
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
        self._max_parallelism = read("get_max_number_of_parallel_subtasks", self._parallelism)
        self._task_name = read("get_task_name", "")
        self._task_name_with_subtasks = read("get_task_name_with_subtasks", self._task_name)
        self._attempt = read("get_attempt_number", 0)
        self._metrics = read("get_metrics_group", None)

    def get_index_of_this_subtask(self) -> int:
        return int(self._index)

    def get_number_of_parallel_subtasks(self) -> int:
        return int(self._parallelism)

    def get_max_number_of_parallel_subtasks(self) -> int:
        return int(self._max_parallelism)

    def get_task_name(self) -> str:
        return str(self._task_name)

    def get_task_name_with_subtasks(self) -> str:
        return str(self._task_name_with_subtasks)

    def get_attempt_number(self) -> int:
        return int(self._attempt)

    def get_metrics_group(self) -> Any:
        """Flink's metric group of the subtask (``counter``, ``gauge``, ``meter``,
        ``distribution``, ``add_group``: the names streamlet's has), reported by Flink."""
        if self._metrics is None:
            raise StateError(
                "this subtask's metric group is not available from PyFlink here; the job "
                "runs on Flink, whose metrics go to Flink's reporters"
            )
        return self._metrics

    def get_job_parameter(self, key: str, default_value: str) -> str:
        try:
            return str(self._flink.get_job_parameter(key, default_value))
        except Exception:
            return default_value

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


class _BroadcastState(_MapState):
    """One broadcast state as streamlet's ``BroadcastState`` (``writable``) or
    ``ReadOnlyBroadcastState``, over Flink's: Map state's reads, and writes that a read-only
    view refuses."""

    def __init__(self, state: Any, writable: bool) -> None:
        super().__init__(state)
        self._writable = writable

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


# --- windows ---
#
# A window node runs on PyFlink's own window operator (Python, in the worker), which takes
# a PyFlink assigner, trigger and window function. The assigner is PyFlink's counterpart of
# streamlet's built-in one; the trigger is streamlet's own trigger object (built-in or the
# user's) behind :class:`WindowTrigger`, so it decides exactly as on streamlet's runtime; the
# functions are the user's behind :class:`WindowReduce`, :class:`WindowAggregate` and
# :class:`WindowProcess`. The user sees streamlet's windows (TimeWindow, CountWindow,
# GLOBAL_WINDOW), never PyFlink's.


def _no_timestamp(timestamp: int | None) -> int | None:
    """Flink's "no timestamp" (None or Long.MIN_VALUE) as streamlet's ``None``."""
    return None if timestamp is None or timestamp < -(2**62) else timestamp


def streamlet_window(window: Any, count_window: bool) -> Any:
    """PyFlink's window as streamlet's: a TimeWindow as streamlet's TimeWindow, PyFlink's
    GlobalWindow as :data:`GLOBAL_WINDOW`, or as ``CountWindow(0)`` for streamlet's
    ``count_window(n)`` (which PyFlink runs as GlobalWindows with a purging count
    trigger, as Flink's Java ``countWindow`` does)."""
    if isinstance(window, FlinkTimeWindow):
        return TimeWindow(window.start, window.end)
    if isinstance(window, FlinkCountWindow):
        return CountWindow(window.id)
    return CountWindow(0) if count_window else GLOBAL_WINDOW


def _flink_state(get: Callable[[Any], Any], descriptor: Any) -> Any:
    """Flink state for one of streamlet's state descriptors, through ``get`` (a trigger
    context's ``get_partitioned_state``), seen with streamlet's state API.

    Reducing and aggregating state are Flink's own here (not a ValueState as in
    :class:`_Context`), so that merging windows can merge them
    (``merge_partitioned_state``)."""
    flink = _flink_descriptor(descriptor)
    state = get(flink)
    if descriptor.kind == "value":
        return _ValueState(state, descriptor.default_value)
    if descriptor.kind == "map":
        return _MapState(state)
    return state


def _flink_descriptor(descriptor: Any) -> Any:
    pickled = Types.PICKLED_BYTE_ARRAY()
    kind = descriptor.kind
    if kind == "value":
        return ValueStateDescriptor(descriptor.name, pickled)
    if kind == "list":
        return ListStateDescriptor(descriptor.name, pickled)
    if kind == "map":
        return MapStateDescriptor(descriptor.name, Types.STRING(), pickled)
    if kind == "reducing":
        return FlinkReducingStateDescriptor(
            descriptor.name, WindowReduce(descriptor.reduce), pickled
        )
    if kind == "aggregating":
        return FlinkAggregatingStateDescriptor(
            descriptor.name, WindowAggregate(descriptor.aggregate_function), pickled
        )
    raise ValueError(f"the Flink runner cannot translate state of kind {kind!r}")


class _TriggerContext:
    """The TriggerContext (and OnMergeContext) a streamlet trigger gets, over PyFlink's."""

    def __init__(self, flink_ctx: Any) -> None:
        self._ctx = flink_ctx

    def get_current_processing_time(self) -> int:
        return int(self._ctx.get_current_processing_time())

    def get_current_watermark(self) -> int:
        return int(self._ctx.get_current_watermark())

    def register_processing_time_timer(self, time: int) -> None:
        self._ctx.register_processing_time_timer(time)

    def register_event_time_timer(self, time: int) -> None:
        self._ctx.register_event_time_timer(time)

    def delete_processing_time_timer(self, time: int) -> None:
        self._ctx.delete_processing_time_timer(time)

    def delete_event_time_timer(self, time: int) -> None:
        self._ctx.delete_event_time_timer(time)

    def get_partitioned_state(self, descriptor: Any) -> Any:
        return _flink_state(self._ctx.get_partitioned_state, descriptor)

    def merge_partitioned_state(self, descriptor: Any) -> None:
        self._ctx.merge_partitioned_state(_flink_descriptor(descriptor))

    def get_metric_group(self) -> Any:
        return self._ctx.get_metric_group()


class WindowTrigger(FlinkTrigger):
    """A streamlet trigger (built-in or the user's) as PyFlink's: the same decisions, with
    its partitioned state and timers in PyFlink's window operator."""

    def __init__(self, trigger: Any, count_window: bool) -> None:
        super().__init__()
        self.trigger = trigger
        self.count_window = count_window

    def _result(self, result: Any) -> Any:
        return FlinkTriggerResult[result.name]

    def on_element(self, element: Any, timestamp: int, window: Any, ctx: Any) -> Any:
        w = streamlet_window(window, self.count_window)
        stamp = _no_timestamp(timestamp)
        return self._result(self.trigger.on_element(element, stamp, w, _TriggerContext(ctx)))

    def on_processing_time(self, time: int, window: Any, ctx: Any) -> Any:
        w = streamlet_window(window, self.count_window)
        return self._result(self.trigger.on_processing_time(time, w, _TriggerContext(ctx)))

    def on_event_time(self, time: int, window: Any, ctx: Any) -> Any:
        w = streamlet_window(window, self.count_window)
        return self._result(self.trigger.on_event_time(time, w, _TriggerContext(ctx)))

    def can_merge(self) -> bool:
        return bool(self.trigger.can_merge())

    def on_merge(self, window: Any, ctx: Any) -> None:
        self.trigger.on_merge(streamlet_window(window, self.count_window), _TriggerContext(ctx))

    def clear(self, window: Any, ctx: Any) -> None:
        self.trigger.clear(streamlet_window(window, self.count_window), _TriggerContext(ctx))


class WindowReduce(ReduceFunction):
    """A streamlet reduce function (a callable, or an object with ``reduce``) as PyFlink's."""

    def __init__(self, function: Any) -> None:
        reduce = getattr(function, "reduce", None)
        self.reduce_fn: Callable[[Any, Any], Any] = reduce if callable(reduce) else function

    def reduce(self, value1: Any, value2: Any) -> Any:
        return self.reduce_fn(value1, value2)


class WindowAggregate(FlinkAggregateFunction):
    """A streamlet AggregateFunction as PyFlink's."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def create_accumulator(self) -> Any:
        return self.function.create_accumulator()

    def add(self, value: Any, accumulator: Any) -> Any:
        return self.function.add(value, accumulator)

    def get_result(self, accumulator: Any) -> Any:
        return self.function.get_result(accumulator)

    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        return self.function.merge(acc_a, acc_b)


class GapExtractor(SessionWindowTimeGapExtractor):
    """The dynamic gap of a streamlet session assigner, in ms, checked as streamlet checks
    it (through the assigner's own window of an element)."""

    def __init__(self, assigner: Any) -> None:
        self.assigner = assigner

    def extract(self, element: Any) -> int:
        window = self.assigner._window_at(element, 0)[0]
        return int(window.end - window.start)


class _StateStore:
    """``context.window_state()`` / ``global_state()`` of a process window function:
    streamlet's descriptors over PyFlink's KeyedStateStore (as :class:`_Context` does)."""

    def __init__(self, store: Any) -> None:
        self._context = _Context(store)

    def get_state(self, descriptor: Any) -> Any:
        return self._context.get_state(descriptor)

    def get_list_state(self, descriptor: Any) -> Any:
        return self._context.get_list_state(descriptor)

    def get_map_state(self, descriptor: Any) -> Any:
        return self._context.get_map_state(descriptor)

    def get_reducing_state(self, descriptor: Any) -> Any:
        return self._context.get_reducing_state(descriptor)

    def get_aggregating_state(self, descriptor: Any) -> Any:
        return self._context.get_aggregating_state(descriptor)


class _WindowFunctionContext:
    """The ``context`` of a streamlet ProcessWindowFunction, over PyFlink's."""

    def __init__(self, flink_ctx: Any, count_window: bool) -> None:
        self._ctx = flink_ctx
        self._count_window = count_window

    def window(self) -> Any:
        return streamlet_window(self._ctx.window(), self._count_window)

    def current_processing_time(self) -> int:
        return int(self._ctx.current_processing_time())

    def current_watermark(self) -> int:
        return int(self._ctx.current_watermark())

    def window_state(self) -> Any:
        return _StateStore(self._ctx.window_state())

    def global_state(self) -> Any:
        return _StateStore(self._ctx.global_state())


class WindowProcess(FlinkProcessWindowFunction):
    """The window function of a streamlet window node, as PyFlink's ProcessWindowFunction.

    It runs what streamlet's window operator runs over a fired window: for ``process`` /
    ``apply`` the user's function over the elements; for ``reduce`` / ``aggregate`` the
    optional window function over the one pre-aggregated value (or that value itself). A
    ``window_all`` node's functions take no key. It is always set, even without a user
    window function, so the ``open``/``close`` hooks of the reduce or aggregate function
    run as on streamlet.
    """

    def __init__(self, spec: Any, count_window: bool) -> None:
        self.kind: str = spec.kind
        self.function = spec.function
        self.window_function = spec.window_function
        self.all_windows: bool = spec.all_windows
        self.count_window = count_window

    def _user_functions(self) -> list[Any]:
        return [
            fn
            for fn in (self.function, self.window_function)
            if fn is not None and not isinstance(fn, type)
        ]

    def open(self, runtime_context: Any) -> None:
        context = _Context(runtime_context)
        for fn in self._user_functions():
            hook = getattr(fn, "open", None)
            if callable(hook):
                hook(context)

    def close(self) -> None:
        for fn in self._user_functions():
            hook = getattr(fn, "close", None)
            if callable(hook):
                hook()

    def _evaluated(self) -> Any:
        return self.window_function if self.kind in ("reduce", "aggregate") else self.function

    def process(self, key: Any, context: Any, elements: Iterable[Any]) -> Iterable[Any]:
        inputs = list(elements)
        fn = self._evaluated()
        if fn is None:
            return inputs
        process = getattr(fn, "process", None)
        if callable(process):
            ctx = _WindowFunctionContext(context, self.count_window)
            result = process(ctx, inputs) if self.all_windows else process(key, ctx, inputs)
        else:
            apply = getattr(fn, "apply", fn)
            window = streamlet_window(context.window(), self.count_window)
            result = apply(window, inputs) if self.all_windows else apply(key, window, inputs)
        return [] if result is None else list(result)

    def clear(self, context: Any) -> None:
        clear = getattr(self._evaluated(), "clear", None)
        if callable(clear):
            clear(_WindowFunctionContext(context, self.count_window))


def window_assigner(assigner: Any) -> Any:
    """PyFlink's counterpart of one of streamlet's built-in assigners (others are refused
    by :func:`~streamlet.flink.refusal.check_translatable`)."""

    def ms(value: int) -> Any:
        return Time.milliseconds(value)

    name = type(assigner).__name__
    if name in ("TumblingEventTimeWindows", "TumblingProcessingTimeWindows"):
        cls = getattr(flink_window, name)
        return cls.of(ms(assigner.get_size()), ms(assigner.get_offset()))
    if name in ("SlidingEventTimeWindows", "SlidingProcessingTimeWindows"):
        cls = getattr(flink_window, name)
        return cls.of(ms(assigner.get_size()), ms(assigner.get_slide()), ms(assigner.get_offset()))
    if name in ("EventTimeSessionWindows", "ProcessingTimeSessionWindows"):
        cls = getattr(flink_window, name)
        gap = assigner.get_gap()
        if gap is None:
            return cls.with_dynamic_gap(GapExtractor(assigner))
        return cls.with_gap(ms(gap))
    if name in ("GlobalWindows", "CountTumblingWindowAssigner"):
        return flink_window.GlobalWindows.create()
    raise AssertionError(f"the assigner {assigner!r} is refused before translation")


def windowed(upstream: Any, spec: Any, pickled: Any) -> Any:
    """The window node ``spec`` on the keyed PyFlink stream ``upstream``."""
    assigner = spec.assigner
    count_window = type(assigner).__name__ == "CountTumblingWindowAssigner"
    trigger = spec.trigger or assigner.get_default_trigger()
    windows = upstream.window(window_assigner(assigner)).trigger(
        WindowTrigger(trigger, count_window)
    )
    if spec.allowed_lateness:
        windows = windows.allowed_lateness(spec.allowed_lateness)
    if spec.late_tag is not None:
        windows = windows.side_output_late_data(FlinkOutputTag(spec.late_tag, pickled))
    function = WindowProcess(spec, count_window)
    if spec.kind == "reduce":
        return windows.reduce(WindowReduce(spec.function), function, output_type=pickled)
    if spec.kind == "aggregate":
        # No accumulator_type: PyFlink's default is a fresh pickled type, which pickles
        # with the window's descriptor (``pickled`` holds its Java twin once used).
        return windows.aggregate(WindowAggregate(spec.function), function, output_type=pickled)
    return windows.process(function, output_type=pickled)
