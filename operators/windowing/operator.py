"""The window operator: Flink's ``WindowOperator`` on streamlet's keyed state and timers.

One instance per subtask of a ``key_by(...).window(assigner)`` stream. Per record, with the
record's key current: the assigner gives its windows; a window already past its allowed
lateness is skipped (an element all of whose windows are skipped is *late*: it goes to the
late-data side output, if one is set, else it is dropped and counted); the element is added
to each window's contents; the trigger decides whether the window fires (the window function
runs over the contents and its results carry ``window.max_timestamp()``) and whether the
contents are purged. Merging assigners (sessions) first merge the new window with the key's
windows (:class:`~.merging.MergingWindowSet`).

State, all keyed and so in every checkpoint, restored and rescaled by key group:

- ``_window/contents``: per key, ``{state window: accumulator or elements}``: one
  accumulator per (key, window) for ``reduce`` / ``aggregate``, the elements for
  ``process`` / ``apply`` (with timestamps, when an evictor needs them);
- ``_window/merging``: per key, the merging window set's ``{window: state window}``;
- ``_window/timers-event`` and ``_window/timers-processing``: per key,
  ``{timestamp: [windows]}``, the windows each of the key's timers is for (Flink's timer
  namespace); the timers themselves are a :class:`~streamlet.state.timers.KeyedTimerQueue`
  per domain (service ``window-timers``);
- ``_window/trigger/<name>``, ``_window/user/<name>``: trigger state and a process
  function's ``window_state()``, per (key, window) (:mod:`.namespaced`).

A window's state is cleared at its cleanup time (``max_timestamp() + allowed_lateness`` in
event time, ``max_timestamp()`` in processing time), by a timer registered with the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamlet.state.descriptors import StateDescriptor, ValueStateDescriptor
from streamlet.state.errors import StreamletInternalError
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.timers import KeyedTimerQueue, timer_state_name

from ..base import Operator, OperatorContext
from ..processing_time import current_processing_time
from ..records import TimestampedBatch
from ..time import MAX_WATERMARK_TIMESTAMP
from .assigners import MergingWindowAssigner, WindowAssigner
from .evictors import Evictor, TimestampedValue
from .merging import MergingWindowSet
from .namespaced import WindowStates
from .triggers import EventTimeTrigger, Trigger, TriggerResult

__all__ = ["WindowOperator", "WindowSpec"]

_CONTENTS = ValueStateDescriptor("_window/contents")
_MERGING = ValueStateDescriptor("_window/merging")
_TIMERS = {
    "event": ValueStateDescriptor("_window/timers-event"),
    "processing": ValueStateDescriptor("_window/timers-processing"),
}
_TIMER_SERVICE = "window-timers"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Everything a window operator is made of (the graph node's argument).

    :param assigner: the WindowAssigner
    :param trigger: the trigger (None: the assigner's default)
    :param evictor: the evictor (None: the assigner's default, usually none)
    :param allowed_lateness: ms an event-time window stays after its end (0 default)
    :param late_tag: the id of the late-data side output, or None (late data is dropped)
    :param kind: ``"reduce"``, ``"aggregate"``, ``"process"`` or ``"apply"``
    :param function: the reduce function, AggregateFunction, ProcessWindowFunction or
        WindowFunction
    :param window_function: for reduce/aggregate, the optional ProcessWindowFunction or
        WindowFunction that gets the result
    :param all_windows: a ``window_all`` stream: the functions take no key
    """

    assigner: WindowAssigner
    trigger: Trigger | None = None
    evictor: Evictor | None = None
    allowed_lateness: int = 0
    late_tag: str | None = None
    kind: str = "process"
    function: Any = None
    window_function: Any = None
    all_windows: bool = False


