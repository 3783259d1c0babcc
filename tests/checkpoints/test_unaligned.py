"""The unaligned barrier handler: unaligned at once, aligned until the timeout, limits."""

from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    Action,
    BarrierAligner,
    CancelCheckpointMarker,
    CheckpointBarrier,
    CheckpointFailureReason,
    CheckpointingMode,
    create_barrier_handler,
)
from streamlet.checkpoints.events import CheckpointKind
from streamlet.checkpoints.unaligned import UnalignedBarrierHandler
from streamlet.state.errors import StreamletInternalError

R = CheckpointFailureReason


class Wall:
    """A settable wall clock (ms); barriers below are created at 1000 ms."""

    def __init__(self, now_ms: int = 1000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def b(checkpoint_id: int, **kw: object) -> CheckpointBarrier:
    return CheckpointBarrier(checkpoint_id, 1000, **kw)  # type: ignore[arg-type]


def u(checkpoint_id: int) -> CheckpointBarrier:
    return CheckpointBarrier(checkpoint_id, 1000, unaligned=True)


def handler(n: int = 3, timeout_ms: int = 0, wall: Wall | None = None) -> UnalignedBarrierHandler:
    return UnalignedBarrierHandler(
        n, aligned_timeout_ms=timeout_ms, clock=lambda: 0.0, wall_clock_ms=wall or Wall()
    )


def test_timeout_zero_goes_unaligned_at_the_first_barrier_and_records_the_others() -> None:
    h = handler(3)
    first = h.on_barrier(1, b(7))
    assert first.trigger == u(7) and first.unaligned
    assert first.record == (0, 2) and first.block == () and first.alignment_started == 7
    assert h.recording_channels == {0, 2} and h.blocked_channels == frozenset()
    # Nothing is blocked: channel 1 may deliver more (after its barrier: not recorded).
    assert h.on_barrier(2, b(7)) == Action(recorded=(2,))
    assert h.pending_checkpoint_id == 7
    assert h.on_end_of_partition(0) == Action(recorded=(0,))
    assert h.pending_checkpoint_id is None and h.recording_channels == frozenset()


def test_single_channel_unaligned_records_nothing() -> None:
    action = handler(1).on_barrier(0, b(2))
    assert action.trigger == u(2) and action.record == ()


def test_positive_timeout_starts_aligned_and_asks_for_a_timer() -> None:
    wall = Wall(1000 + 30)  # the barrier is 30 ms old
    h = handler(3, timeout_ms=100, wall=wall)
    first = h.on_barrier(0, b(1))
    assert first.trigger is None and first.block == (0,)
    assert first.timer_s == pytest.approx(0.07)
    assert h.on_barrier(1, b(1)) == Action(block=(1,))
    # The timeout passes mid-checkpoint: snapshot unaligned, unblock, record the laggard.
    switched = h.on_alignment_timeout(1)
    assert switched.trigger == u(1) and switched.unaligned
    assert switched.unblock == (0, 1) and switched.record == (2,)
    assert h.on_alignment_timeout(1) == Action()  # once only
    assert h.on_barrier(2, b(1)) == Action(recorded=(2,))
    assert h.pending_checkpoint_id is None


def test_aligned_checkpoint_that_completes_in_time_stays_aligned() -> None:
    h = handler(2, timeout_ms=100, wall=Wall(1000))
    h.on_barrier(0, b(1))
    done = h.on_barrier(1, b(1))
    assert done.trigger == b(1) and not done.unaligned and done.unblock == (0,)
    assert h.on_alignment_timeout(1) == Action()  # a late timer is ignored


def test_barrier_older_than_the_timeout_goes_unaligned_at_once() -> None:
    h = handler(2, timeout_ms=100, wall=Wall(1000 + 150))
    action = h.on_barrier(0, b(3))
    assert action.unaligned and action.record == (1,) and action.timer_s is None


def test_an_unaligned_barrier_from_upstream_switches_an_aligning_subtask() -> None:
    h = handler(3, timeout_ms=10_000)
    assert h.on_barrier(0, b(1)).block == (0,)
    switched = h.on_barrier(1, u(1))
    assert switched.unaligned and switched.unblock == (0,) and switched.record == (2,)


def test_savepoints_are_always_aligned() -> None:
    h = handler(2, timeout_ms=0)
    savepoint = b(5, kind=CheckpointKind.SAVEPOINT)
    first = h.on_barrier(0, savepoint)
    assert first.block == (0,) and not first.unaligned and first.timer_s is None
    assert h.on_alignment_timeout(5) == Action()
    assert h.on_barrier(1, savepoint).trigger == savepoint


def test_newer_barrier_subsumes_an_unaligned_checkpoint_still_recording() -> None:
    h = handler(2)
    h.on_barrier(0, b(1))
    newer = h.on_barrier(1, b(2))
    assert newer.abort == ((1, R.CHECKPOINT_DECLINED_SUBSUMED),)
    assert newer.trigger == u(2) and newer.record == (0,)
    assert h.on_barrier(0, b(1)) == Action()  # stale


def test_cancel_marker_aborts_and_stops_recording() -> None:
    h = handler(3)
    h.on_barrier(0, b(4))
    action = h.on_cancel_marker(1, CancelCheckpointMarker(4))
    assert action.abort == ((4, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER),)
    assert h.recording_channels == frozenset() and h.pending_checkpoint_id is None


def test_reading_a_blocked_channel_while_aligning_is_a_bug() -> None:
    h = handler(2, timeout_ms=10_000)
    h.on_barrier(0, b(1))
    with pytest.raises(StreamletInternalError, match="blocked channel 0"):
        h.on_barrier(0, b(1))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="num_channels must be >= 1, got 0"):
        UnalignedBarrierHandler(0)
    with pytest.raises(ValueError, match="aligned_timeout_ms must be >= 0, got -1"):
        UnalignedBarrierHandler(1, aligned_timeout_ms=-1)


def test_factory_falls_back_to_tracking_outside_exactly_once() -> None:
    assert isinstance(
        create_barrier_handler(CheckpointingMode.EXACTLY_ONCE, 2, unaligned=True),
        UnalignedBarrierHandler,
    )
    assert isinstance(create_barrier_handler(CheckpointingMode.EXACTLY_ONCE, 2), BarrierAligner)
    tracker = create_barrier_handler(CheckpointingMode.AT_LEAST_ONCE, 2, unaligned=True)
    assert not isinstance(tracker, UnalignedBarrierHandler | BarrierAligner)
