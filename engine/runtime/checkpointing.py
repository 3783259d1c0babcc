"""The engine's side of checkpointing: barriers in the subtask loop, snapshots, acks.

A :class:`SubtaskCheckpointer` gives one subtask its checkpoint duties:

- a source subtask gets ``trigger`` messages in its mailbox (from the coordinator through
  :class:`MailboxGateway`) and takes its snapshot between two emitted batches;
- every other subtask feeds barriers, cancel markers and end-of-partition events to its
  barrier handler (the aligner for EXACTLY_ONCE, the tracker for AT_LEAST_ONCE) and applies
  the returned action: block or unblock channels, decline and cancel downstream, snapshot;
- a snapshot runs every operator's ``snapshot_state`` hook, freezes the state backends (the
  short synchronous part), forwards the barrier, and leaves serializing and writing to a task
  of the subtask's own (the asynchronous part), which acknowledges or declines to the
  coordinator when done. Records keep flowing meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from streamlet.checkpoints.barriers import Action, BarrierHandler
from streamlet.checkpoints.coordinator import CheckpointCoordinator
from streamlet.checkpoints.errors import CheckpointFailureReason
from streamlet.checkpoints.events import CancelCheckpointMarker, CheckpointBarrier
from streamlet.checkpoints.pending import TaskId
from streamlet.checkpoints.snapshotter import OperatorSnapshot, write_subtask_snapshot
from streamlet.checkpoints.stats import SubtaskCheckpointStats
from streamlet.operators.core import SourceOperator

if TYPE_CHECKING:
    from streamlet.runtime.subtask import Subtask

__all__ = ["MailboxGateway", "SubtaskCheckpointer"]

#: Work the synchronous part spends serializing key groups before the asynchronous part.
_SERIALIZE_AHEAD_S = 0.001

logger = logging.getLogger("streamlet.checkpoints")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class SubtaskCheckpointer:
    """Checkpoint duties of one subtask (see the module docstring).

    :param subtask: the subtask it serves
    :param task_id: the coordinator's id of the subtask, ``(head operator uid, subtask index)``
    :param coordinator: where acknowledgements and declines go
    :param handler: the barrier handler, or None for a source subtask (no input channels)
    :param max_parallelism: recorded in every state file
    """

    def __init__(
        self,
        subtask: Subtask,
        task_id: TaskId,
        coordinator: CheckpointCoordinator,
        handler: BarrierHandler | None,
        max_parallelism: int,
    ) -> None:
        self.subtask = subtask
        self.task_id = task_id
        self.coordinator = coordinator
        self.handler = handler
        self.max_parallelism = max_parallelism
        self.task_group: anyio.abc.TaskGroup | None = None
        #: Source positions at each checkpoint still pending, to tell readers on completion.
        self._positions: dict[int, list[Any]] = {}
        #: Cancel scope of each checkpoint's asynchronous part still running.
        self._writes: dict[int, anyio.CancelScope] = {}
        self._start_delay_ms: dict[int, float] = {}
        #: Whether a finished source waits for a final checkpoint (periodic checkpoints on).
        self.awaits_final_checkpoint = False
        #: Set when the final checkpoint after the end of input completed.
        self.final_checkpoint_done = False
        self.final_checkpoint_id: int | None = None

    # --- input events (non-source subtasks) ---

    async def on_barrier(self, channel: int, barrier: CheckpointBarrier) -> None:
        assert self.handler is not None
        await self._apply(self.handler.on_barrier(channel, barrier), barrier)

    async def on_cancel_marker(self, channel: int, marker: CancelCheckpointMarker) -> None:
        assert self.handler is not None
        await self._apply(self.handler.on_cancel_marker(channel, marker), None)

    async def on_end_of_partition(self, channel: int) -> None:
        assert self.handler is not None
        await self._apply(self.handler.on_end_of_partition(channel), None)

    async def _apply(self, action: Action, barrier: CheckpointBarrier | None) -> None:
        gate = self.subtask.gate
        assert gate is not None
        if action.alignment_started is not None and barrier is not None:
            self._start_delay_ms[action.alignment_started] = max(
                0.0, _wall_ms() - barrier.timestamp_ms
            )
        for checkpoint_id, reason in action.abort:
            await self.decline(checkpoint_id, reason, "aborted while aligning barriers")
            for writer in self.subtask.writers:
                await writer.emit_event(CancelCheckpointMarker(checkpoint_id))
        if action.trigger is not None:
            await self.snapshot(action.trigger, action.alignment_duration_ms or 0.0)
        for channel in action.block:
            gate.block(channel)
        for channel in action.unblock:
            gate.unblock(channel)

    # --- source trigger (mailbox) ---

    async def on_trigger(self, barrier: CheckpointBarrier) -> None:
        """The coordinator asked this source subtask to start checkpoint ``barrier``."""
        self._start_delay_ms[barrier.checkpoint_id] = max(0.0, _wall_ms() - barrier.timestamp_ms)
        await self.snapshot(barrier, 0.0)

    # --- the snapshot ---

    async def snapshot(self, barrier: CheckpointBarrier, alignment_ms: float) -> None:
        """Take the synchronous part, forward the barrier, start the asynchronous part."""
        checkpoint_id = barrier.checkpoint_id
        subtask = self.subtask
        started = time.monotonic()
        for chained in subtask.operators:
            await chained.call(partial(chained.op.snapshot_state, checkpoint_id))
        snapshots: list[OperatorSnapshot] = []
        for chained in subtask.operators:
            ctx = chained.ctx
            keyed = ctx.keyed_backend.snapshot_sync() if ctx.keyed_backend is not None else None
            operator_state = None
            if ctx.operator_state.has_state():
                operator_state = ctx.operator_state.snapshot_sync()
            if keyed is None and operator_state is None:
                continue
            snapshots.append(OperatorSnapshot(ctx.operator_uid, keyed, operator_state))
        root = subtask.root.op
        if isinstance(root, SourceOperator):
            self._positions[checkpoint_id] = [position for _, position in root.splits]
        sync_ms = (time.monotonic() - started) * 1000
        for writer in subtask.writers:
            await writer.emit_event(barrier)
        _serialize_ahead(snapshots, _SERIALIZE_AHEAD_S)
        stats = SubtaskCheckpointStats(
            operator=subtask.chain_name,
            subtask_index=subtask.index,
            sync_duration_ms=sync_ms,
            alignment_duration_ms=alignment_ms,
            start_delay_ms=self._start_delay_ms.pop(checkpoint_id, 0.0),
        )
        assert self.task_group is not None
        self.task_group.start_soon(self._write_and_ack, checkpoint_id, snapshots, stats)

    async def _write_and_ack(
        self,
        checkpoint_id: int,
        snapshots: list[OperatorSnapshot],
        stats: SubtaskCheckpointStats,
    ) -> None:
        """The asynchronous part: serialize and write, then acknowledge or decline.

        It runs in its own cancel scope, so an abort of the checkpoint (or its subsumption
        by a newer completed one) stops it and the snapshotter removes what it wrote.
        """
        subtask = self.subtask
        with anyio.CancelScope() as scope:
            self._writes[checkpoint_id] = scope
            try:
                result = await write_subtask_snapshot(
                    self.coordinator.storage,
                    checkpoint_id,
                    subtask.index,
                    subtask.parallelism,
                    self.max_parallelism,
                    snapshots,
                )
            finally:
                del self._writes[checkpoint_id]
                for snapshot in snapshots:
                    # Serialized key groups are released already; this releases the rest
                    # of an aborted or failed snapshot, so the backend stops recording.
                    if snapshot.keyed is not None:
                        snapshot.keyed.release()  # type: ignore[attr-defined]
                snapshots.clear()
            if result.ok:
                stats = replace(
                    stats,
                    async_duration_ms=result.async_duration_ms,
                    state_size=result.state_size,
                )
                await self.coordinator.receive_acknowledge(
                    self.task_id, checkpoint_id, result.handles, stats
                )
            else:
                assert result.failure is not None
                await self.decline(checkpoint_id, result.failure, result.detail)
        if scope.cancelled_caught:
            # The checkpoint was aborted meanwhile. Saying so lets the coordinator discard
            # its directory once more: this write may have recreated it after the abort.
            await self.decline(
                checkpoint_id,
                CheckpointFailureReason.CHECKPOINT_DECLINED,
                "the checkpoint was aborted while this subtask was writing it",
            )

    def _cancel_writes(self, up_to: int, *, inclusive: bool = True) -> None:
        for checkpoint_id, scope in list(self._writes.items()):
            if checkpoint_id < up_to or (inclusive and checkpoint_id == up_to):
                scope.cancel()

    async def decline(
        self, checkpoint_id: int, reason: CheckpointFailureReason, detail: str | None
    ) -> None:
        self._positions.pop(checkpoint_id, None)
        await self.coordinator.receive_decline(self.task_id, checkpoint_id, reason, detail)

    # --- notifications (mailbox) ---

    async def notify_complete(self, checkpoint_id: int) -> None:
        subtask = self.subtask
        # Subsumed checkpoints still writing are aborted by this completion.
        self._cancel_writes(checkpoint_id, inclusive=False)
        for chained in subtask.operators:
            await chained.call(partial(chained.op.notify_checkpoint_complete, checkpoint_id))
        # Subsuming contract: completion of n covers every pending id <= n.
        done = [cid for cid in self._positions if cid <= checkpoint_id]
        positions = self._positions.get(checkpoint_id)
        for cid in done:
            del self._positions[cid]
        if positions is not None:
            for reader, position in zip(subtask.readers, positions, strict=False):
                await subtask.root.call(
                    partial(reader.notify_checkpoint_complete, checkpoint_id, position)
                )
        if self.final_checkpoint_id is not None and checkpoint_id >= self.final_checkpoint_id:
            self.final_checkpoint_done = True

    async def notify_aborted(self, checkpoint_id: int) -> None:
        self._positions.pop(checkpoint_id, None)
        scope = self._writes.get(checkpoint_id)
        if scope is not None:
            scope.cancel()
        for chained in self.subtask.operators:
            await chained.call(partial(chained.op.notify_checkpoint_aborted, checkpoint_id))


def _serialize_ahead(snapshots: list[OperatorSnapshot], budget_s: float) -> None:
    """Serialize key groups now, for up to ``budget_s``; the asynchronous part does the rest.

    Until its key group is serialized, every access to a key takes the copy-on-write path,
    and the asynchronous part first runs one loop round later, after every subtask had its
    turn. Small state (a thousand keys) is serialized here at once, so records never see
    it pending; a failure to serialize is left for the asynchronous part to report.
    """
    deadline = time.monotonic() + budget_s
    for snapshot in snapshots:
        keyed = snapshot.keyed
        if keyed is None:
            continue
        try:
            for key_group in keyed.key_groups():
                if time.monotonic() >= deadline:
                    return
                keyed.serialize_key_group(key_group)
        except Exception:
            return


class MailboxGateway:
    """The coordinator's door to the subtasks: every call posts to subtask mailboxes."""

    def __init__(self) -> None:
        self.subtasks: dict[TaskId, Subtask] = {}

    def trigger_checkpoint(self, task: TaskId, barrier: CheckpointBarrier) -> None:
        subtask = self.subtasks.get(task)
        if subtask is not None and subtask.checkpointer is not None:
            subtask.post(partial(subtask.checkpointer.on_trigger, barrier))

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for subtask in self.subtasks.values():
            if subtask.checkpointer is not None:
                subtask.post(partial(subtask.checkpointer.notify_complete, checkpoint_id))

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        for subtask in self.subtasks.values():
            if subtask.checkpointer is not None:
                subtask.post(partial(subtask.checkpointer.notify_aborted, checkpoint_id))
