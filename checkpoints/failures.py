"""Counting consecutive checkpoint failures (Flink's ``CheckpointFailureManager``).

Only some reasons count (see :attr:`CheckpointFailureReason.counts_as_failure`): expiry,
storage and asynchronous-phase failures, generic declines, failing to write ``_metadata``.
Subsumption, shutdown and failover never count. Each checkpoint counts at most once, a
failure of a checkpoint older than the last completed one does not count, and savepoints do
not count (their caller learns of the failure directly). A completed checkpoint resets the
count. More than ``tolerable`` consecutive counted failures mean the job must fail over.
"""

from __future__ import annotations

from .errors import CheckpointFailureReason, TooManyFailedCheckpointsError
from .events import CheckpointKind

__all__ = ["FailureTolerance"]


class FailureTolerance:
    """Count consecutive counted checkpoint failures against a tolerance.

    :param tolerable: consecutive counted failures the job survives
    """

    def __init__(self, tolerable: int) -> None:
        self.tolerable = tolerable
        self.consecutive = 0
        self._counted: set[int] = set()
        self._last_completed = 0

    def record(
        self,
        reason: CheckpointFailureReason,
        checkpoint_id: int,
        kind: CheckpointKind = CheckpointKind.CHECKPOINT,
        detail: str | None = None,
    ) -> TooManyFailedCheckpointsError | None:
        """Record a failure; return the error to fail the job with if the tolerance is exceeded.

        The error is returned once, when the count first exceeds the tolerance.
        """
        if (
            not reason.counts_as_failure
            or kind is not CheckpointKind.CHECKPOINT
            or checkpoint_id <= self._last_completed
            or checkpoint_id in self._counted
        ):
            return None
        self._counted.add(checkpoint_id)
        self.consecutive += 1
        if self.consecutive == self.tolerable + 1:
            return TooManyFailedCheckpointsError(
                reason, self.consecutive, self.tolerable, checkpoint_id, detail
            )
        return None

    def record_success(self, checkpoint_id: int) -> None:
        """A checkpoint completed: reset the count."""
        self._last_completed = max(self._last_completed, checkpoint_id)
        self.reset()

    def reset(self) -> None:
        """Forget every failure counted so far (after a failover, for instance)."""
        self.consecutive = 0
        self._counted.clear()
