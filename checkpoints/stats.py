"""Checkpoint statistics: per checkpoint, per subtask, and a bounded history.

Field names follow Flink's REST ``CheckpointStatistics`` / ``SubtaskCheckpointStatistics``
(FLINK-REFERENCE A16), with units in the name. The coordinator feeds a
:class:`CheckpointStatsTracker`; readers get immutable snapshots from
:meth:`CheckpointStatsTracker.statistics`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

from .errors import CheckpointFailureReason
from .events import CheckpointKind

__all__ = [
    "CheckpointStats",
    "CheckpointStatsSnapshot",
    "CheckpointStatsTracker",
    "CheckpointStatus",
    "SubtaskCheckpointStats",
]


class CheckpointStatus(Enum):
    """Where a checkpoint is in its life."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SubtaskCheckpointStats:
    """What one subtask reports with its acknowledgement.

    :param operator: the chain (vertex) id
    :param subtask_index: the subtask
    :param ack_timestamp_ms: wall-clock time of the acknowledgement (0 if unknown)
    :param sync_duration_ms: the synchronous part of the snapshot
    :param async_duration_ms: serializing and writing
    :param alignment_duration_ms: first barrier to last barrier (0 without alignment)
    :param start_delay_ms: trigger to the first barrier at this subtask (backpressure)
    :param state_size: bytes written
    :param persisted_data: bytes of in-flight records kept as channel state (Flink's
        "Persisted in-flight data", ``alignment.persisted``)
    :param unaligned_checkpoint: whether this subtask took the checkpoint unaligned
    """

    operator: str
    subtask_index: int
    ack_timestamp_ms: int = 0
    sync_duration_ms: float = 0.0
    async_duration_ms: float = 0.0
    alignment_duration_ms: float = 0.0
    start_delay_ms: float = 0.0
    state_size: int = 0
    persisted_data: int = 0
    unaligned_checkpoint: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CheckpointStats:
    """One checkpoint's statistics at one moment."""

    checkpoint_id: int
    kind: CheckpointKind
    status: CheckpointStatus
    trigger_timestamp_ms: int
    num_subtasks: int
    num_acknowledged_subtasks: int = 0
    latest_ack_timestamp_ms: int | None = None
    end_to_end_duration_ms: float | None = None
    state_size: int = 0
    #: Bytes the checkpoint wrote itself (Flink's ``checkpointed_size``): less than
    #: ``state_size`` for an incremental checkpoint, which shares pieces of earlier ones.
    checkpointed_size: int | None = None
    external_path: str | None = None
    failure_reason: CheckpointFailureReason | None = None
    failure_message: str | None = None
    failure_timestamp_ms: int | None = None
    subtasks: tuple[SubtaskCheckpointStats, ...] = ()
    #: Bytes of in-flight records kept as channel state, over all subtasks (Flink's
    #: ``persisted_data``); 0 for an aligned checkpoint.
    persisted_data: int = 0
    #: Whether some subtask took it unaligned (Flink's ``is_unaligned``).
    unaligned: bool = False

    @property
    def is_savepoint(self) -> bool:
        """True for a savepoint."""
        return self.kind is CheckpointKind.SAVEPOINT

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (enums as their names)."""
        return {
            "id": self.checkpoint_id,
            "status": self.status.value,
            "is_savepoint": self.is_savepoint,
            "checkpoint_type": self.kind.name,
            "trigger_timestamp_ms": self.trigger_timestamp_ms,
            "latest_ack_timestamp_ms": self.latest_ack_timestamp_ms,
            "end_to_end_duration_ms": self.end_to_end_duration_ms,
            "state_size": self.state_size,
            "checkpointed_size": (
                self.state_size if self.checkpointed_size is None else self.checkpointed_size
            ),
            "num_subtasks": self.num_subtasks,
            "num_acknowledged_subtasks": self.num_acknowledged_subtasks,
            "external_path": self.external_path,
            "failure_reason": None if self.failure_reason is None else self.failure_reason.name,
            "failure_message": self.failure_message,
            "failure_timestamp_ms": self.failure_timestamp_ms,
            "persisted_data": self.persisted_data,
            "is_unaligned": self.unaligned,
            "subtasks": [s.to_dict() for s in self.subtasks],
        }


@dataclass(frozen=True, slots=True)
class CheckpointStatsSnapshot:
    """Counts, latest checkpoints and recent history: the job's checkpoint overview."""

    triggered: int
    in_progress: int
    completed: int
    failed: int
    restored_checkpoint_id: int | None
    latest_completed: CheckpointStats | None
    latest_failed: CheckpointStats | None
    latest_savepoint: CheckpointStats | None
    history: tuple[CheckpointStats, ...]
    """Newest first: in-progress ones, then finished ones."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""

        def one(stats: CheckpointStats | None) -> dict[str, Any] | None:
            return None if stats is None else stats.to_dict()

        return {
            "counts": {
                "triggered": self.triggered,
                "in_progress": self.in_progress,
                "completed": self.completed,
                "failed": self.failed,
            },
            "restored_checkpoint_id": self.restored_checkpoint_id,
            "latest": {
                "completed": one(self.latest_completed),
                "failed": one(self.latest_failed),
                "savepoint": one(self.latest_savepoint),
            },
            "history": [s.to_dict() for s in self.history],
        }


@dataclass(slots=True)
class _InProgress:
    checkpoint_id: int
    kind: CheckpointKind
    trigger_timestamp_ms: int
    num_subtasks: int
    subtasks: list[SubtaskCheckpointStats] = field(default_factory=list)
    latest_ack_timestamp_ms: int | None = None

    def freeze(self) -> CheckpointStats:
        return CheckpointStats(
            checkpoint_id=self.checkpoint_id,
            kind=self.kind,
            status=CheckpointStatus.IN_PROGRESS,
            trigger_timestamp_ms=self.trigger_timestamp_ms,
            num_subtasks=self.num_subtasks,
            num_acknowledged_subtasks=len(self.subtasks),
            latest_ack_timestamp_ms=self.latest_ack_timestamp_ms,
            state_size=sum(s.state_size for s in self.subtasks),
            subtasks=tuple(self.subtasks),
            persisted_data=sum(s.persisted_data for s in self.subtasks),
            unaligned=any(s.unaligned_checkpoint for s in self.subtasks),
        )


class CheckpointStatsTracker:
    """Collect checkpoint statistics as the coordinator reports them.

    :param history_size: finished checkpoints kept in the history (oldest dropped first)
    """

    def __init__(self, history_size: int = 100) -> None:
        self._history: deque[CheckpointStats] = deque(maxlen=history_size)
        self._in_progress: dict[int, _InProgress] = {}
        self._triggered = 0
        self._completed = 0
        self._failed = 0
        self._restored: int | None = None
        self._latest_completed: CheckpointStats | None = None
        self._latest_failed: CheckpointStats | None = None
        self._latest_savepoint: CheckpointStats | None = None

    def report_restored(self, checkpoint_id: int) -> None:
        """Record that the job restored from ``checkpoint_id``."""
        self._restored = checkpoint_id

    def report_pending(
        self, checkpoint_id: int, kind: CheckpointKind, trigger_timestamp_ms: int, num_subtasks: int
    ) -> None:
        """Record a newly triggered checkpoint."""
        self._triggered += 1
        self._in_progress[checkpoint_id] = _InProgress(
            checkpoint_id, kind, trigger_timestamp_ms, num_subtasks
        )

    def report_ack(self, checkpoint_id: int, stats: SubtaskCheckpointStats) -> None:
        """Record one subtask's acknowledgement (ignored for unknown ids)."""
        entry = self._in_progress.get(checkpoint_id)
        if entry is not None:
            entry.subtasks.append(stats)
            if stats.ack_timestamp_ms:
                entry.latest_ack_timestamp_ms = max(
                    entry.latest_ack_timestamp_ms or 0, stats.ack_timestamp_ms
                )

    def report_completed(
        self,
        checkpoint_id: int,
        end_to_end_duration_ms: float,
        state_size: int,
        external_path: str,
        checkpointed_size: int | None = None,
    ) -> CheckpointStats | None:
        """Record a completion; return its final statistics."""
        entry = self._in_progress.pop(checkpoint_id, None)
        if entry is None:
            return None
        stats = replace(
            entry.freeze(),
            status=CheckpointStatus.COMPLETED,
            end_to_end_duration_ms=end_to_end_duration_ms,
            state_size=state_size,
            checkpointed_size=checkpointed_size,
            external_path=external_path,
        )
        self._completed += 1
        self._history.append(stats)
        if stats.is_savepoint:
            self._latest_savepoint = stats
        else:
            self._latest_completed = stats
        return stats

    def report_failed(
        self,
        checkpoint_id: int,
        reason: CheckpointFailureReason,
        message: str,
        failure_timestamp_ms: int,
        end_to_end_duration_ms: float,
    ) -> CheckpointStats | None:
        """Record a failure; return its final statistics."""
        entry = self._in_progress.pop(checkpoint_id, None)
        if entry is None:
            return None
        stats = replace(
            entry.freeze(),
            status=CheckpointStatus.FAILED,
            end_to_end_duration_ms=end_to_end_duration_ms,
            failure_reason=reason,
            failure_message=message,
            failure_timestamp_ms=failure_timestamp_ms,
        )
        self._failed += 1
        self._history.append(stats)
        self._latest_failed = stats
        return stats

    def statistics(self) -> CheckpointStatsSnapshot:
        """Return an immutable overview: counts, latest ones, history (newest first)."""
        in_progress = [
            e.freeze() for e in sorted(self._in_progress.values(), key=lambda e: -e.checkpoint_id)
        ]
        return CheckpointStatsSnapshot(
            triggered=self._triggered,
            in_progress=len(self._in_progress),
            completed=self._completed,
            failed=self._failed,
            restored_checkpoint_id=self._restored,
            latest_completed=self._latest_completed,
            latest_failed=self._latest_failed,
            latest_savepoint=self._latest_savepoint,
            history=(*in_progress, *reversed(self._history)),
        )