class _Context:
    """The context triggers, evictors, assigners and process window functions see.

    It is one object, re-pointed at the window in hand (``window``), as Flink's
    WindowOperator re-points its contexts: everything scoped to "the current window" reads
    ``window``, and the current key is the backend's.
    """

    def __init__(self, op: WindowOperator) -> None:
        self._op = op
        self.window: Any = None
        self._merged: list[Any] = []

    # -- time --

    def get_current_processing_time(self) -> int:
        return self._op.processing_time_now()

    def get_current_watermark(self) -> int:
        return self._op.current_watermark

    # PyFlink's ProcessWindowFunction.Context names
    def current_processing_time(self) -> int:
        return self._op.processing_time_now()

    def current_watermark(self) -> int:
        return self._op.current_watermark

    # -- timers, for the current window --

    def register_event_time_timer(self, time: int) -> None:
        self._op._register_timer("event", time, self.window)

    def register_processing_time_timer(self, time: int) -> None:
        self._op._register_timer("processing", time, self.window)

    def delete_event_time_timer(self, time: int) -> None:
        self._op._delete_timer("event", time, self.window)

    def delete_processing_time_timer(self, time: int) -> None:
        self._op._delete_timer("processing", time, self.window)

    # -- state --

    def get_partitioned_state(self, descriptor: StateDescriptor) -> Any:
        return self._op._trigger_states.get(descriptor)

    def merge_partitioned_state(self, descriptor: StateDescriptor) -> None:
        self._op._trigger_states.merge(descriptor, self.window, self._merged)

    def window_state(self) -> Any:
        return _StateStore(self._op._user_states.get)

    def global_state(self) -> Any:
        return _StateStore(self._op._global_state)

    def get_metric_group(self) -> Any:
        return None


class _StateStore:
    """``context.window_state()`` / ``global_state()``: get_state & co. of one scope."""

    def __init__(self, get: Callable[[Any], Any]) -> None:
        self._get = get

    def get_state(self, descriptor: Any) -> Any:
        return self._get(descriptor)

    get_list_state = get_reducing_state = get_aggregating_state = get_state


