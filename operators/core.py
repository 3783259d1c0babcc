"""The few primitive operators everything else is built from.

- :class:`BatchTransformOperator`: a stateless (non-keyed) function over a batch; ``map``,
  ``flat_map``, ``filter`` and ``process`` are batch transforms (see :mod:`.derived`).
- :class:`KeyedBatchOperator`: a function over a batch on a keyed stream, built in ``open``
  from the subtask's keyed state backend and the key selector. Keyed ``process``, ``reduce``,
  ``sum``, ``min``, ``max`` and keyed ``map`` / ``flat_map`` / ``filter`` are keyed batch
  steps: most make each record's key current and call a per-record step
  (:func:`per_record`); keyed ``process`` fuses that loop with its call; ``reduce`` hands
  the batch to the backend (``HeapKeyedStateBackend.reduce_values``).
- :class:`SourceOperator`: the head of a source chain; it keeps the source's splits and
  positions in operator list state, so they rewind and redistribute on restore.
- :class:`SinkWriter` (in :mod:`streamlet.operators.sinks.base`): the tail that writes records out.

(Bytewax's lesson: a small named core, the rest derived from it.) The keyed primitive is per
batch, not per record, because that is where the speed is: a step that owns the loop over the
batch pays per record only the key selector, the key switch and the user's function (keyed
``process``), or hands the whole batch to the state backend (``reduce``), which keeps the
copy-on-write rules of its tables to itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from streamlet.state.descriptors import ListStateDescriptor
from streamlet.state.errors import StreamletInternalError

from .base import Operator, OperatorContext
from .functions import FunctionAdapter, FunctionInitializationContext, RuntimeContext
from .records import TimestampedBatch
from .sources.base import Source

if TYPE_CHECKING:
    from streamlet.state.heap_backend import HeapKeyedStateBackend

__all__ = [
    "BatchTransform",
    "BatchTransformOperator",
    "KeyedBatchOperator",
    "KeyedBatchStepFactory",
    "KeyedStep",
    "SourceOperator",
    "TimedTransform",
    "UserFunctionOperator",
    "per_record",
]

BatchTransform = Callable[[list[Any]], list[Any]] | Callable[[list[Any]], Awaitable[list[Any]]]
"""A function from an input batch to an output batch (sync or async)."""

TimedTransform = Callable[[TimestampedBatch], Any]
"""A batch transform for a TimestampedBatch: returns the output with each output record's
timestamp (the timestamp of the record that emitted it); sync or async like its plain one."""

KeyedBatchStepFactory = Callable[
    ["HeapKeyedStateBackend", Callable[[Any], Any]],
    BatchTransform | tuple[BatchTransform, TimedTransform | None],
]
"""Builds a keyed batch step from the keyed state backend and the key selector (in ``open``):
the step, or the step and its form for TimestampedBatches."""

KeyedStep = Callable[[Any, list[Any]], Any]
"""Called per record with the current key already set: ``step(record, out)`` appends to out
(sync, or a coroutine function for an async user function)."""


class UserFunctionOperator(Operator[Any, Any]):
    """Runs a user function's lifecycle: initialize_state, open, hooks, close."""

    def __init__(self, adapter: FunctionAdapter) -> None:
        self.adapter = adapter

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.runtime_context = RuntimeContext(ctx)
        await self.adapter.initialize_state(
            FunctionInitializationContext(ctx.operator_state, self.runtime_context, ctx.restored)
        )
        await self.adapter.open(self.runtime_context)

    async def snapshot_state(self, checkpoint_id: int) -> None:
        await self.adapter.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self.adapter.notify_checkpoint_complete(checkpoint_id)

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        await self.adapter.notify_checkpoint_aborted(checkpoint_id)

    async def close(self) -> None:
        await self.adapter.close()


class BatchTransformOperator(UserFunctionOperator):
    """Applies ``transform`` to every batch: the stateless primitive.

    A TimestampedBatch goes to ``timed_transform``; without one, record by record through
    ``transform`` (correct for every per-record function: each output takes the timestamp
    of the record that emitted it), which the common operations avoid by giving theirs.

    :param adapter: the user function (for its lifecycle hooks)
    :param transform: batch in, batch out; sync, or async when the user function is async
    :param timed_transform: the same for a TimestampedBatch (sync or async alike)
    """

    accepts_timestamps = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        transform: BatchTransform,
        is_async: bool,
        timed_transform: TimedTransform | None = None,
    ):
        super().__init__(adapter)
        self._transform = transform
        self._is_async = is_async
        self._timed_transform = timed_transform

    async def process_batch(self, batch: Any) -> Any:
        if type(batch) is TimestampedBatch:
            return await self._process_timed(batch)
        if self._is_async:
            return await self._transform(batch)  # type: ignore[misc]
        return self._transform(batch)

    async def _process_timed(self, batch: TimestampedBatch) -> Any:
        timed = self._timed_transform
        if timed is not None:
            out = timed(batch)
            return await out if self._is_async else out
        records: list[Any] = []
        timestamps: list[int | None] = []
        for record, timestamp in zip(batch.records, batch.timestamps, strict=True):
            result = self._transform([record])
            if self._is_async:
                result = await result  # type: ignore[misc]
            records.extend(result)  # type: ignore[arg-type]
            timestamps.extend([timestamp] * len(result))  # type: ignore[arg-type]
        return TimestampedBatch(records, timestamps)


