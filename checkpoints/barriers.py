"""What a barrier handler tells the subtask to do, and the interface both handlers share.

Barrier handlers (:class:`~streamlet.checkpoints.alignment.BarrierAligner` for EXACTLY_ONCE,
:class:`~streamlet.checkpoints.tracking.BarrierTracker` for AT_LEAST_ONCE) are pure synchronous
state machines over channel indices: the subtask feeds them the events it reads from its input gate
and applies the returned :class:`Action`. They do no I/O and need no event loop.

How the subtask applies an action, in this order, before it reads the next buffer:

1. for each ``(checkpoint_id, reason)`` in ``abort``: decline the checkpoint to the
   coordinator with ``reason`` and send ``CancelCheckpointMarker(checkpoint_id)`` on every
   output channel, so downstream subtasks stop waiting for that barrier;
2. if ``trigger`` is set: take the snapshot of the chain for ``trigger.checkpoint_id`` (the
   synchronous part), send ``trigger`` on every output channel, start the asynchronous part;
3. block the channels in ``block`` and unblock those in ``unblock`` (an unblocked channel's
   buffered data is read first, as in Flink).

An unaligned checkpoint (:class:`~streamlet.checkpoints.unaligned.UnalignedBarrierHandler`)
adds three fields: ``unaligned`` with ``trigger`` (forward the barrier ahead of the queued
output and keep what it overtook as output channel state), ``record`` (channels whose
buffers, from now until their barrier, are input channel state) and ``recorded``
(channels whose barrier or end arrived now: their input channel state is complete), and
``timer_s``: call the handler's ``on_alignment_timeout`` after that many seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import CheckpointFailureReason
from .events import CancelCheckpointMarker, CheckpointBarrier

__all__ = ["Action", "BarrierHandler"]


@dataclass(frozen=True, slots=True)
class Action:
    """The subtask's instructions after one input event (see the module docstring).

    :param block: channels to stop reading
    :param unblock: channels to read again
    :param trigger: snapshot now and forward this barrier
    :param abort: checkpoints to decline and cancel downstream, with the reason
    :param alignment_started: id of a checkpoint whose first barrier this event was; the
        subtask may record the start delay (barrier creation to now) here
    :param alignment_duration_ms: with ``trigger``: first to last barrier, by the handler's
        clock
    :param unaligned: with ``trigger``: the snapshot is unaligned
    :param record: channels whose input is channel state until their barrier arrives
    :param recorded: channels whose input channel state is complete now
    :param timer_s: ask for an alignment timeout in this many seconds
    """

    block: tuple[int, ...] = ()
    unblock: tuple[int, ...] = ()
    trigger: CheckpointBarrier | None = None
    abort: tuple[tuple[int, CheckpointFailureReason], ...] = ()
    alignment_started: int | None = None
    alignment_duration_ms: float | None = None
    unaligned: bool = False
    record: tuple[int, ...] = ()
    recorded: tuple[int, ...] = ()
    timer_s: float | None = None

    @property
    def is_noop(self) -> bool:
        """True if there is nothing to do."""
        return self == _NOTHING


_NOTHING = Action()


class BarrierHandler(Protocol):
    """What the subtask loop calls for every non-record buffer it reads."""

    @property
    def blocked_channels(self) -> frozenset[int]:
        """Channels the subtask must not read now."""
        ...

    def on_barrier(self, channel: int, barrier: CheckpointBarrier) -> Action:
        """Handle a barrier read from ``channel``."""
        ...

    def on_cancel_marker(self, channel: int, marker: CancelCheckpointMarker) -> Action:
        """Handle a cancel marker read from ``channel``."""
        ...

    def on_end_of_partition(self, channel: int) -> Action:
        """Handle the end of ``channel``: it will deliver nothing more."""
        ...
