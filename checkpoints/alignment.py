"""Barrier alignment for EXACTLY_ONCE: block each channel that delivered barrier n until all did.

Mirrors Flink's ``SingleCheckpointBarrierHandler`` with aligned barriers: at most one
checkpoint is being aligned at a time. The handler is a pure state machine over channel
indices; the subtask applies the returned :class:`~streamlet.checkpoints.barriers.Action`.

Decisions worth knowing:

- **Newer barrier while aligning n.** A barrier n+k (k > 0) can only be read from a channel
  that has *not* delivered barrier n (channels that did are blocked). Channels are FIFO and
  sources emit barriers in id order, so that channel's producer never sent barrier n: it
  aborted n and its ``CancelCheckpointMarker`` would have reached us first, or n was dropped
  upstream. Either way n cannot complete here, so n is aborted as
  ``CHECKPOINT_DECLINED_SUBSUMED`` and alignment of n+k starts, as in Flink. This is also what
  happens with ``max_concurrent_checkpoints > 1``: barriers n and n+1 may both be in flight,
  but a channel's n+1 sits behind its n, so n completes first unless something upstream broke.
- **Cancel marker.** Aborts the checkpoint it names (and an older one being aligned), and the
  subtask forwards the marker, so downstream stops waiting.
- **End of partition while aligning.** Unlike Flink (which aborts with
  ``CHECKPOINT_DECLINED_INPUT_END_OF_STREAM``), an ended channel counts as aligned: its
  producer sent everything it will ever send before barrier n could follow, so the records
  already read from it are exactly those before the cut, and the snapshot is consistent.
  Whether the checkpoint can complete is the coordinator's business (every subtask must still
  acknowledge). In streamlet sources stay alive until the final checkpoint, so this is rare.
- **Old ids.** Barriers and markers for ids at or below the last triggered or aborted id are
  ignored (late duplicates after an abort).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streamlet.state.errors import StreamletInternalError

from .barriers import Action
from .errors import CheckpointFailureReason
from .events import CancelCheckpointMarker, CheckpointBarrier

__all__ = ["BarrierAligner"]

_NOTHING = Action()


class BarrierAligner:
    """Align barriers across ``num_channels`` input channels (EXACTLY_ONCE).

    :param num_channels: input channels of the subtask (at least 1)
    :param clock: monotonic seconds, for ``alignment_duration_ms``
    :raises ValueError: if ``num_channels < 1``
    """

    def __init__(self, num_channels: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        self.num_channels = num_channels
        self._clock = clock
        # The checkpoint being aligned, if any.
        self._current: CheckpointBarrier | None = None
        # Invariant: _arrived is empty unless _current is set; _blocked == _arrived except for
        # the moment between a barrier arriving and the action being computed.
        self._arrived: set[int] = set()
        self._blocked: set[int] = set()
        self._ended: set[int] = set()
        self._started_s = 0.0
        # Highest id triggered or aborted here; anything at or below it is stale.
        self._latest_handled = 0

    @property
    def blocked_channels(self) -> frozenset[int]:
        """Channels the subtask must not read now."""
        return frozenset(self._blocked)

    @property
    def ended_channels(self) -> frozenset[int]:
        """Channels that delivered end of partition."""
        return frozenset(self._ended)

    @property
    def pending_checkpoint_id(self) -> int | None:
        """The checkpoint being aligned, or ``None``."""
        return None if self._current is None else self._current.checkpoint_id

    def on_barrier(self, channel: int, barrier: CheckpointBarrier) -> Action:
        """Handle barrier ``barrier`` read from ``channel``.

        :raises StreamletInternalError: if ``channel`` is blocked, ended or out of range
            (the subtask read where it must not)
        """
        self._check_readable(channel, "a barrier")
        cid = barrier.checkpoint_id
        current = self._current
        if current is not None and cid == current.checkpoint_id:
            self._arrived.add(channel)
            return self._after_arrival()
        if self._is_stale(cid):
            return _NOTHING
        aborts = self._start(channel, barrier)
        return self._after_arrival(abort=aborts, alignment_started=cid)

    def on_cancel_marker(self, channel: int, marker: CancelCheckpointMarker) -> Action:
        """Handle a cancel marker read from ``channel``: abort the checkpoint it names.

        :raises StreamletInternalError: if ``channel`` is blocked, ended or out of range
        """
        self._check_readable(channel, "a cancel marker")
        cid = marker.checkpoint_id
        current = self._current
        if self._is_stale(cid):
            return _NOTHING
        aborts: list[tuple[int, CheckpointFailureReason]] = []
        if current is not None and current.checkpoint_id != cid:
            aborts.append(
                (current.checkpoint_id, CheckpointFailureReason.CHECKPOINT_DECLINED_SUBSUMED)
            )
        aborts.append((cid, CheckpointFailureReason.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER))
        self._reset(cid)
        return self._emit(set(), abort=tuple(aborts))

    def on_end_of_partition(self, channel: int) -> Action:
        """Handle the end of ``channel``; it counts as aligned from now on.

        :raises StreamletInternalError: if ``channel`` is blocked, already ended or out of range
        """
        self._check_readable(channel, "end of partition")
        self._ended.add(channel)
        if self._current is None:
            return _NOTHING
        return self._after_arrival()

    # --- internals ---

    def _is_stale(self, checkpoint_id: int) -> bool:
        """Whether ``checkpoint_id`` was handled already or is older than the pending one."""
        current = self._current
        return checkpoint_id <= self._latest_handled or (
            current is not None and checkpoint_id < current.checkpoint_id
        )

    def _start(
        self, channel: int, barrier: CheckpointBarrier
    ) -> tuple[tuple[int, CheckpointFailureReason], ...]:
        """Begin aligning ``barrier``, first read from ``channel``; return the abort of the
        checkpoint it subsumes, if one was pending."""
        current = self._current
        aborts: tuple[tuple[int, CheckpointFailureReason], ...] = ()
        if current is not None:
            aborts = (
                (current.checkpoint_id, CheckpointFailureReason.CHECKPOINT_DECLINED_SUBSUMED),
            )
        self._current = barrier
        self._arrived = {channel}
        self._started_s = self._clock()
        return aborts

    def _after_arrival(self, **extra: object) -> Action:
        current = self._current
        assert current is not None
        if len(self._arrived | self._ended) == self.num_channels:
            duration_ms = (self._clock() - self._started_s) * 1000.0
            self._reset(current.checkpoint_id)
            return self._emit(set(), trigger=current, alignment_duration_ms=duration_ms, **extra)
        return self._emit(set(self._arrived), **extra)

    def _reset(self, handled_id: int) -> None:
        self._current = None
        self._arrived = set()
        self._latest_handled = max(self._latest_handled, handled_id)

    def _emit(self, new_blocked: set[int], **fields: object) -> Action:
        block = tuple(sorted(new_blocked - self._blocked))
        unblock = tuple(sorted(self._blocked - new_blocked))
        self._blocked = new_blocked
        return Action(block=block, unblock=unblock, **fields)  # type: ignore[arg-type]

    def _check_readable(self, channel: int, what: str) -> None:
        if not 0 <= channel < self.num_channels:
            raise StreamletInternalError(
                f"{what} on channel {channel}, but the subtask has {self.num_channels} channels"
            )
        if channel in self._blocked:
            raise StreamletInternalError(f"{what} was read from blocked channel {channel}")
        if channel in self._ended:
            raise StreamletInternalError(f"{what} was read from channel {channel} after it ended")