def _not_open(batch: list[Any]) -> list[Any]:
    raise StreamletInternalError("process_batch() was called before open()")


class KeyedBatchOperator(BatchTransformOperator):
    """Runs a keyed batch step over every batch: the keyed primitive.

    A keyed batch step is a batch transform with the subtask's keyed state: ``make_step``
    builds it in :meth:`open`, when the state backend exists (restored, if restoring). The
    step must honour two rules, which is all that scopes keyed state to a key:

    - the state of a record is only read or written under that record's key: the step makes
      the record's key current (``backend.each_record``) before it calls user code for the
      record, as :func:`per_record` does, or it uses a backend method that takes the key
      selector itself (``backend.reduce_values``); both accept the batch as it came, a
      list or a ``KeyedBatch`` that brings keys and key groups;
    - records are processed, and their outputs returned, in input order.

    :param adapter: the user function (for its lifecycle hooks)
    :param key_selector: record -> key (the same selector the ``key_by`` edge used)
    :param make_step: ``make_step(backend, key_selector)`` returns the step: a function, or
        an ``async def`` one (then awaited) when the user function is async
    """

    keyed = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        key_selector: Callable[[Any], Any],
        make_step: KeyedBatchStepFactory,
    ) -> None:
        super().__init__(adapter, _not_open, False)
        self._key_selector = key_selector
        self._make_step = make_step

    async def open(self, ctx: OperatorContext) -> None:
        """Open the user function, then build the step over ``ctx``'s keyed state backend.

        :raises StreamletInternalError: if ``ctx`` has no keyed state backend (the engine
            gives one to every operator whose ``keyed`` is true)
        """
        backend = ctx.keyed_backend
        if backend is None:
            raise StreamletInternalError(
                f"keyed operator {ctx.operator_name!r} was opened without a keyed state backend"
            )
        await super().open(ctx)
        made = self._make_step(backend, self._key_selector)
        step, timed = made if isinstance(made, tuple) else (made, None)
        self._transform = step
        self._timed_transform = timed
        self._is_async = inspect.iscoroutinefunction(step)


def per_record(step_of: Callable[[HeapKeyedStateBackend], KeyedStep]) -> KeyedBatchStepFactory:
    """Return a keyed batch step factory that runs a per-record step with its key current.

    For each record in order: make its key current, then ``step(record, out)``
    (``backend.each_record``, which takes each record's key and key group from the
    batch when the key_by partitioner sent them along). An ``async def`` step is awaited
    one record at a time, so it never sees another record's key. ``step_of(backend)``
    builds the step in ``open``.
    """

    def make_step(
        backend: HeapKeyedStateBackend, key_selector: Callable[[Any], Any]
    ) -> tuple[BatchTransform, TimedTransform]:
        step = step_of(backend)
        each_record = backend.each_record
        if inspect.iscoroutinefunction(step):

            async def async_batch(batch: list[Any]) -> list[Any]:
                out: list[Any] = []
                for record in each_record(batch, key_selector):
                    await step(record, out)
                return out

            async def async_timed(batch: TimestampedBatch) -> TimestampedBatch:
                out: list[Any] = []
                stamps: list[int | None] = []
                records = each_record(batch.records, key_selector)
                for record, timestamp in zip(records, batch.timestamps, strict=True):
                    before = len(out)
                    await step(record, out)
                    stamps.extend([timestamp] * (len(out) - before))
                return TimestampedBatch(out, stamps)

            return async_batch, async_timed

        def sync_batch(batch: list[Any]) -> list[Any]:
            out: list[Any] = []
            for record in each_record(batch, key_selector):
                step(record, out)
            return out

        def sync_timed(batch: TimestampedBatch) -> TimestampedBatch:
            out: list[Any] = []
            stamps: list[int | None] = []
            records = each_record(batch.records, key_selector)
            for record, timestamp in zip(records, batch.timestamps, strict=True):
                before = len(out)
                step(record, out)
                emitted = len(out) - before
                if emitted == 1:
                    stamps.append(timestamp)
                elif emitted:
                    stamps.extend([timestamp] * emitted)
            return TimestampedBatch(out, stamps)

        return sync_batch, sync_timed

    return make_step


class SourceOperator(Operator[Any, Any]):
    """Head of a source chain: passes batches on and checkpoints split positions.

    The engine's source loop feeds it batches read by the readers of ``splits`` and reports
    each split's position after every batch with :meth:`advance`. At a checkpoint the
    positions go into operator list state ``source-splits`` as ``[split, position]`` pairs;
    even-split redistribution then hands splits to the subtasks of a rescaled job.
    """

    def __init__(self, source: Source[Any], initial_splits: list[Any]) -> None:
        self.source = source
        self._initial_splits = initial_splits
        #: [split, position] per split this subtask reads; position None = from the start.
        self.splits: list[list[Any]] = []

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._state = ctx.operator_state.get_list_state(ListStateDescriptor("source-splits"))
        if ctx.restored:
            self.splits = [list(item) for item in self._state.get()]
        else:
            self.splits = [[split, None] for split in self._initial_splits]

    def advance(self, split_index: int, position: Any) -> None:
        self.splits[split_index][1] = position

    accepts_timestamps = True

    async def process_batch(self, batch: Any) -> Any:
        return batch

    async def snapshot_state(self, checkpoint_id: int) -> None:
        self._state.update([[split, position] for split, position in self.splits])
