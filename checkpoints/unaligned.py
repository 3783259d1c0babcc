"""Barrier handling for unaligned checkpoints, with Flink's aligned-checkpoint timeout.

Mirrors Flink's ``SingleCheckpointBarrierHandler`` with its alternating controller: a
checkpoint starts aligned (channels that delivered the barrier are blocked) when an
``aligned_timeout_ms`` is set, and becomes *unaligned* when the checkpoint's start delay on
this subtask (barrier creation to now, wall clock) passes it. With timeout 0 (Flink's
default) it is unaligned from its first barrier. A barrier that an unaligned upstream
forwarded (``barrier.unaligned``) makes it unaligned at once too, and savepoints are always
aligned, as in Flink.

Unaligned, the subtask snapshots at the first barrier (or at the timeout) and forwards the
barrier ahead of its queued output, nothing is blocked, and every buffer it reads from a
channel *before that channel's barrier* belongs to the checkpoint as input channel state:
the returned :class:`~streamlet.checkpoints.barriers.Action` names those channels in
``record`` and, as each barrier (or end of partition) arrives, in ``recorded``. The
subtask records and the checkpointer stores; this handler only decides, over channel
indices, with no I/O.

Everything else is inherited from :class:`~streamlet.checkpoints.alignment.BarrierAligner`: one
checkpoint at a time (a newer barrier subsumes the older one, which is also why at most one
unaligned checkpoint is in progress), cancel markers abort, stale ids are ignored, and an
ended channel counts as having delivered the barrier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from .alignment import BarrierAligner
from .barriers import Action
from .events import CheckpointBarrier, CheckpointKind

__all__ = ["UnalignedBarrierHandler"]

_NOTHING = Action()


def _wall_ms() -> int:
    return int(time.time() * 1000)


class UnalignedBarrierHandler(BarrierAligner):
    """Unaligned (or aligned-until-timeout) barrier handling over ``num_channels`` channels.

    :param num_channels: input channels of the subtask (at least 1)
    :param aligned_timeout_ms: 0: unaligned from the first barrier; > 0: aligned until the
        checkpoint's start delay passes it
    :param clock: monotonic seconds, for ``alignment_duration_ms``
    :param wall_clock_ms: wall-clock milliseconds, compared with the barrier's timestamp
    :raises ValueError: if ``num_channels < 1`` or ``aligned_timeout_ms < 0``
    """

    def __init__(
        self,
        num_channels: int,
        *,
        aligned_timeout_ms: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        super().__init__(num_channels, clock=clock)
        if aligned_timeout_ms < 0:
            raise ValueError(f"aligned_timeout_ms must be >= 0, got {aligned_timeout_ms}")
        self.aligned_timeout_ms = aligned_timeout_ms
        self._wall_clock_ms = wall_clock_ms
        # Invariant: while aligned, _blocked == _arrived; while unaligned, nothing is
        # blocked and _recording == all channels - _arrived - _ended.
        self._unaligned = False
        self._recording: set[int] = set()

    @property
    def recording_channels(self) -> frozenset[int]:
        """Channels whose input is channel state of the pending unaligned checkpoint."""
        return frozenset(self._recording)

    @property
    def is_unaligned(self) -> bool:
        """Whether the pending checkpoint (if any) went unaligned."""
        return self._current is not None and self._unaligned

    def on_barrier(self, channel: int, barrier: CheckpointBarrier) -> Action:
        """Handle a barrier read from ``channel``.

        :raises StreamletInternalError: if ``channel`` is blocked, ended or out of range
        """
        self._check_readable(channel, "a barrier")
        cid = barrier.checkpoint_id
        current = self._current
        if current is not None and cid == current.checkpoint_id:
            self._arrived.add(channel)
            if self._unaligned:
                return self._unaligned_arrival(channel)
            if barrier.unaligned and current.kind is CheckpointKind.CHECKPOINT:
                return self._to_unaligned()
            return self._after_arrival()
        if self._is_stale(cid):
            return _NOTHING
        aborts = self._start(channel, barrier)
        self._unaligned = False
        self._recording = set()
        if barrier.kind is not CheckpointKind.CHECKPOINT:
            return self._after_arrival(abort=aborts, alignment_started=cid)
        remaining_ms = self.aligned_timeout_ms - (self._wall_clock_ms() - barrier.timestamp_ms)
        if barrier.unaligned or self.aligned_timeout_ms == 0 or remaining_ms <= 0:
            return self._to_unaligned(abort=aborts, alignment_started=cid)
        action = self._after_arrival(abort=aborts, alignment_started=cid)
        if action.trigger is None:
            action = _with(action, timer_s=remaining_ms / 1000.0)
        return action

    def on_alignment_timeout(self, checkpoint_id: int) -> Action:
        """The alignment timer of ``checkpoint_id`` fired: go unaligned if still aligning."""
        current = self._current
        if current is None or current.checkpoint_id != checkpoint_id or self._unaligned:
            return _NOTHING
        if current.kind is not CheckpointKind.CHECKPOINT:
            return _NOTHING  # savepoints stay aligned
        return self._to_unaligned()

    def on_end_of_partition(self, channel: int) -> Action:
        """Handle the end of ``channel``; it counts as having delivered the barrier.

        :raises StreamletInternalError: if ``channel`` is blocked, already ended or out of range
        """
        self._check_readable(channel, "end of partition")
        self._ended.add(channel)
        if self._current is None:
            return _NOTHING
        if self._unaligned:
            return self._unaligned_arrival(channel)
        return self._after_arrival()

    # --- internals ---

    def _to_unaligned(self, **extra: object) -> Action:
        current = self._current
        assert current is not None
        duration_ms = (self._clock() - self._started_s) * 1000.0
        self._unaligned = True
        record = set(range(self.num_channels)) - self._arrived - self._ended
        self._recording = record
        trigger = CheckpointBarrier(
            current.checkpoint_id, current.timestamp_ms, current.kind, unaligned=True
        )
        if not record:
            self._reset(current.checkpoint_id)
        return self._emit(
            set(),
            trigger=trigger,
            unaligned=True,
            record=tuple(sorted(record)),
            alignment_duration_ms=duration_ms,
            **extra,
        )

    def _unaligned_arrival(self, channel: int) -> Action:
        current = self._current
        assert current is not None
        recorded: tuple[int, ...] = ()
        if channel in self._recording:
            self._recording.discard(channel)
            recorded = (channel,)
        if not self._recording:
            self._reset(current.checkpoint_id)
        return Action(recorded=recorded) if recorded else _NOTHING

    def _reset(self, handled_id: int) -> None:
        super()._reset(handled_id)
        self._unaligned = False
        self._recording = set()


def _with(action: Action, **fields: object) -> Action:
    return replace(action, **fields)  # type: ignore[arg-type]
