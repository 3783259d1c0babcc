"""Operator test harnesses: drive one user function by hand, snapshot it, restore it.

Flink's ``KeyedOneInputStreamOperatorTestHarness`` and ``OneInputStreamOperatorTestHarness``
without the job: the harness builds the very operator a ``DataStream`` call would build
(:mod:`streamlet.operators.derived`), with a real
:class:`~streamlet.operators.base.OperatorContext`, a
:class:`~streamlet.state.heap_backend.HeapKeyedStateBackend` over the key groups of the chosen
subtask and an :class:`~streamlet.state.operator_state.OperatorStateBackend`. Records go in by
:meth:`~OperatorTestHarness.process_element`, output is read back with
:meth:`~OperatorTestHarness.extract_output_values`. A snapshot runs the same steps as a checkpoint
(``snapshot_state``, freeze, serialize) and holds the same bytes a checkpoint would store; a
harness built with ``restore=`` loads them as a restored job does, also at another parallelism or
subtask index (keyed state by key group, operator state by even split, union or broadcast).

Lifecycle: ``open`` (or ``async with``), then any number of ``process_element`` /
``snapshot`` / ``notify_checkpoint_complete`` calls, then ``close`` (always runs on
``async with`` exit). The harness uses the function instance it is given, not a copy, so a
test can look at its attributes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self

from streamlet.operators.base import Operator, OperatorContext
from streamlet.operators.broadcast import BROADCAST_METHODS
from streamlet.operators.connected import KeySelectors
from streamlet.operators.functions import RuntimeContext, key_selector_of
from streamlet.operators.operations import OPERATIONS
from streamlet.operators.processing_time import ManualClock, ProcessingTimeService
from streamlet.operators.records import OutputTag, StreamRecord, TimestampedBatch
from streamlet.operators.time import MIN_TIMESTAMP
from streamlet.operators.watermarks import Watermark
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import (
    DEFAULT_MAX_PARALLELISM,
    KeyGroupRange,
    assign_to_key_group,
    check_parallelism,
    key_group_range_for_subtask,
)
from streamlet.state.operator_state import OperatorStateBackend
from streamlet.testing.snapshot import HarnessSnapshot, restore_inputs

__all__ = [
    "HarnessSnapshot",
    "KeyedOperatorTestHarness",
    "KeyedTwoInputOperatorTestHarness",
    "OperatorTestHarness",
    "TwoInputOperatorTestHarness",
    "WindowOperatorTestHarness",
]


#: The operations a harness drives: those of OPERATIONS that call a user function's method
#: per record (map, flat_map, filter, process; and reduce, keyed only).
def _kinds_of(keyed: bool, inputs: int) -> list[str]:
    return [
        api
        for api, op in OPERATIONS.items()
        if op.kind == "operator"
        and op.method is not None
        and op.inputs == inputs
        and (op.keyed_operator if keyed else op.operator) is not None
    ]


_NON_KEYED = _kinds_of(keyed=False, inputs=1)
_KEYED = _kinds_of(keyed=True, inputs=1)
#: The operations of ``connect`` (co_map, co_flat_map, co_process).
_TWO_INPUT = _kinds_of(keyed=False, inputs=2)
_KEYED_TWO_INPUT = _kinds_of(keyed=True, inputs=2)


def _method(kind: str) -> str:
    method = OPERATIONS[kind].method
    assert method is not None
    return method


def _implements(function: Any, kind: str) -> bool:
    """Whether ``function`` has the methods of operation ``kind``: a broadcast function is
    told from an interval join's ProcessJoinFunction (both have ``process_element``) by its
    ``process_broadcast_element``."""
    broadcast = callable(getattr(function, BROADCAST_METHODS[1], None))
    if kind == "broadcast_process" and not broadcast:
        return False
    if kind == "interval_join" and broadcast:
        return False
    return callable(getattr(function, _method(kind), None))


def _choose_kind(function: Any, kind: str | None, kinds: Iterable[str], harness: str) -> str:
    kinds = list(kinds)
    if kind is not None:
        if kind not in kinds:
            raise ValueError(f"{harness}() kind must be one of {kinds}, got {kind!r}")
        return kind
    plain = inspect.isfunction(function) or inspect.isbuiltin(function)
    found = [] if plain else [k for k in kinds if _implements(function, k)]
    if len(found) == 1:
        return found[0]
    methods = ", ".join(f"{_method(k)}()" for k in kinds)
    if found:
        raise TypeError(
            f"{harness}() cannot tell which operation {function!r} is: it has "
            f"{', '.join(_method(k) + '()' for k in found)}; pass kind= (one of {found})"
        )
    raise TypeError(
        f"{harness}() cannot tell which operation {function!r} is (it has none of {methods}); "
        f"pass kind= (one of {kinds}), e.g. kind={kinds[0]!r} for a plain function"
    )


class OperatorTestHarness:
    """Drive one non-keyed function (``map``, ``flat_map``, ``filter``, ``process``) by hand.

    The operation is ``kind``, or else the one method the function object has (``map``,
    ``flat_map``, ``filter``, ``process_element``); a plain function needs ``kind``. Operator
    state (Flink's CheckpointedFunction: ``initialize_state`` / ``snapshot_state``) is
    snapshotted and restored like in a job.

    Example::

        import anyio
        from streamlet import FlatMapFunction
        from streamlet.testing import OperatorTestHarness
        from streamlet.state import ListStateDescriptor

        class Buffer(FlatMapFunction):
            # Emits records in pairs; a pending odd one survives a restore.

            def initialize_state(self, context) -> None:
                store = context.get_operator_state_store()
                self.pending = store.get_list_state(ListStateDescriptor("pending"))

            def snapshot_state(self, context) -> None:
                pass  # the list state is live; nothing to move

            def flat_map(self, value):
                self.pending.add(value)
                if len(self.pending.get()) == 2:
                    pair = tuple(self.pending.get())
                    self.pending.clear()
                    return [pair]
                return []

        async def main() -> None:
            async with OperatorTestHarness(Buffer()) as harness:
                await harness.process_elements([1, 2, 3])
                assert harness.extract_output_values() == [(1, 2)]
                snapshot = await harness.snapshot()
            async with OperatorTestHarness(Buffer(), restore=snapshot) as restored:
                assert await restored.process_element(4) == [(3, 4)]

        anyio.run(main)

    :param function: the user function (an object with the method, or a callable)
    :param kind: ``"map"``, ``"flat_map"``, ``"filter"`` or ``"process"``
    :param parallelism: the operator's parallelism the harness pretends to run at
    :param subtask_index: the subtask the harness is
    :param max_parallelism: the number of key groups
    :param restore: a snapshot, or the snapshots of every old subtask (a missing one counts
        as empty), to restore before ``open``
    :param uid: the operator uid (state is stored under it)
    :param name: the operator name (default: the function's class or function name)
    :raises TypeError: if the operation cannot be told from the function, or ``restore`` is
        not a snapshot or list of them
    :raises ValueError: if ``kind`` is unknown, the parallelism settings are invalid, or
        ``restore`` does not fit (another uid or max parallelism, mixed parallelisms)
    """

    _kinds: ClassVar[Iterable[str]] = _NON_KEYED
    _is_keyed: ClassVar[bool] = False

    def __init__(
        self,
        function: Any,
        *,
        kind: str | None = None,
        parallelism: int = 1,
        subtask_index: int = 0,
        max_parallelism: int = DEFAULT_MAX_PARALLELISM,
        restore: HarnessSnapshot | Sequence[HarnessSnapshot] | None = None,
        uid: str = "harness",
        name: str | None = None,
    ) -> None:
        what = type(self).__name__
        self.kind = _choose_kind(function, kind, self._kinds, what)
        check_parallelism(parallelism, max_parallelism)
        if not isinstance(subtask_index, int) or not 0 <= subtask_index < parallelism:
            raise ValueError(f"subtask_index must be in [0, {parallelism}), got {subtask_index!r}")
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"uid must be a non-empty str, got {uid!r}")
        self.function = function
        self.parallelism = parallelism
        self.subtask_index = subtask_index
        self.max_parallelism = max_parallelism
        self.uid = uid
        self.name = name or getattr(function, "__name__", None) or type(function).__name__
        self._restore = (
            None
            if restore is None
            else restore_inputs(restore, uid, max_parallelism, self._is_keyed)
        )
        self.operator: Operator[Any, Any] = self._build_operator()
        self.operator_state_backend = OperatorStateBackend(uid, subtask_index)
        self._output: list[Any] = []
        self._side: dict[str, list[StreamRecord]] = {}
        #: The harness's processing time: it moves only with :meth:`set_processing_time`.
        self.clock = ManualClock()
        self._processing_time = ProcessingTimeService(self.clock)
        self._opened = False
        self._closed = False
        self._last_checkpoint_id = 0
        self._context: OperatorContext | None = None

    def _build_operator(self) -> Operator[Any, Any]:
        make = OPERATIONS[self.kind].operator
        assert make is not None
        return make(self.function)

    def _keyed_backend(self) -> HeapKeyedStateBackend | None:
        return None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._opened else "not open"
        return (
            f"<{type(self).__name__} {self.kind} {self.name!r} "
            f"({self.subtask_index + 1}/{self.parallelism}), {state}>"
        )

    # --- lifecycle ---

    async def open(self) -> None:
        """Restore the state (if ``restore`` was given), then open the operator.

        If the operator's ``open`` raises, the harness closes it and is closed.

        :raises RuntimeError: if the harness was opened before
        """
        if self._opened or self._closed:
            raise RuntimeError(f"{self!r} was opened before; build a new harness to reopen")
        keyed_backend = self._keyed_backend()
        if self._restore is not None:
            blobs, chunks = self._restore
            self.operator_state_backend.restore(blobs, self.subtask_index, self.parallelism)
            if keyed_backend is not None:
                keyed_backend.restore(chunks)
        self._context = OperatorContext(
            operator_name=self.name,
            operator_uid=self.uid,
            subtask_index=self.subtask_index,
            parallelism=self.parallelism,
            max_parallelism=self.max_parallelism,
            job_name="harness",
            attempt=0,
            operator_state=self.operator_state_backend,
            keyed_backend=keyed_backend,
            restored=self._restore is not None,
            processing_time=self._processing_time,
        )
        self._opened = True
        try:
            await self.operator.open(self._context)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the operator (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._opened:
            await self.operator.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_open(self, what: str) -> None:
        if not self._opened:
            raise RuntimeError(
                f"{what}() needs an open harness; use 'async with harness:' or "
                f"'await harness.open()' first"
            )
        if self._closed:
            raise RuntimeError(f"{what}() on a closed harness; build a new one")

    @property
    def context(self) -> OperatorContext:
        """The operator's context (after ``open``)."""
        self._require_open("context")
        assert self._context is not None
        return self._context

    @property
    def runtime_context(self) -> RuntimeContext:
        """What the function sees as its ``RuntimeContext`` (after ``open``)."""
        return RuntimeContext(self.context)

    # --- records, watermarks, processing time ---

    def _collect(self, out: Any) -> list[Any]:
        """Record what the operator emitted (and its side outputs); return the values."""
        if type(out) is TimestampedBatch:
            values = list(out.records)
            self._output.extend(map(StreamRecord, out.records, out.timestamps))
        else:
            values = list(out or [])
            self._output.extend(StreamRecord(value) for value in values)
        side = self.operator.side_outputs
        if side is not None:
            self.operator.side_outputs = None
            for tag, records in side.items():
                collected = self._side.setdefault(tag, [])
                if type(records) is TimestampedBatch:
                    collected.extend(map(StreamRecord, records.records, records.timestamps))
                else:
                    collected.extend(StreamRecord(value) for value in records)
        return values

    async def process_element(self, value: Any, timestamp: int | None = None) -> list[Any]:
        """Process one record (with ``timestamp``, if given); return the values it emitted
        (the output also collects them, with their timestamps).

        :raises RuntimeError: if the harness is not open
        :raises TypeError: if ``timestamp`` is not an int or None
        """
        return await self._process_one(value, timestamp, "process_element", 0)

    async def process_elements(self, records: Iterable[Any]) -> list[Any]:
        """Process ``records`` (without timestamps) as one batch; return the values they
        emitted (also collected).

        :raises RuntimeError: if the harness is not open
        """
        return await self._process_many(records, "process_elements", 0)

    async def _process_one(
        self, value: Any, timestamp: int | None, what: str, input_index: int
    ) -> list[Any]:
        if timestamp is None:
            return await self._process_many([value], what, input_index)
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be an int of ms or None, got {timestamp!r}")
        self._require_open(what)
        process = self.operator.process_batch2 if input_index else self.operator.process_batch
        return self._collect(await process(TimestampedBatch([value], [timestamp])))

    async def _process_many(self, records: Iterable[Any], what: str, input_index: int) -> list[Any]:
        self._require_open(what)
        batch = list(records)
        if not batch:
            return []
        process = self.operator.process_batch2 if input_index else self.operator.process_batch
        return self._collect(await process(batch))

    async def process_watermark(self, timestamp: int) -> list[Any]:
        """Advance the operator's input watermark to ``timestamp``: event-time timers due
        fire, then the watermark is forwarded (both appear in :meth:`get_output`, in that
        order). A watermark not above the current one is ignored, as in Flink. Returns the
        values the timers emitted.

        :raises RuntimeError: if the harness is not open
        :raises TypeError: if ``timestamp`` is not an int
        """
        self._require_open("process_watermark")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"a watermark must be an int of ms, got {timestamp!r}")
        if timestamp <= self.operator.current_watermark:
            return []
        values = self._collect(await self.operator.process_watermark(timestamp))
        self._output.append(Watermark(timestamp))
        return values

    async def set_processing_time(self, ms: int) -> list[Any]:
        """Move the harness's processing time to ``ms`` (it never goes back): processing-time
        timers due fire. Returns the values they emitted.

        :raises RuntimeError: if the harness is not open
        :raises ValueError: if ``ms`` is before the current processing time
        """
        self._require_open("set_processing_time")
        self.clock.set_time(ms)
        service = self._processing_time
        if self.operator.timed and service.take_due(ms):
            return self._collect(await self.operator.on_processing_time(ms))
        return []

    async def end_input(self) -> list[Any]:
        """Signal the end of the input; return what the operator emitted (also collected).

        :raises RuntimeError: if the harness is not open
        """
        self._require_open("end_input")
        return self._collect(await self.operator.end_input())

    def get_output(self) -> list[Any]:
        """Everything emitted since the start or :meth:`clear_output`, in order: a
        :class:`~streamlet.operators.records.StreamRecord` (value and timestamp) per record
        and a :class:`~streamlet.operators.watermarks.Watermark` per forwarded watermark
        (Flink's harness ``getOutput``)."""
        return list(self._output)

    def get_side_output(self, tag: OutputTag) -> list[StreamRecord]:
        """The records emitted to side output ``tag``, as StreamRecords."""
        if not isinstance(tag, OutputTag):
            raise TypeError(f"get_side_output() needs an OutputTag, got {tag!r}")
        return list(self._side.get(tag.tag_id, []))

    def extract_output_values(self) -> list[Any]:
        """The values of the emitted records, without timestamps and watermarks."""
        return [item.value for item in self._output if type(item) is StreamRecord]

    def clear_output(self) -> None:
        """Forget the output (and side outputs) collected so far."""
        self._output.clear()
        self._side.clear()

    # --- checkpoints ---

    async def snapshot(self, checkpoint_id: int | None = None) -> HarnessSnapshot:
        """Take the state as checkpoint ``checkpoint_id`` would (default: the last id + 1).

        Runs the operator's ``snapshot_state`` hook (the function's ``snapshot_state``),
        freezes and serializes the state backends.

        :raises RuntimeError: if the harness is not open
        :raises ValueError: if ``checkpoint_id`` is not above the previous one
        :raises StateSerializationError: if a state value cannot be serialized
        """
        self._require_open("snapshot")
        if checkpoint_id is None:
            checkpoint_id = self._last_checkpoint_id + 1
        elif not isinstance(checkpoint_id, int) or checkpoint_id <= self._last_checkpoint_id:
            raise ValueError(
                f"checkpoint_id must be an int above the previous one "
                f"({self._last_checkpoint_id}), got {checkpoint_id!r}"
            )
        self._last_checkpoint_id = checkpoint_id
        await self.operator.snapshot_state(checkpoint_id)
        backend = self.context.keyed_backend
        keyed = await backend.snapshot_sync().serialize_all() if backend is not None else {}
        return HarnessSnapshot(
            operator_uid=self.uid,
            subtask_index=self.subtask_index,
            parallelism=self.parallelism,
            max_parallelism=self.max_parallelism,
            checkpoint_id=checkpoint_id,
            operator_state=self.operator_state_backend.snapshot_sync().serialize(),
            keyed_state=keyed,
        )

    async def notify_checkpoint_complete(self, checkpoint_id: int | None = None) -> None:
        """Tell the operator checkpoint ``checkpoint_id`` (default: the last snapshot's)
        completed.

        :raises RuntimeError: if the harness is not open
        """
        self._require_open("notify_checkpoint_complete")
        await self.operator.notify_checkpoint_complete(
            self._last_checkpoint_id if checkpoint_id is None else checkpoint_id
        )

    async def notify_checkpoint_aborted(self, checkpoint_id: int | None = None) -> None:
        """Tell the operator checkpoint ``checkpoint_id`` (default: the last snapshot's)
        was aborted.

        :raises RuntimeError: if the harness is not open
        """
        self._require_open("notify_checkpoint_aborted")
        await self.operator.notify_checkpoint_aborted(
            self._last_checkpoint_id if checkpoint_id is None else checkpoint_id
        )


class KeyedOperatorTestHarness(OperatorTestHarness):
    """Drive one function of a keyed stream by hand, with keyed state scoped per record.

    The operation is ``kind`` (``"process"``, ``"map"``, ``"flat_map"``, ``"filter"``,
    ``"reduce"``), or else the one method the function object has. Before each record the
    current key is set from ``key_selector``, as after ``key_by``. The harness owns the key
    groups of subtask ``subtask_index`` at ``parallelism``; a record whose key belongs to
    another subtask raises :class:`~streamlet.state.errors.StateError` (use :meth:`owns_key`). A
    restore loads only the key groups this subtask owns, so snapshots taken at one
    parallelism restore into harnesses of another.

    Example::

        import anyio
        from streamlet import KeyedProcessFunction
        from streamlet.testing import KeyedOperatorTestHarness
        from streamlet.state import ValueStateDescriptor

        class CountPerKey(KeyedProcessFunction):
            def open(self, runtime_context) -> None:
                self.count = runtime_context.get_state(ValueStateDescriptor("count"))

            def process_element(self, value, ctx):
                n = (self.count.value() or 0) + 1
                self.count.update(n)
                yield (ctx.get_current_key(), n)

        async def main() -> None:
            harness = KeyedOperatorTestHarness(CountPerKey(), key_selector=lambda r: r[0])
            async with harness:
                await harness.process_element(("a", 1))
                await harness.process_elements([("b", 1), ("a", 2)])
                assert harness.extract_output_values() == [("a", 1), ("b", 1), ("a", 2)]
                snapshot = await harness.snapshot()
            restored = KeyedOperatorTestHarness(
                CountPerKey(), key_selector=lambda r: r[0], restore=snapshot
            )
            async with restored:
                assert await restored.process_element(("a", 3)) == [("a", 3)]

        anyio.run(main)

    :param function: the user function (an object with the method, or a callable)
    :param key_selector: record -> key (a callable or a ``KeySelector``)
    :param kind: ``"process"``, ``"map"``, ``"flat_map"``, ``"filter"`` or ``"reduce"``

    The other parameters, and what raises, are as for :class:`OperatorTestHarness`;
    ``key_selector`` raises ``TypeError`` if it is not a synchronous callable or KeySelector.
    """

    _kinds = _KEYED
    _is_keyed = True

    def __init__(
        self,
        function: Any,
        key_selector: Any,
        *,
        kind: str | None = None,
        parallelism: int = 1,
        subtask_index: int = 0,
        max_parallelism: int = DEFAULT_MAX_PARALLELISM,
        restore: HarnessSnapshot | Sequence[HarnessSnapshot] | None = None,
        uid: str = "harness",
        name: str | None = None,
    ) -> None:
        self.key_selector = key_selector_of(key_selector)
        super().__init__(
            function,
            kind=kind,
            parallelism=parallelism,
            subtask_index=subtask_index,
            max_parallelism=max_parallelism,
            restore=restore,
            uid=uid,
            name=name,
        )
        self.key_group_range: KeyGroupRange = key_group_range_for_subtask(
            subtask_index, parallelism, max_parallelism
        )
        # State time-to-live runs on the harness's processing time (set_processing_time).
        self.keyed_state_backend = HeapKeyedStateBackend(
            uid, self.key_group_range, max_parallelism, ttl_time_provider=self.clock.now_ms
        )

    def _build_operator(self) -> Operator[Any, Any]:
        make = OPERATIONS[self.kind].keyed_operator
        assert make is not None
        return make(self.function, self.key_selector)

    def _keyed_backend(self) -> HeapKeyedStateBackend | None:
        return self.keyed_state_backend

    def owns_key(self, key: Any) -> bool:
        """Return whether records of ``key`` belong to this harness's subtask.

        :raises TypeError: if ``key`` has no stable hash
        """
        return assign_to_key_group(key, self.max_parallelism) in self.key_group_range


class WindowOperatorTestHarness(KeyedOperatorTestHarness):
    """Drive a window operator by hand: ``key_by(key_selector).window(assigner)`` with a
    window function, as a job would build it.

    The verbs are those of :class:`KeyedOperatorTestHarness`: records in with
    ``process_element(value, timestamp)``, windows fire on ``process_watermark(ts)`` (event
    time) or ``set_processing_time(ms)``, ``get_output()`` lists what fired (each result
    with its window's ``max_timestamp()``), ``get_side_output(tag)`` the late data, and
    ``snapshot()`` / ``restore=`` carry open windows, their trigger state and timers, at any
    parallelism.

    Example::

        import anyio
        from streamlet import TumblingEventTimeWindows
        from streamlet.testing import WindowOperatorTestHarness

        async def main() -> None:
            harness = WindowOperatorTestHarness(
                TumblingEventTimeWindows.of(10), lambda a, b: a + b, key_selector=lambda v: "k",
                kind="reduce",
            )
            async with harness:
                await harness.process_element(1, timestamp=3)
                await harness.process_element(2, timestamp=7)
                assert await harness.process_watermark(9) == [3]

        anyio.run(main)

    :param assigner: the WindowAssigner
    :param function: the reduce function, AggregateFunction, ProcessWindowFunction or
        WindowFunction
    :param key_selector: record -> key
    :param kind: ``"reduce"``, ``"aggregate"``, ``"process"`` or ``"apply"`` (default: told
        from ``function``'s methods)
    :param trigger, evictor, allowed_lateness, late_data, window_function: as the
        WindowedStream methods of those names (``late_data`` is an OutputTag)

    The other parameters are those of :class:`OperatorTestHarness`.
    """

    _kinds = ["reduce", "aggregate", "process", "apply"]

    def __init__(
        self,
        assigner: Any,
        function: Any,
        key_selector: Any,
        *,
        kind: str | None = None,
        trigger: Any = None,
        evictor: Any = None,
        allowed_lateness: Any = 0,
        late_data: OutputTag | None = None,
        window_function: Any = None,
        parallelism: int = 1,
        subtask_index: int = 0,
        max_parallelism: int = DEFAULT_MAX_PARALLELISM,
        restore: HarnessSnapshot | Sequence[HarnessSnapshot] | None = None,
        uid: str = "harness",
        name: str | None = None,
    ) -> None:
        from streamlet.operators.time import to_millis
        from streamlet.operators.windowing.operator import WindowSpec

        if kind is None:
            if callable(getattr(function, "create_accumulator", None)):
                kind = "aggregate"
            elif callable(getattr(function, "process", None)):
                kind = "process"
            elif callable(getattr(function, "apply", None)):
                kind = "apply"
            else:
                kind = "reduce"
        self._spec = WindowSpec(
            assigner=assigner,
            trigger=trigger,
            evictor=evictor,
            allowed_lateness=to_millis(allowed_lateness, "allowed_lateness"),
            late_tag=None if late_data is None else late_data.tag_id,
            kind=kind,
            function=function,
            window_function=window_function,
        )
        super().__init__(
            function,
            key_selector,
            kind=kind,
            parallelism=parallelism,
            subtask_index=subtask_index,
            max_parallelism=max_parallelism,
            restore=restore,
            uid=uid,
            name=name or type(assigner).__name__,
        )

    def _build_operator(self) -> Operator[Any, Any]:
        from streamlet.operators.windowing.operator import WindowOperator

        return WindowOperator(self._spec, self.key_selector)


class _TwoInputVerbs:
    """The verbs of a two-input harness (Flink's ``TwoInputStreamOperatorTestHarness``):
    records and watermarks per input. The operator's watermark is the minimum of the two
    inputs' (each starts at ``-2**63``), as in a job."""

    _watermarks: list[int]
    _process_one: Any
    _process_many: Any
    process_watermark: Any

    def _init_inputs(self) -> None:
        self._watermarks = [MIN_TIMESTAMP, MIN_TIMESTAMP]

    async def process_element1(self, value: Any, timestamp: int | None = None) -> list[Any]:
        """Process one record of the first input (see :meth:`process_element`)."""
        return await self._process_one(value, timestamp, "process_element1", 0)

    async def process_element2(self, value: Any, timestamp: int | None = None) -> list[Any]:
        """Process one record of the second input (see :meth:`process_element`)."""
        return await self._process_one(value, timestamp, "process_element2", 1)

    async def process_elements1(self, records: Iterable[Any]) -> list[Any]:
        """Process ``records`` of the first input as one batch."""
        return await self._process_many(records, "process_elements1", 0)

    async def process_elements2(self, records: Iterable[Any]) -> list[Any]:
        """Process ``records`` of the second input as one batch."""
        return await self._process_many(records, "process_elements2", 1)

    async def process_watermark1(self, timestamp: int) -> list[Any]:
        """The first input's watermark is ``timestamp``; the operator's advances to the
        minimum of both inputs' (timers due fire). Returns what they emitted."""
        return await self._input_watermark(0, timestamp)

    async def process_watermark2(self, timestamp: int) -> list[Any]:
        """The second input's watermark is ``timestamp`` (see :meth:`process_watermark1`)."""
        return await self._input_watermark(1, timestamp)

    async def _input_watermark(self, input_index: int, timestamp: int) -> list[Any]:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"a watermark must be an int of ms, got {timestamp!r}")
        watermarks = self._watermarks
        watermarks[input_index] = max(watermarks[input_index], timestamp)
        result: list[Any] = await self.process_watermark(min(watermarks))
        return result


