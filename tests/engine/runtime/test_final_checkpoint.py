"""The final checkpoint (FLIP-147) as a state machine, driven without a job.

Each test fails if a subtask could end before the final checkpoint reached it, if the runner
could trigger before every coordinator-triggered subtask finished its input, or if a failed
try were forgotten instead of recorded as data.
"""

from __future__ import annotations

import anyio
import pytest

from streamlet.checkpoints.errors import CheckpointFailureReason
from streamlet.runtime.final_checkpoint import (
    FinalCheckpoint,
    FinalCheckpointFailure,
    FinalCheckpointState,
)
from streamlet.state.errors import StreamletInternalError


def state_of(final: FinalCheckpoint) -> FinalCheckpointState:
    """The state, read afresh (mypy would narrow ``final.state`` across calls)."""
    return final.state


A = ("source", 0)
B = ("source", 1)


def test_a_subtask_is_released_only_by_a_completion_at_or_after_the_final_checkpoint() -> None:
    final = FinalCheckpoint([A, B], enabled=True)
    assert state_of(final) is FinalCheckpointState.WAITING_FOR_END_OF_INPUT
    final.on_end_of_input(A)
    assert state_of(final) is FinalCheckpointState.WAITING_FOR_END_OF_INPUT
    final.on_end_of_input(B)
    assert state_of(final) is FinalCheckpointState.WAITING_FOR_TRIGGER
    final.on_notify_complete(A, 3)  # a periodic checkpoint, before the final one
    assert not final.is_released(A)
    final.on_triggered(5)
    assert state_of(final) is FinalCheckpointState.TRIGGERED
    final.on_notify_complete(A, 4)
    assert not final.is_released(A)
    final.on_notify_complete(A, 5)
    assert final.is_released(A)
    # Each subtask is released by its own notification, not by another's.
    assert not final.is_released(B)
    final.on_notify_complete(B, 6)  # subsuming: a later completion covers the final one
    assert final.is_released(B)
    final.on_completed()
    assert state_of(final) is FinalCheckpointState.COMPLETED


def test_failed_tries_are_kept_as_data_and_a_retry_moves_the_final_id() -> None:
    final = FinalCheckpoint([A], enabled=True)
    final.on_end_of_input(A)
    final.on_failed(None, CheckpointFailureReason.TOO_MANY_CONCURRENT_CHECKPOINTS)
    final.on_triggered(7)
    final.on_failed(7, CheckpointFailureReason.CHECKPOINT_EXPIRED)
    final.on_triggered(8)
    final.on_notify_complete(A, 7)
    assert not final.is_released(A)
    final.on_notify_complete(A, 8)
    assert final.is_released(A)
    assert final.failures == [
        FinalCheckpointFailure(None, CheckpointFailureReason.TOO_MANY_CONCURRENT_CHECKPOINTS),
        FinalCheckpointFailure(7, CheckpointFailureReason.CHECKPOINT_EXPIRED),
    ]


def test_without_checkpointing_no_subtask_waits() -> None:
    final = FinalCheckpoint([A], enabled=False)
    assert state_of(final) is FinalCheckpointState.DISABLED
    assert not final.waits(A)
    with pytest.raises(StreamletInternalError, match=r"does not wait for a final checkpoint"):
        final.on_end_of_input(A)


def test_only_coordinator_triggered_subtasks_wait() -> None:
    final = FinalCheckpoint([A], enabled=True)
    assert final.waits(A)
    assert not final.waits(("map", 0))


@pytest.mark.anyio
async def test_the_runner_may_trigger_only_after_every_subtask_finished_its_input() -> None:
    final = FinalCheckpoint([A, B], enabled=True)
    finished = False

    async def runner() -> None:
        nonlocal finished
        await final.wait_end_of_input()
        finished = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        final.on_end_of_input(A)
        await anyio.wait_all_tasks_blocked()
        assert not finished
        final.on_end_of_input(B)
    assert finished
