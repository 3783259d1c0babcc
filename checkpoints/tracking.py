"""Barrier tracking for AT_LEAST_ONCE: block nothing, snapshot when the last barrier n arrives.

Mirrors Flink's ``CheckpointBarrierTracker``. Records keep flowing from channels that already
delivered barrier n, so records after the cut on a fast channel can land in snapshot n: after
a restore they are seen again (at least once, never lost).

Several checkpoints can be in flight at once (``max_concurrent_checkpoints > 1``). The tracker
assumes newer checkpoints have higher ids: when n is triggered, every older one still tracked
cannot complete any more and is aborted as subsumed. At most ``max_tracked`` (50, as in Flink)
ids are tracked; beyond that the oldest is aborted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamlet.state.errors import StreamletInternalError

from .barriers import Action
from .errors import CheckpointFailureReason
from .events import CancelCheckpointMarker, CheckpointBarrier

__all__ = ["MAX_CHECKPOINTS_TO_TRACK", "BarrierTracker"]

MAX_CHECKPOINTS_TO_TRACK = 50
_NOTHING = Action()
_SUBSUMED = CheckpointFailureReason.CHECKPOINT_DECLINED_SUBSUMED


@dataclass(slots=True)
class _BarrierCount:
    barrier: CheckpointBarrier
    started_s: float
    channels: set[int] = field(default_factory=set)


class BarrierTracker:
    """Track barriers across ``num_channels`` input channels without blocking (AT_LEAST_ONCE).

    :param num_channels: input channels of the subtask (at least 1)
    :param clock: monotonic seconds, for ``alignment_duration_ms`` (first to last barrier)
    :param max_tracked: most checkpoint ids tracked at once
    :raises ValueError: if ``num_channels < 1`` or ``max_tracked < 1``
    """

    def __init__(
        self,
        num_channels: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_CHECKPOINTS_TO_TRACK,
    ) -> None:
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be >= 1, got {max_tracked}")
        self.num_channels = num_channels
        self.max_tracked = max_tracked
        self._clock = clock
        self._pending: dict[int, _BarrierCount] = {}
        self._ended: set[int] = set()
        # Highest id triggered or aborted here; anything at or below it is stale.
        self._latest_handled = 0

    @property
    def blocked_channels(self) -> frozenset[int]:
        """Always empty: tracking never blocks."""
        return frozenset()

    @property
    def ended_channels(self) -> frozenset[int]:
        """Channels that delivered end of partition."""
        return frozenset(self._ended)

    @property
    def pending_checkpoint_ids(self) -> list[int]:
        """Ids with some but not all barriers arrived, ascending."""
        return sorted(self._pending)

    def on_barrier(self, channel: int, barrier: CheckpointBarrier) -> Action:
        """Handle barrier ``barrier`` read from ``channel``.

        :raises StreamletInternalError: if ``channel`` ended, is out of range, or delivered
            this barrier before
        """
        self._check_readable(channel, "a barrier")
        cid = barrier.checkpoint_id
        if cid <= self._latest_handled:
            return _NOTHING
        aborts: list[tuple[int, CheckpointFailureReason]] = []
        started: int | None = None
        count = self._pending.get(cid)
        if count is None:
            count = self._pending[cid] = _BarrierCount(barrier, self._clock())
            started = cid
            if len(self._pending) > self.max_tracked:
                oldest = min(self._pending)
                del self._pending[oldest]
                # Every other tracked id is newer, so this only makes late barriers stale.
                self._latest_handled = max(self._latest_handled, oldest)
                aborts.append((oldest, _SUBSUMED))
                if oldest == cid:
                    return Action(abort=tuple(aborts))
        elif channel in count.channels:
            raise StreamletInternalError(f"channel {channel} delivered barrier {cid} twice")
        count.channels.add(channel)
        return self._trigger_ready(aborts, started)

    def on_cancel_marker(self, channel: int, marker: CancelCheckpointMarker) -> Action:
        """Handle a cancel marker from ``channel``: abort it and every older tracked id.

        :raises StreamletInternalError: if ``channel`` ended or is out of range
        """
        self._check_readable(channel, "a cancel marker")
        cid = marker.checkpoint_id
        if cid <= self._latest_handled:
            return _NOTHING
        aborts = [(old, _SUBSUMED) for old in sorted(self._pending) if old < cid]
        aborts.append((cid, CheckpointFailureReason.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER))
        self._forget_up_to(cid)
        return Action(abort=tuple(aborts))

    def on_end_of_partition(self, channel: int) -> Action:
        """Handle the end of ``channel``; it counts as delivered for every tracked id.

        :raises StreamletInternalError: if ``channel`` already ended or is out of range
        """
        self._check_readable(channel, "end of partition")
        self._ended.add(channel)
        return self._trigger_ready([], None)

    # --- internals ---

    def _trigger_ready(
        self, aborts: list[tuple[int, CheckpointFailureReason]], started: int | None
    ) -> Action:
        ready = [
            cid
            for cid, count in self._pending.items()
            if len(count.channels | self._ended) == self.num_channels
        ]
        if not ready:
            if not aborts and started is None:
                return _NOTHING
            return Action(abort=tuple(aborts), alignment_started=started)
        newest = max(ready)
        count = self._pending[newest]
        aborts.extend((old, _SUBSUMED) for old in sorted(self._pending) if old < newest)
        self._forget_up_to(newest)
        return Action(
            trigger=count.barrier,
            abort=tuple(aborts),
            alignment_started=started,
            alignment_duration_ms=(self._clock() - count.started_s) * 1000.0,
        )

    def _forget_up_to(self, checkpoint_id: int) -> None:
        for cid in [c for c in self._pending if c <= checkpoint_id]:
            del self._pending[cid]
        self._latest_handled = max(self._latest_handled, checkpoint_id)

    def _check_readable(self, channel: int, what: str) -> None:
        if not 0 <= channel < self.num_channels:
            raise StreamletInternalError(
                f"{what} on channel {channel}, but the subtask has {self.num_channels} channels"
            )
        if channel in self._ended:
            raise StreamletInternalError(f"{what} was read from channel {channel} after it ended")