class TwoInputOperatorTestHarness(_TwoInputVerbs, OperatorTestHarness):
    """Drives the operator of ``a.connect(b).map / flat_map / process`` on non-keyed
    streams: ``process_element1`` / ``process_element2`` feed each input.

    Example::

        harness = TwoInputOperatorTestHarness(MyCoMap())
        async with harness:
            await harness.process_element1("left")
            await harness.process_element2(42)
            assert harness.extract_output_values() == [...]

    ``process_element`` / ``process_watermark`` are the first input's and the operator's
    (both inputs at once). The parameters are :class:`OperatorTestHarness`'s, and for a
    BroadcastProcessFunction (kind ``"broadcast_process"``: the events are the first
    input, the broadcast elements the second) ``broadcast_state_descriptors``, the
    MapStateDescriptors a job passes to ``broadcast(...)``.
    """

    _kinds = _TWO_INPUT

    def __init__(
        self,
        function: Any,
        *,
        broadcast_state_descriptors: Sequence[Any] = (),
        **settings: Any,
    ) -> None:
        self.broadcast_state_descriptors = tuple(broadcast_state_descriptors)
        super().__init__(function, **settings)
        self._init_inputs()

    def _build_operator(self) -> Operator[Any, Any]:
        make = OPERATIONS[self.kind].operator
        assert make is not None
        return make(self.function, *_broadcast_args(self.kind, self.broadcast_state_descriptors))


