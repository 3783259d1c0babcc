"""Why checkpoints fail, as data, and the few errors the checkpoint layer raises.

Our exception hierarchy (this package's part of it)::

    StreamletError                       (state.errors)
    └── CheckpointError                  a checkpoint failed; carries a CheckpointFailureReason
        ├── CheckpointStorageError       reading or writing checkpoint storage failed (OSError)
        ├── CorruptCheckpointError       stored checkpoint data is damaged or incomplete
        └── TooManyFailedCheckpointsError  consecutive failures exceeded the tolerance

Most checkpoint failures are *not* raised: a declined, expired or subsumed checkpoint is a
:class:`CheckpointFailureReason` recorded by the coordinator (Flink's ``CheckpointFailureReason``).
Exceptions are for the boundaries: storage I/O, reading damaged data, and failing the job.
"""

from __future__ import annotations

from enum import Enum

from streamlet.state.errors import StreamletError

__all__ = [
    "CheckpointError",
    "CheckpointFailureReason",
    "CheckpointStorageError",
    "CorruptCheckpointError",
    "TooManyFailedCheckpointsError",
]


class CheckpointFailureReason(Enum):
    """Why a checkpoint was not triggered or did not complete; the value is the message.

    ``pre_flight`` reasons refuse a trigger before any barrier is sent; they consume no
    checkpoint id. ``counts_as_failure`` says whether the reason counts towards
    ``tolerable_failed_checkpoints`` (Flink counts storage errors, asynchronous-phase errors,
    generic declines and expiration; never subsumption, shutdown or failover).
    """

    # --- pre-flight: refused at trigger time ---
    TOO_MANY_CONCURRENT_CHECKPOINTS = "The maximum number of concurrent checkpoints is exceeded."
    MINIMUM_TIME_BETWEEN_CHECKPOINTS = (
        "The minimum time between checkpoints is still pending. Checkpoint will be triggered "
        "after the minimum time."
    )
    CHECKPOINT_COORDINATOR_SHUTDOWN = "The checkpoint coordinator is shut down."
    CHECKPOINT_COORDINATOR_SUSPEND = (
        "The checkpoint coordinator is suspended: the job is failing over."
    )
    TRIGGER_CHECKPOINT_FAILURE = "Trigger checkpoint failure."

    # --- in flight: the checkpoint was triggered and then failed ---
    CHECKPOINT_EXPIRED = "Checkpoint expired before completing."
    CHECKPOINT_SUBSUMED = "Checkpoint has been subsumed."
    CHECKPOINT_DECLINED = "Checkpoint was declined."
    CHECKPOINT_DECLINED_TASK_NOT_READY = "Checkpoint was declined (tasks not ready)."
    CHECKPOINT_DECLINED_TASK_CLOSING = "Checkpoint was declined (task is closing)."
    CHECKPOINT_DECLINED_SUBSUMED = (
        "Checkpoint was canceled because a barrier from newer checkpoint was received."
    )
    CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER = (
        "Task received cancellation from one of its inputs."
    )
    CHECKPOINT_DECLINED_INPUT_END_OF_STREAM = (
        "Checkpoint was declined because one input stream is finished."
    )
    TASK_CHECKPOINT_FAILURE = "Task local checkpoint failure (synchronous phase)."
    CHECKPOINT_ASYNC_EXCEPTION = "Asynchronous task checkpoint failed."
    STORAGE_FAILURE = "An Exception occurred while accessing the checkpoint storage."
    FINALIZE_CHECKPOINT_FAILURE = "Failure to finalize checkpoint."
    JOB_FAILOVER_REGION = "The job is failing over: the checkpoint was aborted."
    TASK_FAILURE = "Task has failed."

    # --- restore time ---
    CORRUPT_CHECKPOINT = "The stored checkpoint is corrupt or incomplete."

    @property
    def message(self) -> str:
        """The human-readable message (the same as ``value``)."""
        return self.value

    @property
    def pre_flight(self) -> bool:
        """True if the checkpoint was refused before any barrier was sent."""
        return self in _PRE_FLIGHT

    @property
    def counts_as_failure(self) -> bool:
        """True if this reason counts towards ``tolerable_failed_checkpoints``."""
        return self in _COUNTED


