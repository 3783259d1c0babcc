from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    CheckpointError,
    CheckpointFailureReason,
    CheckpointStorageError,
    CorruptCheckpointError,
    TooManyFailedCheckpointsError,
)
from streamlet.state.errors import StreamletError

R = CheckpointFailureReason


def test_messages_are_distinct_values():
    assert len({r.value for r in R}) == len(R)
    assert R.CHECKPOINT_EXPIRED.message == "Checkpoint expired before completing."


def test_pre_flight_reasons():
    assert R.TOO_MANY_CONCURRENT_CHECKPOINTS.pre_flight
    assert R.MINIMUM_TIME_BETWEEN_CHECKPOINTS.pre_flight
    assert not R.CHECKPOINT_EXPIRED.pre_flight
    assert not R.CHECKPOINT_DECLINED.pre_flight


@pytest.mark.parametrize(
    "reason",
    [
        R.CHECKPOINT_EXPIRED,
        R.CHECKPOINT_DECLINED,
        R.CHECKPOINT_ASYNC_EXCEPTION,
        R.STORAGE_FAILURE,
        R.FINALIZE_CHECKPOINT_FAILURE,
    ],
)
def test_counted_reasons(reason):
    assert reason.counts_as_failure


@pytest.mark.parametrize(
    "reason",
    [
        R.CHECKPOINT_SUBSUMED,
        R.CHECKPOINT_DECLINED_SUBSUMED,
        R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER,
        R.CHECKPOINT_DECLINED_INPUT_END_OF_STREAM,
        R.CHECKPOINT_COORDINATOR_SHUTDOWN,
        R.JOB_FAILOVER_REGION,
        R.TASK_FAILURE,
        R.TOO_MANY_CONCURRENT_CHECKPOINTS,
    ],
)
def test_not_counted_reasons(reason):
    assert not reason.counts_as_failure


def test_error_tree_and_messages():
    err = CheckpointError(R.CHECKPOINT_EXPIRED, 7, "after 10 ms")
    assert isinstance(err, StreamletError)
    assert str(err) == "checkpoint 7 failed: Checkpoint expired before completing. after 10 ms"
    storage = CheckpointStorageError("/x/chk-1", "No space left on device (ENOSPC)")
    assert storage.reason is R.STORAGE_FAILURE and storage.path == "/x/chk-1"
    assert "/x/chk-1: No space left on device (ENOSPC)" in str(storage)
    corrupt = CorruptCheckpointError("/x/_metadata", "checksum mismatch")
    assert isinstance(corrupt, CheckpointError)
    assert str(corrupt).endswith("/x/_metadata: checksum mismatch")


def test_too_many_failures_says_why():
    err = TooManyFailedCheckpointsError(R.CHECKPOINT_EXPIRED, 3, 2, 9, "after 10 ms")
    assert err.reason is R.CHECKPOINT_EXPIRED
    assert str(err) == (
        "Exceeded checkpoint tolerable failure threshold: 3 consecutive failed checkpoints, "
        "2 tolerated; last failure: checkpoint 9 failed: Checkpoint expired before completing. "
        "after 10 ms"
    )