class KeyedTwoInputOperatorTestHarness(_TwoInputVerbs, KeyedOperatorTestHarness):
    """Drives the operator of ``a.key_by(k1).connect(b.key_by(k2))``'s ``map`` /
    ``flat_map`` / ``process`` (a KeyedCoProcessFunction: keyed state shared by both
    inputs, timers), keying the first input's records by ``key_selector1`` and the
    second's by ``key_selector2``; or an interval join (a ProcessJoinFunction,
    ``kind="interval_join"``, ``args=(IntervalJoinSpec(lower, upper),)``: ``args`` are
    the operation's arguments after the function and key selectors). Other parameters are
    :class:`KeyedOperatorTestHarness`'s.

    For a KeyedBroadcastProcessFunction (kind ``"broadcast_process"``) the first input is
    the keyed events, the second the broadcast elements, which have no key: leave out
    ``key_selector2`` and give ``broadcast_state_descriptors`` (as to ``broadcast(...)``).
    """

    _kinds = _KEYED_TWO_INPUT

    def __init__(
        self,
        function: Any,
        key_selector1: Any,
        key_selector2: Any = None,
        *,
        broadcast_state_descriptors: Sequence[Any] = (),
        args: tuple[Any, ...] = (),
        **settings: Any,
    ) -> None:
        self.key_selector2 = None if key_selector2 is None else key_selector_of(key_selector2)
        self.broadcast_state_descriptors = tuple(broadcast_state_descriptors)
        self.args = tuple(args)
        if settings.get("kind") == "interval_join" and not self.args:
            raise ValueError(
                "an interval join needs its bounds: pass args=(IntervalJoinSpec(lower, "
                "upper),) (from streamlet.operators.joins)"
            )
        super().__init__(function, key_selector1, **settings)
        self._init_inputs()

    def _build_operator(self) -> Operator[Any, Any]:
        make = OPERATIONS[self.kind].keyed_operator
        assert make is not None
        if self.kind == "broadcast_process":
            if self.key_selector2 is not None:
                raise TypeError(
                    "KeyedTwoInputOperatorTestHarness() of a broadcast function takes no "
                    "key_selector2: broadcast elements have no key; leave it out"
                )
            args = _broadcast_args(self.kind, self.broadcast_state_descriptors)
            return make(self.function, self.key_selector, *args)
        if self.key_selector2 is None:
            raise TypeError(
                f"KeyedTwoInputOperatorTestHarness() of kind {self.kind!r} needs key_selector2, "
                f"the second input's key selector"
            )
        _broadcast_args(self.kind, self.broadcast_state_descriptors)
        return make(self.function, KeySelectors(self.key_selector, self.key_selector2), *self.args)


def _broadcast_args(kind: str, descriptors: tuple[Any, ...]) -> tuple[Any, ...]:
    """The operator arguments of a two-input harness's ``kind``: the broadcast state
    descriptors for ``broadcast_process``, nothing else for the others.

    :raises ValueError: if descriptors are missing for, or given to something else than,
        a broadcast function
    """
    if kind != "broadcast_process":
        if descriptors:
            raise ValueError(
                f"broadcast_state_descriptors are for broadcast functions (kind "
                f"'broadcast_process'), not for kind {kind!r}"
            )
        return ()
    if not descriptors:
        raise ValueError(
            "a broadcast function's harness needs broadcast_state_descriptors=[...], the "
            "MapStateDescriptors a job passes to broadcast(...)"
        )
    return (descriptors,)
