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

The seam (Flink's ``SubtaskCheckpointCoordinator`` gets an ``OperatorChain`` the same way):
the checkpointer sees the subtask only through two small Protocols defined here,
:class:`CheckpointedChain` (snapshot, notify complete / aborted, emit an event downstream)
and :class:`BlockableInput` (block / unblock an input channel), and the final checkpoint of
the job (FLIP-147) is one object,
:class:`~streamlet.runtime.final_checkpoint.FinalCheckpoint`. It never reads a subtask's
attributes, so this module does not import the subtask loop.

How the next features pass through the seam, without new back-doors:

- *watermarks* are records-like events of the subtask loop, not of checkpointing: the
  loop's watermark valve (a pure state machine beside the barrier handler) never calls
  this module, and a watermark leaves the chain on the same path as a barrier does here,
  :meth:`CheckpointedChain.emit_event`;
- *timers* are operator state: an operator's timer queue is snapshotted by its own
  ``snapshot_state`` / the keyed backend's sync part, i.e. inside
  :meth:`CheckpointedChain.snapshot_operators`, and is restored by deploy like any state;
- *unaligned checkpoints* (issue 17): :class:`BlockableInput` records the buffers a
  channel delivers before its barrier (``record`` / ``take_recorded``), and
  :class:`CheckpointedChain` sends a barrier ahead of the queued output
  (``emit_barrier_unaligned``), handing back what it overtook; the checkpointer stores both
  as channel state in the head operator's state file once the last barrier arrived. The
  unaligned barrier handler decides *when* (its :class:`Action`), and its alignment timer
  comes back through the subtask's mailbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

import anyio
import orjson

from streamlet.checkpoints.barriers import Action, BarrierHandler
from streamlet.checkpoints.channel_state import CHANNEL_STATE_KEY, CHANNEL_STATE_VERSION
from streamlet.checkpoints.coordinator import CheckpointCoordinator
from streamlet.checkpoints.errors import CheckpointFailureReason
from streamlet.checkpoints.events import CancelCheckpointMarker, CheckpointBarrier, CheckpointKind
from streamlet.checkpoints.metadata import StatePiece
from streamlet.checkpoints.pending import TaskId
from streamlet.checkpoints.snapshotter import OperatorSnapshot, write_subtask_snapshot
from streamlet.checkpoints.stats import SubtaskCheckpointStats
from streamlet.runtime.channel_state import encode_buffer
from streamlet.runtime.final_checkpoint import FinalCheckpoint

__all__ = [
    "BlockableInput",
    "CheckpointedChain",
    "Mailbox",
    "MailboxGateway",
    "SubtaskCheckpointer",
]

#: Work the synchronous part spends serializing key groups before the asynchronous part.
_SERIALIZE_AHEAD_S = 0.001
#: Work between two yields while the asynchronous part encodes channel state.
_YIELD_EVERY_S = 0.002
#: Incremental checkpoints: a new base (materialization) once the chain since the last one
#: holds this many change pieces, or change pieces of as many bytes as the base (a restore
#: then reads at most about twice the state), whichever comes first.
MAX_CHANGE_PIECES = 100
MAX_CHANGE_BYTES_RATIO = 1.0

logger = logging.getLogger("streamlet.checkpoints")


def _wall_ms() -> int:
    return int(time.time() * 1000)


# --- The seam: what the checkpointer sees of a subtask ---


class CheckpointedChain(Protocol):
    """The checkpointer's view of one subtask's operator chain (Flink's ``OperatorChain``).

    Every call runs the chain's operators in chain order and wraps a failure of user code
    with the operator's identity (a ``JobExecutionError``), as the subtask loop does.
    """

    @property
    def chain_name(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def parallelism(self) -> int: ...

    async def snapshot_operators(
        self, checkpoint_id: int, incremental: Collection[str] = ()
    ) -> list[OperatorSnapshot]:
        """Run every operator's ``snapshot_state`` hook, then freeze its state backends.

        This is the short synchronous part: the returned snapshots are copy-on-write views
        the asynchronous part serializes while records keep flowing. The keyed state of the
        operators whose uid is in ``incremental`` is frozen as its changes since the last
        confirmed snapshot (each snapshot's ``confirm`` confirms it).
        """
        ...

    def source_positions(self) -> list[Any] | None:
        """Return the position of each split of a source chain (None for other chains)."""
        ...

    async def emit_event(self, event: Any) -> None:
        """Send ``event`` (a barrier, a cancel marker) on every output channel of the chain.

        Output buffered before it is sent first: an event never overtakes records.
        """
        ...

    async def emit_barrier_unaligned(
        self, barrier: CheckpointBarrier
    ) -> list[tuple[Any, list[Any]]]:
        """Send ``barrier`` ahead of the queued output on every edge that allows it (FIFO on
        the others); return ``(channel, buffers it overtook)`` per channel."""
        ...

    async def notify_checkpoint_complete(
        self, checkpoint_id: int, positions: list[Any] | None
    ) -> None:
        """Tell every operator, then (``positions`` given) every source reader."""
        ...

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None: ...


class BlockableInput(Protocol):
    """The checkpointer's view of a subtask's input: block and unblock channels.

    A blocked channel hands out nothing until unblocked; records of the other channels keep
    flowing (barrier alignment). :class:`~streamlet.runtime.channels.InputGate` is one.
    """

    def block(self, channel: int) -> None: ...

    def unblock(self, channel: int) -> None: ...

    def record(self, channel: int, encode: Callable[[Any], Any]) -> None:
        """Keep every data buffer the channel delivers from now on, as ``encode(buffer)``."""
        ...

    def take_recorded(self, channel: int) -> list[Any]:
        """Stop recording the channel and return what it delivered meanwhile."""
        ...

    @property
    def channels(self) -> list[Any]:
        """The channels, by index (channel state names their edge and subtasks)."""
        ...


class Mailbox(Protocol):
    """Where the coordinator's messages to a subtask go: run between two batches."""

    #: Whether the subtask still runs, and so still runs what is posted to it.
    running: bool

    def post(self, action: Callable[[], Awaitable[None]]) -> None: ...


class SubtaskCheckpointer:
    """Checkpoint duties of one subtask (see the module docstring).

    :param chain: the subtask's operator chain, as the checkpointer sees it
    :param input: the subtask's input channels, or None for a coordinator-triggered subtask
    :param task_id: the coordinator's id of the subtask, ``(head operator uid, subtask index)``
    :param coordinator: where acknowledgements and declines go
    :param handler: the barrier handler, or None for a coordinator-triggered subtask
    :param max_parallelism: recorded in every state file
    :param final: the attempt's final checkpoint, or None (tests that never finish input)
    """

    def __init__(
        self,
        chain: CheckpointedChain,
        input: BlockableInput | None,
        task_id: TaskId,
        coordinator: CheckpointCoordinator,
        handler: BarrierHandler | None,
        max_parallelism: int,
        *,
        final: FinalCheckpoint | None = None,
        post: Callable[[Callable[[], Awaitable[None]]], None] | None = None,
        unaligned_sources: bool = False,
    ) -> None:
        self.chain = chain
        self.input = input
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
        self.final = final
        #: Runs a callable in the subtask between two batches (the alignment timer's way in).
        self.post = post
        #: Whether a source's barrier overtakes its output (unaligned, timeout 0).
        self.unaligned_sources = unaligned_sources
        #: Channel state of each unaligned checkpoint still being taken or written.
        self._inflight: dict[int, _InFlight] = {}
        #: The checkpoint whose input channels are being recorded, if any.
        self._recording: int | None = None
        self._timers: dict[int, anyio.CancelScope] = {}
        #: id -> (buffer, its encoding) of the output buffers the last checkpoint kept.
        self._encoded: dict[int, tuple[Any, bytes]] = {}
        #: Incremental checkpoints: per operator uid, the shared pieces of the last
        #: completed checkpoint (the base the next one extends), and those of each
        #: checkpoint acknowledged and not completed yet, with what confirms them.
        self._confirmed_pieces: dict[str, tuple[StatePiece, ...]] = {}
        self._acked_pieces: dict[
            int, tuple[dict[str, tuple[StatePiece, ...]], list[Callable[[int], None]]]
        ] = {}

    # --- end of input (coordinator-triggered subtasks) ---

    @property
    def awaits_final_checkpoint(self) -> bool:
        """Whether this subtask, once its input ended, waits for the final checkpoint."""
        return self.final is not None and self.final.waits(self.task_id)

    def on_end_of_input(self) -> None:
        """This subtask read all its input (and flushed it); it waits to be released."""
        assert self.final is not None
        self.final.on_end_of_input(self.task_id)

    @property
    def released(self) -> bool:
        """Whether the final checkpoint reached this subtask, so it may end."""
        return self.final is not None and self.final.is_released(self.task_id)

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
        gate = self.input
        assert gate is not None
        if action.alignment_started is not None and barrier is not None:
            self._start_delay_ms[action.alignment_started] = max(
                0.0, _wall_ms() - barrier.timestamp_ms
            )
        for checkpoint_id, reason in action.abort:
            self._drop_inflight(checkpoint_id)
            await self.decline(checkpoint_id, reason, "aborted while aligning barriers")
            await self.chain.emit_event(CancelCheckpointMarker(checkpoint_id))
        if action.trigger is not None:
            await self.snapshot(
                action.trigger,
                action.alignment_duration_ms or 0.0,
                unaligned=action.unaligned,
                record=action.record,
            )
        for channel in action.block:
            gate.block(channel)
        for channel in action.unblock:
            gate.unblock(channel)
        if action.recorded:
            self._end_recording(action.recorded)
        pending = getattr(self.handler, "pending_checkpoint_id", None)
        for checkpoint_id in [c for c in self._timers if c != pending]:
            self._timers.pop(checkpoint_id).cancel()
        if action.timer_s is not None and action.alignment_started is not None:
            assert self.task_group is not None
            self.task_group.start_soon(
                self._alignment_timer, action.alignment_started, action.timer_s
            )

    # --- unaligned checkpoints ---

    async def _alignment_timer(self, checkpoint_id: int, delay_s: float) -> None:
        with anyio.CancelScope() as scope:
            self._timers[checkpoint_id] = scope
            await anyio.sleep(delay_s)
            self._timers.pop(checkpoint_id, None)
            if self.post is not None:
                self.post(partial(self.on_alignment_timeout, checkpoint_id))

    async def on_alignment_timeout(self, checkpoint_id: int) -> None:
        """The aligned-checkpoint timeout passed while aligning: go unaligned (mailbox)."""
        on_timeout = getattr(self.handler, "on_alignment_timeout", None)
        if on_timeout is not None:
            await self._apply(on_timeout(checkpoint_id), None)

    def cancel_timers(self) -> None:
        """The subtask's input ended: no alignment timer may keep its task group open."""
        for scope in self._timers.values():
            scope.cancel()
        self._timers.clear()

    def _end_recording(self, channels: tuple[int, ...]) -> None:
        checkpoint_id = self._recording
        gate = self.input
        assert gate is not None
        inflight = None if checkpoint_id is None else self._inflight.get(checkpoint_id)
        for channel in channels:
            buffers = gate.take_recorded(channel)
            if inflight is not None:
                inflight.inputs[channel] = buffers
                inflight.waiting.discard(channel)
        if inflight is not None and not inflight.waiting:
            self._recording = None
            inflight.done.set()

    def _drop_inflight(self, checkpoint_id: int) -> None:
        """Forget the channel state of an aborted checkpoint and stop recording for it."""
        inflight = self._inflight.pop(checkpoint_id, None)
        if inflight is None:
            return
        if self._recording == checkpoint_id:
            self._recording = None
            gate = self.input
            if gate is not None:
                for channel in inflight.waiting:
                    gate.take_recorded(channel)
        inflight.aborted = True
        inflight.done.set()

    # --- source trigger (mailbox) ---

    async def on_trigger(self, barrier: CheckpointBarrier) -> None:
        """The coordinator asked this source subtask to start checkpoint ``barrier``."""
        self._start_delay_ms[barrier.checkpoint_id] = max(0.0, _wall_ms() - barrier.timestamp_ms)
        unaligned = self.unaligned_sources and barrier.kind is CheckpointKind.CHECKPOINT
        if unaligned:
            barrier = replace(barrier, unaligned=True)
        await self.snapshot(barrier, 0.0, unaligned=unaligned)

    # --- the snapshot ---

    async def snapshot(
        self,
        barrier: CheckpointBarrier,
        alignment_ms: float,
        *,
        unaligned: bool = False,
        record: tuple[int, ...] = (),
    ) -> None:
        """Take the synchronous part, forward the barrier, start the asynchronous part.

        Unaligned, the barrier overtakes the queued output (kept as output channel state)
        and the channels in ``record`` are recorded until their barrier (input channel
        state); the asynchronous part writes both once the last of them arrived.
        """
        checkpoint_id = barrier.checkpoint_id
        chain = self.chain
        started = time.monotonic()
        incremental = (
            self.coordinator.config.incremental and barrier.kind is CheckpointKind.CHECKPOINT
        )
        extend = self._extendable() if incremental else {}
        if extend:
            snapshots = await chain.snapshot_operators(checkpoint_id, frozenset(extend))
        else:
            snapshots = await chain.snapshot_operators(checkpoint_id)
        if incremental:
            for snapshot in snapshots:
                if snapshot.keyed is not None:
                    snapshot.shared_base = extend.get(snapshot.operator_uid, ())
        positions = chain.source_positions()
        if positions is not None:
            self._positions[checkpoint_id] = positions
        if unaligned:
            inflight = _InFlight(await chain.emit_barrier_unaligned(barrier))
            self._inflight[checkpoint_id] = inflight
            if record:
                gate = self.input
                assert gate is not None
                for channel in record:
                    gate.record(channel, encode_buffer)
                inflight.waiting = set(record)
                self._recording = checkpoint_id
            else:
                inflight.done.set()
        sync_ms = (time.monotonic() - started) * 1000
        if not unaligned:
            await chain.emit_event(barrier)
        _serialize_ahead(snapshots, _SERIALIZE_AHEAD_S)
        stats = SubtaskCheckpointStats(
            operator=chain.chain_name,
            subtask_index=chain.index,
            sync_duration_ms=sync_ms,
            alignment_duration_ms=alignment_ms,
            start_delay_ms=self._start_delay_ms.pop(checkpoint_id, 0.0),
            unaligned_checkpoint=unaligned,
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
        chain = self.chain
        # Which snapshots were incremental (their handles name their pieces), and what
        # confirms their backends' changes once the checkpoint completes.
        snapshots_of = [s.shared_base is not None for s in snapshots]
        confirms = [s.confirm for s in snapshots if s.confirm is not None]
        with anyio.CancelScope() as scope:
            self._writes[checkpoint_id] = scope
            try:
                inflight = self._inflight.get(checkpoint_id)
                if inflight is not None:
                    await inflight.done.wait()
                    self._inflight.pop(checkpoint_id, None)
                    if inflight.aborted:
                        return  # declined when it was aborted
                    persisted = await self._attach_channel_state(inflight, snapshots)
                    stats = replace(stats, persisted_data=persisted)
                result = await write_subtask_snapshot(
                    self.coordinator.storage,
                    checkpoint_id,
                    chain.index,
                    chain.parallelism,
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
                if any(snapshots_of):  # a savepoint's full snapshots are no base
                    self._acked_pieces[checkpoint_id] = (
                        {
                            h.operator_uid: h.pieces
                            for h, snapshot in zip(result.handles, snapshots_of, strict=False)
                            if snapshot
                        },
                        confirms,
                    )
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

    async def _attach_channel_state(
        self, inflight: _InFlight, snapshots: list[OperatorSnapshot]
    ) -> int:
        """Put the channel state into the head operator's snapshot; return its size.

        The overtaken output buffers are encoded here, yielding to the loop about every
        two milliseconds (as the snapshotter does), so other subtasks keep running.
        """
        entries = []
        last = time.monotonic()
        # A buffer still queued at the next checkpoint is not encoded again (buffers are
        # never changed once sent; the cache holds them, so their ids stay theirs).
        previous, cache = self._encoded, {}
        for channel, buffers in inflight.outputs:
            if not buffers:
                continue
            encoded = []
            for buffer in buffers:
                hit = previous.get(id(buffer))
                if hit is not None and hit[0] is buffer:
                    data = hit[1]
                else:
                    data = orjson.dumps(encode_buffer(buffer))
                cache[id(buffer)] = (buffer, data)
                encoded.append(orjson.Fragment(data))
                if time.monotonic() - last >= _YIELD_EVERY_S:
                    await anyio.lowlevel.checkpoint()
                    last = time.monotonic()
            entries.append(_entry("output", channel, encoded))
        self._encoded = cache
        inflight.outputs = []
        gate = self.input
        for index, buffers in sorted(inflight.inputs.items()):
            if buffers:
                assert gate is not None
                entries.append(_entry("input", gate.channels[index], buffers))
        if not entries:
            return 0
        blob = orjson.dumps({"version": CHANNEL_STATE_VERSION, "entries": entries})
        head = self.task_id[0]
        extra = {CHANNEL_STATE_KEY: orjson.Fragment(blob)}
        for snapshot in snapshots:
            if snapshot.operator_uid == head:
                snapshot.extra = {**(snapshot.extra or {}), **extra}
                break
        else:
            snapshots.append(OperatorSnapshot(head, extra=extra))
        return len(blob)

    def _extendable(self) -> dict[str, tuple[StatePiece, ...]]:
        """The operators whose next snapshot may be a change on top of the last completed
        one, with its pieces; the others take a new base (none yet, or time for one)."""
        out = {}
        for uid, pieces in self._confirmed_pieces.items():
            if pieces:
                changes = pieces[1:]
                if len(changes) >= MAX_CHANGE_PIECES or sum(
                    p.size for p in changes
                ) >= MAX_CHANGE_BYTES_RATIO * max(pieces[0].size, 1):
                    continue
            out[uid] = pieces
        return out

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
        # Subsumed checkpoints still writing are aborted by this completion.
        self._cancel_writes(checkpoint_id, inclusive=False)
        # Subsuming contract: completion of n covers every pending id <= n.
        done = [cid for cid in self._positions if cid <= checkpoint_id]
        positions = self._positions.get(checkpoint_id)
        for cid in done:
            del self._positions[cid]
        acked = self._acked_pieces.pop(checkpoint_id, None)
        if acked is not None:
            # A completed incremental checkpoint is the base of the next one.
            self._confirmed_pieces = acked[0]
            for confirm in acked[1]:
                confirm(checkpoint_id)
            for cid in [cid for cid in self._acked_pieces if cid < checkpoint_id]:
                del self._acked_pieces[cid]
        await self.chain.notify_checkpoint_complete(checkpoint_id, positions)
        if self.final is not None:
            self.final.on_notify_complete(self.task_id, checkpoint_id)

    async def notify_aborted(self, checkpoint_id: int) -> None:
        self._positions.pop(checkpoint_id, None)
        self._drop_inflight(checkpoint_id)
        if self._acked_pieces.pop(checkpoint_id, None) is not None or self._confirmed_pieces:
            # The pieces of the last completed checkpoint may have gone with it (an abort
            # names no cause here): the next checkpoint writes a new base, to be safe.
            self._confirmed_pieces = {}
        scope = self._writes.get(checkpoint_id)
        if scope is not None:
            scope.cancel()
        await self.chain.notify_checkpoint_aborted(checkpoint_id)


class _InFlight:
    """The channel state of one unaligned checkpoint in one subtask, while it is taken.

    ``outputs`` are what the barrier overtook; ``inputs`` fill as the recorded channels'
    barriers arrive (``waiting`` are those still recording); ``done`` is set once none is
    left, or when the checkpoint was aborted (``aborted``).
    """

    __slots__ = ("aborted", "done", "inputs", "outputs", "waiting")

    def __init__(self, outputs: list[tuple[Any, list[Any]]]) -> None:
        self.outputs = outputs
        self.inputs: dict[int, list[Any]] = {}
        self.waiting: set[int] = set()
        self.done = anyio.Event()
        self.aborted = False


def _entry(kind: str, channel: Any, buffers: list[Any]) -> dict[str, Any]:
    edge = channel.edge
    return {
        "kind": kind,
        "edge": edge.edge_id,
        "producer": channel.producer_index,
        "consumer": channel.consumer_index,
        "producers": edge.producers,
        "consumers": edge.consumers,
        "buffers": buffers,
    }


def _serialize_ahead(snapshots: list[OperatorSnapshot], budget_s: float) -> None:
    """Serialize key groups now, for up to ``budget_s``; the asynchronous part does the rest.

    Until its key group is serialized, every access to a key takes the copy-on-write path,
    and the asynchronous part first runs one loop round later, after every subtask had its
    turn. Small state (a thousand keys) is serialized here at once, so records never see
    it pending; a failure to serialize is left for the asynchronous part to report. Large
    key groups go in steps (``serialize_key_group_steps``), so the budget is overrun by one
    step at most, and a key group left half done is continued by the asynchronous part.
    """
    deadline = time.monotonic() + budget_s
    for snapshot in snapshots:
        keyed = snapshot.keyed
        if keyed is None:
            continue
        steps_of = getattr(keyed, "serialize_key_group_steps", None)
        try:
            for key_group in keyed.key_groups():
                if time.monotonic() >= deadline:
                    return
                if steps_of is None:
                    keyed.serialize_key_group(key_group)
                    continue
                for _ in steps_of(key_group):
                    if time.monotonic() >= deadline:
                        return
        except Exception:
            return


class MailboxGateway:
    """The coordinator's door to the subtasks: every call posts to subtask mailboxes."""

    def __init__(self) -> None:
        self._subtasks: dict[TaskId, tuple[Mailbox, SubtaskCheckpointer]] = {}

    def clear(self) -> None:
        """Forget every subtask (a new attempt registers its own)."""
        self._subtasks.clear()

    def register(self, task: TaskId, mailbox: Mailbox, checkpointer: SubtaskCheckpointer) -> None:
        self._subtasks[task] = (mailbox, checkpointer)

    def trigger_checkpoint(self, task: TaskId, barrier: CheckpointBarrier) -> None:
        entry = self._subtasks.get(task)
        if entry is not None:
            mailbox, checkpointer = entry
            mailbox.post(lambda: checkpointer.on_trigger(barrier))

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for mailbox, checkpointer in self._subtasks.values():
            mailbox.post(partial(checkpointer.notify_complete, checkpoint_id))

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        for mailbox, checkpointer in self._subtasks.values():
            mailbox.post(partial(checkpointer.notify_aborted, checkpoint_id))

    async def drain(self) -> None:
        """Wait until every running subtask has run what was posted to it so far (the
        mailbox runs in order, so a marker posted now runs after them): stop-with-savepoint
        lets the savepoint's completion reach every sink before the job stops."""
        waiting = []
        for mailbox, _ in self._subtasks.values():
            if mailbox.running:
                done = anyio.Event()

                async def mark(done: anyio.Event = done) -> None:
                    done.set()

                mailbox.post(mark)
                waiting.append((mailbox, done))
        for mailbox, done in waiting:
            # A subtask that ends meanwhile runs nothing more: it is not waited for.
            while not done.is_set() and mailbox.running:
                with anyio.move_on_after(0.05):
                    await done.wait()
