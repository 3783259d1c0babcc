"""Bookkeeping for one checkpoint between its trigger and its completion or abort.

Mirrors Flink's ``PendingCheckpoint``: the set of subtasks that have not acknowledged yet, the
state handles collected so far, and one :meth:`PendingCheckpoint.abort` path that takes a
reason. Acknowledgements return an :class:`AckResult` instead of raising, so a duplicate or
late message is data, not an error. A pending checkpoint knows nothing about storage or
subtasks; the coordinator does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

import anyio

from .completed import CompletedCheckpoint
from .errors import CheckpointError, CheckpointFailureReason
from .events import CheckpointKind
from .metadata import StateHandle
from .stats import SubtaskCheckpointStats

__all__ = ["AckResult", "CheckpointOutcome", "PendingCheckpoint", "TaskId"]

TaskId = tuple[str, int]
"""A subtask: (chain/vertex id, subtask index)."""

CheckpointOutcome = CompletedCheckpoint | CheckpointError
"""How a checkpoint ended: completed, or failed with a reason."""


class AckResult(Enum):
    """What became of an acknowledgement (Flink's ``TaskAcknowledgeResult``)."""

    SUCCESS = "success"
    """Accepted: the subtask had not acknowledged before."""
    DUPLICATE = "duplicate"
    """The subtask already acknowledged this checkpoint."""
    UNKNOWN = "unknown"
    """No such subtask in this checkpoint, or no such checkpoint."""
    DISCARDED = "discarded"
    """The checkpoint already ended (aborted or completed): a late message."""


class PendingCheckpoint:
    """One triggered checkpoint waiting for acknowledgements.

    :param checkpoint_id: its id
    :param kind: checkpoint or savepoint
    :param trigger_timestamp_ms: wall-clock trigger time (goes into the barrier and metadata)
    :param trigger_time_s: monotonic trigger time (for the timeout)
    :param tasks_to_ack: every subtask that must acknowledge
    :param location: where its files go
    """

    def __init__(
        self,
        checkpoint_id: int,
        kind: CheckpointKind,
        trigger_timestamp_ms: int,
        trigger_time_s: float,
        tasks_to_ack: Iterable[TaskId],
        location: str,
    ) -> None:
        self.checkpoint_id = checkpoint_id
        self.kind = kind
        self.trigger_timestamp_ms = trigger_timestamp_ms
        self.trigger_time_s = trigger_time_s
        self.location = location
        self.not_yet_acknowledged: set[TaskId] = set(tasks_to_ack)
        self.acknowledged: set[TaskId] = set()
        self.handles: list[StateHandle] = []
        self.subtask_stats: dict[TaskId, SubtaskCheckpointStats] = {}
        # Invariant: once set, no acknowledgement is accepted any more.
        self.failure: CheckpointError | None = None
        self._outcome: CheckpointOutcome | None = None
        self._done: anyio.Event | None = None

    @property
    def num_subtasks(self) -> int:
        """How many subtasks must acknowledge in total."""
        return len(self.not_yet_acknowledged) + len(self.acknowledged)

    @property
    def is_fully_acknowledged(self) -> bool:
        """True once every subtask acknowledged (and the checkpoint was not aborted)."""
        return not self.not_yet_acknowledged and self.failure is None

    @property
    def is_disposed(self) -> bool:
        """True once aborted or completed."""
        return self.failure is not None or self._outcome is not None

    def acknowledge(
        self,
        task: TaskId,
        handles: Sequence[StateHandle] = (),
        stats: SubtaskCheckpointStats | None = None,
    ) -> AckResult:
        """Record that ``task`` wrote its state for this checkpoint."""
        if self.is_disposed:
            return AckResult.DISCARDED
        if task in self.not_yet_acknowledged:
            self.not_yet_acknowledged.remove(task)
            self.acknowledged.add(task)
            self.handles.extend(handles)
            if stats is not None:
                self.subtask_stats[task] = stats
            return AckResult.SUCCESS
        if task in self.acknowledged:
            return AckResult.DUPLICATE
        return AckResult.UNKNOWN

    def abort(self, reason: CheckpointFailureReason, detail: str | None = None) -> bool:
        """Mark the checkpoint failed; return False if it had already ended.

        Waiters of :meth:`wait` get a :class:`CheckpointError` with ``reason``.
        """
        if self.is_disposed:
            return False
        self.failure = CheckpointError(reason, self.checkpoint_id, detail)
        self._finish(self.failure)
        return True

    def complete(self, checkpoint: CompletedCheckpoint) -> None:
        """Mark the checkpoint completed (its ``_metadata`` is written)."""
        if self.is_disposed:
            raise ValueError(f"checkpoint {self.checkpoint_id} already ended")
        self._finish(checkpoint)

    @property
    def outcome(self) -> CheckpointOutcome | None:
        """The completed checkpoint or the failure, once it ended."""
        return self._outcome

    async def wait(self) -> CompletedCheckpoint:
        """Wait until the checkpoint ends; return it if it completed.

        :raises CheckpointError: if it was aborted
        """
        if self._outcome is None:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()
        assert self._outcome is not None
        outcome = self._outcome
        if isinstance(outcome, CheckpointError):
            # A fresh exception per waiter: one instance raised in several tasks would
            # collect all their tracebacks.
            raise CheckpointError(outcome.reason, outcome.checkpoint_id, outcome.detail)
        return outcome

    def _finish(self, outcome: CheckpointOutcome) -> None:
        self._outcome = outcome
        if self._done is not None:
            self._done.set()

    def __repr__(self) -> str:
        return (
            f"<PendingCheckpoint {self.checkpoint_id} {self.kind.value} "
            f"{len(self.acknowledged)}/{self.num_subtasks} acknowledged>"
        )