class _FunctionContext:
    """What ``ProcessWindowFunction.process(key, context, elements)`` gets as ``context``."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def window(self) -> Any:
        return self._ctx.window

    def current_processing_time(self) -> int:
        return self._ctx.current_processing_time()

    def current_watermark(self) -> int:
        return self._ctx.current_watermark()

    def window_state(self) -> Any:
        return self._ctx.window_state()

    def global_state(self) -> Any:
        return self._ctx.global_state()


class WindowOperator(Operator[Any, Any]):
    """Windows on a keyed stream (see the module docstring).

    :param spec: assigner, trigger, evictor, lateness and functions (each subtask gets its
        own copies of user objects)
    :param key_selector: the stream's key selector
    """

    keyed = True
    accepts_timestamps = True
    timed = True

    def __init__(self, spec: WindowSpec, key_selector: Callable[[Any], Any]) -> None:
        self._spec = spec
        self._key_selector = key_selector
        self._assigner = spec.assigner
        self._trigger = spec.trigger or spec.assigner.get_default_trigger()
        self._evictor = spec.evictor or spec.assigner.get_default_evictor()
        self._lateness = spec.allowed_lateness
        self._event_time = spec.assigner.is_event_time()
        self._merging = isinstance(spec.assigner, MergingWindowAssigner)
        self._queues: dict[str, KeyedTimerQueue] = {}
        # The common case gets a loop of its own (see _process_fast): event time, Flink's
        # EventTimeTrigger, no merging, no evictor.
        self._fast = (
            type(self._trigger) is EventTimeTrigger
            and self._event_time
            and not self._merging
            and self._evictor is None
        )
        #: Late records dropped (no late-data side output): Flink's numLateRecordsDropped.
        self.num_late_records_dropped = 0

    # --- lifecycle ---

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        backend = ctx.keyed_backend
        if backend is None:
            raise StreamletInternalError(
                f"window operator {ctx.operator_name!r} was opened without a keyed backend"
            )
        self._backend: HeapKeyedStateBackend = backend
        self._contents = backend.get_state(_CONTENTS)
        self._merging_state = backend.get_state(_MERGING) if self._merging else None
        self._timer_windows = {domain: backend.get_state(d) for domain, d in _TIMERS.items()}
        self._context = _Context(self)
        self._function_context = _FunctionContext(self._context)
        self._trigger_states = WindowStates(backend, "_window/trigger/", self._current_window)
        self._user_states = WindowStates(backend, "_window/user/", self._current_window)
        for domain in ("event", "processing"):
            if backend.has_state_named(timer_state_name(domain, _TIMER_SERVICE)):
                self._queue(domain)
        self._request_processing_time()
        for fn in (self._spec.function, self._spec.window_function):
            opener = getattr(fn, "open", None)
            if callable(opener) and not isinstance(fn, type):
                from ..functions import RuntimeContext

                opener(RuntimeContext(ctx))

    async def close(self) -> None:
        for fn in (self._spec.function, self._spec.window_function):
            closer = getattr(fn, "close", None)
            if callable(closer) and not isinstance(fn, type):
                closer()

    def _current_window(self) -> Any:
        return self._context.window

    def _global_state(self, descriptor: Any) -> Any:
        backend = self._backend
        getter: Any = {
            "value": backend.get_state,
            "list": backend.get_list_state,
            "map": backend.get_map_state,
            "reducing": backend.get_reducing_state,
            "aggregating": backend.get_aggregating_state,
        }[descriptor.kind]
        return getter(descriptor)

    def processing_time_now(self) -> int:
        return current_processing_time(self.ctx.processing_time)

    # --- timers, namespaced by window ---

    def _queue(self, domain: str) -> KeyedTimerQueue:
        queue = self._queues.get(domain)
        if queue is None:
            queue = self._queues[domain] = KeyedTimerQueue(self._backend, domain, _TIMER_SERVICE)
        return queue

    def _register_timer(self, domain: str, timestamp: int, window: Any) -> None:
        state = self._timer_windows[domain]
        timers = state.value()
        if timers is None:
            state.update({timestamp: [window]})
        else:
            windows = timers.get(timestamp)
            if windows is None:
                timers[timestamp] = [window]
            elif window in windows:
                return  # one timer per (key, window, timestamp), as in Flink
            else:
                windows.append(window)
            state.update(timers)
        self._queue(domain).register(timestamp)
        if domain == "processing" and self.ctx.processing_time is not None:
            self.ctx.processing_time.request(timestamp)

    def _delete_timer(self, domain: str, timestamp: int, window: Any) -> None:
        state = self._timer_windows[domain]
        timers = state.value()
        windows = None if timers is None else timers.get(timestamp)
        if not windows or window not in windows:
            return
        windows.remove(window)
        if not windows:
            del timers[timestamp]
            self._queue(domain).delete(timestamp)
        state.update(timers or None)

    def _request_processing_time(self) -> None:
        service = self.ctx.processing_time
        if service is not None:
            service.request_earliest(self._queues.get("processing"))

    def _cleanup_time(self, window: Any) -> int:
        if not self._event_time:
            return window.max_timestamp()
        end = window.max_timestamp() + self._lateness
        return end if end >= window.max_timestamp() else MAX_WATERMARK_TIMESTAMP

    def _is_window_late(self, window: Any) -> bool:
        return self._event_time and self._cleanup_time(window) <= self.current_watermark

    # --- records ---

    async def process_batch(self, batch: Any) -> Any:
        if type(batch) is TimestampedBatch:
            records, stamps = batch.records, batch.timestamps
        else:
            records, stamps = batch, [None] * len(batch)
        out: list[Any] = []
        out_stamps: list[int | None] = []
        late: list[Any] = []
        late_stamps: list[int | None] = []
        each_record = self._backend.each_record(records, self._key_selector)
        if self._fast:
            self._process_fast(each_record, stamps, out, out_stamps, late, late_stamps)
        else:
            for record, timestamp in zip(each_record, stamps, strict=True):
                if not self._process_element(record, timestamp, out, out_stamps):
                    if self._spec.late_tag is not None:
                        late.append(record)
                        late_stamps.append(timestamp)
                    else:
                        self.num_late_records_dropped += 1
        if late:
            self.side_outputs = {self._spec.late_tag: TimestampedBatch(late, late_stamps)}  # type: ignore[dict-item]
        return TimestampedBatch(out, out_stamps)

    def _process_fast(
        self,
        records: Any,
        stamps: list[int | None],
        out: list[Any],
        out_stamps: list[int | None],
        late: list[Any],
        late_stamps: list[int | None],
    ) -> None:
        """:meth:`_process_element` for event-time windows with the EventTimeTrigger (no
        merging, no evictor), written out: what that trigger would do per element is
        known (FIRE once the watermark passed the window's end, else register a timer at
        it, which only a new window needs: the others have theirs)."""
        assign = self._assigner.assign_windows
        ctx = self._context
        contents_state = self._contents
        watermark = self.current_watermark
        lateness = self._lateness
        kind = self._spec.kind
        function = self._spec.function
        if kind == "reduce":
            reduce = _reduce_fn(function)
        elif kind == "aggregate":
            create = function.create_accumulator
            add = function.add
        tag = self._spec.late_tag
        for record, timestamp in zip(records, stamps, strict=True):
            windows = assign(record, timestamp, ctx)
            contents = contents_state.value()
            if contents is None:
                contents = {}
            skipped = True
            fire: list[tuple[Any, bool]] | None = None
            for window in windows:
                end = window[1] - 1  # max_timestamp() of a TimeWindow (event-time windows)
                if end + lateness <= watermark:
                    continue  # past its cleanup time: late for this window
                skipped = False
                old = contents.get(window)
                if kind == "reduce":
                    contents[window] = record if old is None else reduce(old, record)
                elif kind == "aggregate":
                    contents[window] = add(record, create() if old is None else old)
                elif old is None:
                    contents[window] = [record]
                else:
                    old.append(record)
                if end <= watermark:
                    # A late firing, within the allowed lateness (a new window needs its
                    # cleanup timer too).
                    (fire := fire or []).append((window, old is None))
                elif old is None:
                    self._register_timer("event", end, window)
                    self._register_cleanup(window)
            contents_state.update(contents or None)  # no empty dict left for a late record
            if fire:
                for window, new in fire:
                    ctx.window = window
                    self._emit(window, window, out, out_stamps)
                    if new:
                        self._register_cleanup(window)
            if skipped and timestamp is not None and timestamp + lateness <= watermark:
                if tag is not None:
                    late.append(record)
                    late_stamps.append(timestamp)
                else:
                    self.num_late_records_dropped += 1

    def _process_element(
        self, record: Any, timestamp: int | None, out: list[Any], stamps: list[int | None]
    ) -> bool:
        """Add one record (its key current) to its windows; return False if it was late
        for every window (then it went nowhere)."""
        ctx = self._context
        windows = self._assigner.assign_windows(record, timestamp, ctx)
        trigger = self._trigger
        skipped = True
        if self._merging:
            mapping = self._merging_state.value() or {}  # type: ignore[union-attr]
            merging = MergingWindowSet(self._assigner, mapping)  # type: ignore[arg-type]
            for window in windows:
                actual = merging.add_window(window, self._merge_callback)
                if self._is_window_late(actual):
                    merging.retire_window(actual)
                    continue
                skipped = False
                state_window = merging.get_state_window(actual)
                self._add(state_window, record, timestamp)
                ctx.window = actual
                result = trigger.on_element(record, timestamp, actual, ctx)
                self._act(result, actual, state_window, out, stamps)
                self._register_cleanup(actual)
            self._merging_state.update(mapping or None)  # type: ignore[union-attr]
        else:
            for window in windows:
                if self._is_window_late(window):
                    continue
                skipped = False
                new = self._add(window, record, timestamp)
                ctx.window = window
                if (
                    not new
                    and type(trigger) is EventTimeTrigger
                    and window.max_timestamp() > self.current_watermark
                ):
                    # EventTimeTrigger would register the timer the window already has.
                    continue
                result = trigger.on_element(record, timestamp, window, ctx)
                self._act(result, window, window, out, stamps)
                if new:
                    self._register_cleanup(window)
        return not (skipped and self._is_element_late(timestamp))

    def _is_element_late(self, timestamp: int | None) -> bool:
        return (
            self._event_time
            and timestamp is not None
            and timestamp + self._lateness <= self.current_watermark
        )

    def _merge_callback(
        self, merge_result: Any, merged: list[Any], state_result: Any, merged_states: list[Any]
    ) -> None:
        """Windows ``merged`` became ``merge_result``: merge trigger state and contents,
        drop the merged windows' timers (Flink's WindowOperator merge function)."""
        ctx = self._context
        ctx.window = merge_result
        ctx._merged = merged
        self._trigger.on_merge(merge_result, ctx)
        for window in merged:
            ctx.window = window
            self._trigger.clear(window, ctx)
            self._delete_timer(
                "event" if self._event_time else "processing", self._cleanup_time(window), window
            )
        ctx.window = merge_result
        self._merge_contents(state_result, merged_states)

    def _merge_contents(self, target: Any, sources: list[Any]) -> None:
        contents = self._contents.value()
        if not contents:
            return
        merged = contents.get(target)
        for source in sources:
            if source == target:
                continue
            part = contents.pop(source, None)
            if part is None:
                continue
            merged = part if merged is None else self._combine(merged, part)
        if merged is not None:
            contents[target] = merged
        self._contents.update(contents or None)

    def _combine(self, a: Any, b: Any) -> Any:
        kind = self._spec.kind
        if self._evictor is None and kind == "reduce":
            return _reduce_fn(self._spec.function)(a, b)
        if self._evictor is None and kind == "aggregate":
            return self._spec.function.merge(a, b)
        return [*a, *b]

    def _add(self, window: Any, record: Any, timestamp: int | None) -> bool:
        """Add ``record`` to ``window``'s contents; return whether the window was new."""
        state = self._contents
        contents = state.value()
        if contents is None:
            contents = {}
        old = contents.get(window)
        kind = self._spec.kind
        if self._evictor is not None:
            element: Any = TimestampedValue(record, timestamp)
            contents[window] = [element] if old is None else [*old, element]
        elif kind == "reduce":
            contents[window] = (
                record if old is None else _reduce_fn(self._spec.function)(old, record)
            )
        elif kind == "aggregate":
            function = self._spec.function
            acc = function.create_accumulator() if old is None else old
            contents[window] = function.add(record, acc)
        elif old is None:
            contents[window] = [record]
        else:
            old.append(record)
        state.update(contents)
        return old is None

    def _register_cleanup(self, window: Any) -> None:
        cleanup = self._cleanup_time(window)
        if cleanup == MAX_WATERMARK_TIMESTAMP:
            return  # never cleared (a global window): no timer needed
        self._register_timer("event" if self._event_time else "processing", cleanup, window)

    def _act(
        self,
        result: TriggerResult,
        window: Any,
        state_window: Any,
        out: list[Any],
        stamps: list[int | None],
    ) -> None:
        if result.is_fire():
            self._emit(window, state_window, out, stamps)
        if result.is_purge():
            self._purge(state_window)

    def _purge(self, state_window: Any) -> None:
        contents = self._contents.value()
        if contents and contents.pop(state_window, None) is not None:
            self._contents.update(contents or None)

    def _emit(
        self, window: Any, state_window: Any, out: list[Any], stamps: list[int | None]
    ) -> None:
        """Run the window function over ``state_window``'s contents for ``window``."""
        contents = self._contents.value()
        value = None if contents is None else contents.get(state_window)
        if value is None:
            return  # nothing in the window (Flink fires nothing for empty contents)
        spec = self._spec
        ctx = self._context
        ctx.window = window
        evictor = self._evictor
        if evictor is not None:
            elements = list(value)
            evictor.evict_before(elements, len(elements), window, ctx)
            inputs = [element.value for element in elements]
            if spec.kind == "reduce":
                reduce = _reduce_fn(spec.function)
                acc = inputs[0] if inputs else None
                for item in inputs[1:]:
                    acc = reduce(acc, item)
                inputs = [] if acc is None else [acc]
            elif spec.kind == "aggregate":
                acc = spec.function.create_accumulator()
                for item in inputs:
                    acc = spec.function.add(item, acc)
                inputs = [spec.function.get_result(acc)]
            results = self._call_window_function(window, inputs)
            evictor.evict_after(elements, len(elements), window, ctx)
            contents = self._contents.value() or {}
            if elements:
                contents[state_window] = elements
            else:
                contents.pop(state_window, None)
            self._contents.update(contents or None)
        elif spec.kind == "aggregate":
            results = self._call_window_function(window, [spec.function.get_result(value)])
        elif spec.kind == "reduce":
            results = self._call_window_function(window, [value])
        else:
            results = self._call_window_function(window, list(value))
        if results:
            out.extend(results)
            stamps.extend([window.max_timestamp()] * len(results))

    def _call_window_function(self, window: Any, inputs: list[Any]) -> list[Any]:
        spec = self._spec
        fn = spec.window_function if spec.kind in ("reduce", "aggregate") else spec.function
        if fn is None:
            return inputs
        key = self._backend.get_current_key()
        process = getattr(fn, "process", None)
        if callable(process):
            if spec.all_windows:
                result = process(self._function_context, inputs)
            else:
                result = process(key, self._function_context, inputs)
        else:
            apply = getattr(fn, "apply", fn)
            result = apply(window, inputs) if spec.all_windows else apply(key, window, inputs)
        return [] if result is None else list(result)

    # --- timers firing ---

    async def process_watermark(self, watermark: int) -> Any:
        self.current_watermark = watermark
        queue = self._queues.get("event")
        if queue is None:
            return []
        return self._fire(queue, "event", watermark)

    async def on_processing_time(self, now_ms: int) -> Any:
        queue = self._queues.get("processing")
        if queue is None:
            return []
        out = self._fire(queue, "processing", now_ms)
        self._request_processing_time()
        return out

    def _fire(self, queue: KeyedTimerQueue, domain: str, limit: int) -> TimestampedBatch:
        out: list[Any] = []
        stamps: list[int | None] = []
        state = self._timer_windows[domain]
        ctx = self._context
        trigger = self._trigger
        for timestamp in queue.due(limit):
            timers = state.value() or {}
            windows = timers.pop(timestamp, None) or []
            state.update(timers or None)
            mapping = self._merging_state.value() if self._merging_state is not None else None
            merging = (
                MergingWindowSet(self._assigner, mapping)  # type: ignore[arg-type]
                if mapping is not None
                else None
            )
            for window in windows:
                ctx.window = window
                if merging is not None:
                    state_window = merging.get_state_window(window)
                    if state_window is None:
                        continue  # merged away meanwhile: its timers went with it
                else:
                    state_window = window
                if domain == "event":
                    result = trigger.on_event_time(timestamp, window, ctx)
                else:
                    result = trigger.on_processing_time(timestamp, window, ctx)
                self._act(result, window, state_window, out, stamps)
                if timestamp == self._cleanup_time(window):
                    self._clear_window(window, state_window, merging)
            if merging is not None:
                self._merging_state.update(mapping or None)  # type: ignore[union-attr]
        return TimestampedBatch(out, stamps)

    def _clear_window(self, window: Any, state_window: Any, merging: Any) -> None:
        ctx = self._context
        ctx.window = window
        self._purge(state_window)
        self._trigger.clear(window, ctx)
        self._trigger_states.clear_window(window)
        fn = self._spec.function if self._spec.kind in ("process", "apply") else None
        fn = fn or self._spec.window_function
        clear = getattr(fn, "clear", None)
        if callable(clear):
            # Before the window's state goes: clear(context) is where a function reads and
            # cleans up its window_state() (Flink's ProcessWindowFunction.clear).
            clear(self._function_context)
        self._user_states.clear_window(window)
        if merging is not None:
            merging.retire_window(window)


def _reduce_fn(function: Any) -> Callable[[Any, Any], Any]:
    reduce = getattr(function, "reduce", None)
    return reduce if callable(reduce) else function
