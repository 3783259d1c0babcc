from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    AckResult,
    CheckpointError,
    CheckpointFailureReason,
    CheckpointKind,
    PendingCheckpoint,
    StateHandle,
    SubtaskCheckpointStats,
)

A, B = ("map", 0), ("map", 1)


def pending(tasks=(A, B)) -> PendingCheckpoint:
    return PendingCheckpoint(3, CheckpointKind.CHECKPOINT, 1000, 5.0, tasks, "memory://job/chk-3")


def handle(task) -> StateHandle:
    return StateHandle(task[0], task[1], f"op-{task[0]}-{task[1]}.state", 10, 1, 2, 8)


def test_acknowledge_all_then_fully_acknowledged():
    p = pending()
    assert p.acknowledge(A, [handle(A)]) is AckResult.SUCCESS
    assert not p.is_fully_acknowledged
    stats = SubtaskCheckpointStats("map", 1, state_size=10)
    assert p.acknowledge(B, [handle(B)], stats) is AckResult.SUCCESS
    assert p.is_fully_acknowledged
    assert p.handles == [handle(A), handle(B)]
    assert p.subtask_stats == {B: stats}


def test_duplicate_and_unknown_acks():
    p = pending()
    p.acknowledge(A)
    assert p.acknowledge(A) is AckResult.DUPLICATE
    assert p.acknowledge(("other", 0)) is AckResult.UNKNOWN
    assert len(p.acknowledged) == 1


def test_ack_after_abort_is_discarded():
    p = pending()
    assert p.abort(CheckpointFailureReason.CHECKPOINT_EXPIRED, "late")
    assert p.acknowledge(A) is AckResult.DISCARDED
    assert not p.is_fully_acknowledged
    assert not p.abort(CheckpointFailureReason.CHECKPOINT_DECLINED)
    assert p.failure is not None and p.failure.reason is CheckpointFailureReason.CHECKPOINT_EXPIRED


@pytest.mark.asyncio
async def test_wait_reports_abort():
    p = pending()
    p.abort(CheckpointFailureReason.CHECKPOINT_DECLINED, "no")
    with pytest.raises(
        CheckpointError, match=r"^checkpoint 3 failed: Checkpoint was declined\. no$"
    ):
        await p.wait()
