from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    BarrierTracker,
    CancelCheckpointMarker,
    CheckpointBarrier,
    CheckpointFailureReason,
)
from streamlet.state.errors import StreamletInternalError

R = CheckpointFailureReason


def b(checkpoint_id: int) -> CheckpointBarrier:
    return CheckpointBarrier(checkpoint_id, 1000 + checkpoint_id)


def test_blocks_nothing_and_triggers_on_last_barrier():
    now = [0.0]
    tracker = BarrierTracker(3, clock=lambda: now[0])
    a = tracker.on_barrier(0, b(1))
    assert a.block == () and a.trigger is None and a.alignment_started == 1
    assert tracker.blocked_channels == frozenset()
    assert tracker.on_barrier(2, b(1)).trigger is None
    now[0] = 0.1
    last = tracker.on_barrier(1, b(1))
    assert last.trigger == b(1)
    assert last.block == () and last.unblock == ()
    assert last.alignment_duration_ms == pytest.approx(100.0)
    assert tracker.pending_checkpoint_ids == []


def test_several_checkpoints_in_flight():
    tracker = BarrierTracker(2)
    tracker.on_barrier(0, b(1))
    tracker.on_barrier(0, b(2))  # a fast channel is ahead by one checkpoint
    assert tracker.pending_checkpoint_ids == [1, 2]
    assert tracker.on_barrier(1, b(1)).trigger == b(1)
    assert tracker.on_barrier(1, b(2)).trigger == b(2)


def test_newer_completing_aborts_older():
    tracker = BarrierTracker(2)
    tracker.on_barrier(0, b(1))
    tracker.on_barrier(0, b(2))
    tracker.on_end_of_partition(0)
    # Channel 1 never delivers 1 (cancelled upstream, say) but delivers 2.
    action = tracker.on_barrier(1, b(2))
    assert action.trigger == b(2)
    assert action.abort == ((1, R.CHECKPOINT_DECLINED_SUBSUMED),)
    assert tracker.on_barrier(1, b(1)).is_noop


def test_cancel_marker_aborts_it_and_older():
    tracker = BarrierTracker(2)
    tracker.on_barrier(0, b(1))
    tracker.on_barrier(0, b(2))
    action = tracker.on_cancel_marker(1, CancelCheckpointMarker(2))
    assert action.abort == (
        (1, R.CHECKPOINT_DECLINED_SUBSUMED),
        (2, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER),
    )
    assert tracker.on_barrier(1, b(2)).is_noop
    assert tracker.on_cancel_marker(0, CancelCheckpointMarker(2)).is_noop


def test_end_of_partition_completes_waiting_checkpoint():
    tracker = BarrierTracker(2)
    tracker.on_barrier(0, b(1))
    assert tracker.on_end_of_partition(1).trigger == b(1)


def test_caps_tracked_ids():
    tracker = BarrierTracker(2, max_tracked=3)
    for cid in (1, 2, 3):
        tracker.on_barrier(0, b(cid))
    action = tracker.on_barrier(0, b(4))
    assert action.abort == ((1, R.CHECKPOINT_DECLINED_SUBSUMED),)
    assert tracker.pending_checkpoint_ids == [2, 3, 4]
    assert tracker.on_barrier(1, b(1)).is_noop


def test_duplicate_barrier_on_channel_is_a_bug():
    tracker = BarrierTracker(2)
    tracker.on_barrier(0, b(1))
    with pytest.raises(StreamletInternalError, match=r"^channel 0 delivered barrier 1 twice$"):
        tracker.on_barrier(0, b(1))
