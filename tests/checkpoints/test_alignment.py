from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    Action,
    BarrierAligner,
    BarrierTracker,
    CancelCheckpointMarker,
    CheckpointBarrier,
    CheckpointFailureReason,
    CheckpointingMode,
    create_barrier_handler,
)
from streamlet.state.errors import StreamletInternalError

R = CheckpointFailureReason


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def b(checkpoint_id: int) -> CheckpointBarrier:
    return CheckpointBarrier(checkpoint_id, 1000 + checkpoint_id)


def test_blocks_each_channel_that_delivered_until_all_did():
    clock = Tick()
    aligner = BarrierAligner(3, clock=clock)
    first = aligner.on_barrier(1, b(1))
    assert first == Action(block=(1,), alignment_started=1)
    assert aligner.blocked_channels == {1}
    assert aligner.pending_checkpoint_id == 1
    assert aligner.on_barrier(0, b(1)) == Action(block=(0,))
    assert aligner.blocked_channels == {0, 1}
    clock.now = 0.25
    last = aligner.on_barrier(2, b(1))
    assert last.trigger == b(1)
    assert last.unblock == (0, 1) and last.block == ()
    assert last.alignment_duration_ms == pytest.approx(250.0)
    assert aligner.blocked_channels == frozenset()
    assert aligner.pending_checkpoint_id is None


def test_single_channel_triggers_without_blocking():
    action = BarrierAligner(1).on_barrier(0, b(4))
    assert action.trigger == b(4)
    assert action.block == () and action.unblock == ()
    assert action.alignment_started == 4


def test_reading_a_blocked_channel_is_a_bug():
    aligner = BarrierAligner(2)
    aligner.on_barrier(0, b(1))
    with pytest.raises(
        StreamletInternalError, match=r"^a barrier was read from blocked channel 0$"
    ):
        aligner.on_barrier(0, b(2))
    with pytest.raises(StreamletInternalError, match=r"but the subtask has 2 channels$"):
        aligner.on_barrier(5, b(1))


def test_newer_barrier_aborts_older_and_aligns_newer():
    aligner = BarrierAligner(3)
    aligner.on_barrier(0, b(1))
    aligner.on_barrier(1, b(1))
    action = aligner.on_barrier(2, b(2))
    assert action.abort == ((1, R.CHECKPOINT_DECLINED_SUBSUMED),)
    assert action.unblock == (0, 1)
    assert action.block == (2,)
    assert action.trigger is None
    assert action.alignment_started == 2
    assert aligner.blocked_channels == {2}
    # Barrier 1 arriving late on an unblocked channel is stale now.
    assert aligner.on_barrier(0, b(1)).is_noop
    aligner.on_barrier(0, b(2))
    assert aligner.on_barrier(1, b(2)).trigger == b(2)


def test_cancel_marker_aborts_current_and_unblocks():
    aligner = BarrierAligner(3)
    aligner.on_barrier(0, b(1))
    action = aligner.on_cancel_marker(1, CancelCheckpointMarker(1))
    assert action == Action(
        unblock=(0,), abort=((1, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER),)
    )
    assert aligner.blocked_channels == frozenset()
    # Later barriers and markers for 1 are ignored.
    assert aligner.on_barrier(2, b(1)).is_noop
    assert aligner.on_cancel_marker(2, CancelCheckpointMarker(1)).is_noop


def test_cancel_marker_before_any_barrier_aborts_that_checkpoint():
    aligner = BarrierAligner(2)
    action = aligner.on_cancel_marker(0, CancelCheckpointMarker(5))
    assert action.abort == ((5, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER),)
    assert aligner.on_barrier(1, b(5)).is_noop


def test_cancel_marker_for_newer_checkpoint_aborts_both():
    aligner = BarrierAligner(3)
    aligner.on_barrier(0, b(1))
    action = aligner.on_cancel_marker(1, CancelCheckpointMarker(2))
    assert action.abort == (
        (1, R.CHECKPOINT_DECLINED_SUBSUMED),
        (2, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER),
    )
    assert action.unblock == (0,)


def test_cancel_marker_for_older_checkpoint_is_ignored():
    aligner = BarrierAligner(2)
    aligner.on_barrier(0, b(3))
    assert aligner.on_cancel_marker(1, CancelCheckpointMarker(2)).is_noop
    assert aligner.blocked_channels == {0}


def test_end_of_partition_during_alignment_counts_as_aligned():
    aligner = BarrierAligner(3)
    aligner.on_barrier(0, b(1))
    aligner.on_barrier(1, b(1))
    action = aligner.on_end_of_partition(2)
    assert action.trigger == b(1)
    assert action.unblock == (0, 1)
    assert action.abort == ()


def test_end_of_partition_before_alignment_shrinks_live_channels():
    aligner = BarrierAligner(2)
    assert aligner.on_end_of_partition(1).is_noop
    assert aligner.ended_channels == {1}
    assert aligner.on_barrier(0, b(1)).trigger == b(1)
    with pytest.raises(StreamletInternalError, match=r"after it ended$"):
        aligner.on_barrier(1, b(2))


def test_end_of_partition_while_others_still_missing_keeps_waiting():
    aligner = BarrierAligner(3)
    aligner.on_barrier(0, b(1))
    action = aligner.on_end_of_partition(1)
    assert action.is_noop or action == Action()
    assert aligner.blocked_channels == {0}
    assert aligner.on_barrier(2, b(1)).trigger == b(1)


def test_completed_ids_are_ignored_afterwards():
    aligner = BarrierAligner(2)
    aligner.on_barrier(0, b(1))
    aligner.on_barrier(1, b(1))
    assert aligner.on_barrier(0, b(1)).is_noop  # a duplicate after completion
    assert aligner.on_barrier(0, b(2)).block == (0,)


def test_concurrent_checkpoints_in_channels_complete_in_order():
    # max_concurrent = 2: both channels carry barrier 1 then barrier 2.
    aligner = BarrierAligner(2)
    aligner.on_barrier(0, b(1))
    assert aligner.on_barrier(1, b(1)).trigger == b(1)
    aligner.on_barrier(1, b(2))
    assert aligner.on_barrier(0, b(2)).trigger == b(2)


def test_factory_chooses_by_mode():
    assert isinstance(create_barrier_handler(CheckpointingMode.EXACTLY_ONCE, 2), BarrierAligner)
    assert isinstance(create_barrier_handler(CheckpointingMode.AT_LEAST_ONCE, 2), BarrierTracker)
    with pytest.raises(ValueError, match=r"^num_channels must be >= 1, got 0$"):
        BarrierAligner(0)
