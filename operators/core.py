"""The few primitive operators everything else is built from.

- :class:`BatchTransformOperator`: a stateless (non-keyed) function over a batch; ``map``,
  ``flat_map``, ``filter`` and ``process`` are batch transforms (see :mod:`.derived`).
- :class:`KeyedOperator`: a per-record step on a keyed stream that sets the current key
  before every call, so keyed state is scoped to it; keyed ``process``, ``reduce``, ``sum``,
  ``min``, ``max`` and keyed ``map`` / ``flat_map`` / ``filter`` are built on it.
- :class:`SourceOperator`: the head of a source chain; it keeps the source's splits and
  positions in operator list state, so they rewind and redistribute on restore.
- :class:`SinkWriter` (in :mod:`streamlet.operators.sinks.base`): the tail that writes records out.

(Bytewax's lesson: a small named core, the rest derived from it.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streamlet.state.descriptors import ListStateDescriptor

from .base import Operator, OperatorContext
from .functions import FunctionAdapter, FunctionInitializationContext, RuntimeContext
from .sources.base import Source

__all__ = [
    "BatchTransform",
    "BatchTransformOperator",
    "KeyedOperator",
    "KeyedStep",
    "SourceOperator",
    "UserFunctionOperator",
]

BatchTransform = Callable[[list[Any]], list[Any]] | Callable[[list[Any]], Awaitable[list[Any]]]
"""A function from an input batch to an output batch (sync or async)."""

KeyedStep = Callable[[Any, list[Any]], Any]
"""Called per record with the current key already set: ``step(record, out)`` appends to out."""


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

    :param adapter: the user function (for its lifecycle hooks)
    :param transform: batch in, batch out; sync, or async when the user function is async
    """

    def __init__(self, adapter: FunctionAdapter, transform: BatchTransform, is_async: bool):
        super().__init__(adapter)
        self._transform = transform
        self._is_async = is_async

    async def process_batch(self, batch: list[Any]) -> list[Any]:
        if self._is_async:
            return await self._transform(batch)  # type: ignore[misc]
        return self._transform(batch)  # type: ignore[return-value]


class KeyedOperator(UserFunctionOperator):
    """Sets the current key of the keyed state backend, then runs ``step`` per record.

    :param adapter: the user function (for its lifecycle hooks)
    :param key_selector: record -> key (the same selector the ``key_by`` edge used)
    :param make_step: called in ``open`` with the operator, returns the per-record step
        (sync ``step(record, out)``; or async when ``is_async``); subclasses with a loop
        of their own pass None
    """

    keyed = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        key_selector: Callable[[Any], Any],
        make_step: Callable[[KeyedOperator], KeyedStep] | None = None,
        is_async: bool = False,
    ) -> None:
        super().__init__(adapter)
        self._key_selector = key_selector
        self._make_step = make_step
        self._is_async = is_async

    async def open(self, ctx: OperatorContext) -> None:
        await super().open(ctx)
        if self._make_step is not None:
            self._step = self._make_step(self)

    @property
    def backend(self) -> Any:
        return self.ctx.keyed_backend

    async def process_batch(self, batch: list[Any]) -> list[Any]:
        out: list[Any] = []
        key_of = self._key_selector
        set_key = self.ctx.keyed_backend.set_current_key  # type: ignore[union-attr]
        step = self._step
        if self._is_async:
            for record in batch:
                set_key(key_of(record))
                await step(record, out)
            return out
        for record in batch:
            set_key(key_of(record))
            step(record, out)
        return out


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

    async def process_batch(self, batch: list[Any]) -> list[Any]:
        return batch

    async def snapshot_state(self, checkpoint_id: int) -> None:
        self._state.update([[split, position] for split, position in self.splits])