_PRE_FLIGHT = frozenset(
    {
        CheckpointFailureReason.TOO_MANY_CONCURRENT_CHECKPOINTS,
        CheckpointFailureReason.MINIMUM_TIME_BETWEEN_CHECKPOINTS,
        CheckpointFailureReason.CHECKPOINT_COORDINATOR_SHUTDOWN,
        CheckpointFailureReason.CHECKPOINT_COORDINATOR_SUSPEND,
        CheckpointFailureReason.TRIGGER_CHECKPOINT_FAILURE,
    }
)

_COUNTED = frozenset(
    {
        CheckpointFailureReason.CHECKPOINT_EXPIRED,
        CheckpointFailureReason.CHECKPOINT_DECLINED,
        CheckpointFailureReason.CHECKPOINT_ASYNC_EXCEPTION,
        CheckpointFailureReason.STORAGE_FAILURE,
        CheckpointFailureReason.FINALIZE_CHECKPOINT_FAILURE,
    }
)


class CheckpointError(StreamletError):
    """A checkpoint failed, or checkpoint data could not be used.

    :param reason: why, as data
    :param checkpoint_id: the checkpoint concerned, if known
    :param detail: the cause in words (an exception message, the operator that declined, ...)
    """

    def __init__(
        self,
        reason: CheckpointFailureReason,
        checkpoint_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = reason
        self.checkpoint_id = checkpoint_id
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = "checkpoint" if self.checkpoint_id is None else f"checkpoint {self.checkpoint_id}"
        text = f"{head} failed: {self.reason.value}"
        return f"{text} {self.detail}" if self.detail else text


class CheckpointStorageError(CheckpointError):
    """Reading or writing checkpoint storage failed (permission denied, disk full, ...).

    Raised by storage implementations in place of the ``OSError`` they got, which is kept
    as ``__cause__``.

    :param path: the file or directory that could not be used
    :param detail: what went wrong, e.g. ``"No space left on device (ENOSPC)"`` (kept
        without the path in ``detail``; the message has both)
    """

    def __init__(self, path: str, detail: str, *, checkpoint_id: int | None = None) -> None:
        super().__init__(
            CheckpointFailureReason.STORAGE_FAILURE, checkpoint_id, f"{path}: {detail}"
        )
        self.path = path
        self.detail: str = detail


class CorruptCheckpointError(CheckpointError):
    """Stored checkpoint data is damaged or incomplete: bad magic, truncated, checksum mismatch.

    :param path: the damaged file (or the checkpoint directory, if a file is missing)
    :param detail: what is wrong with it (kept without the path in ``detail``)
    """

    def __init__(self, path: str, detail: str, *, checkpoint_id: int | None = None) -> None:
        super().__init__(
            CheckpointFailureReason.CORRUPT_CHECKPOINT, checkpoint_id, f"{path}: {detail}"
        )
        self.path = path
        self.detail: str = detail


class TooManyFailedCheckpointsError(CheckpointError):
    """More consecutive checkpoints failed than ``tolerable_failed_checkpoints`` allows.

    The job must fail over. ``reason`` is the reason of the last failure, so the message says
    why checkpoints are failing, not only that they are.

    :param last_reason: the reason of the failure that exceeded the tolerance
    :param failures: consecutive counted failures so far
    :param tolerable: the configured tolerance
    :param checkpoint_id: the checkpoint whose failure exceeded it
    :param detail: the detail of that last failure
    """

    def __init__(
        self,
        last_reason: CheckpointFailureReason,
        failures: int,
        tolerable: int,
        checkpoint_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.failures = failures
        self.tolerable = tolerable
        super().__init__(last_reason, checkpoint_id, detail)

    def _describe(self) -> str:
        last = super()._describe()
        return (
            f"Exceeded checkpoint tolerable failure threshold: {self.failures} consecutive "
            f"failed checkpoints, {self.tolerable} tolerated; last failure: {last}"
        )
