"""What a job is (``JobStatus``) and what a finished job returns (``JobExecutionResult``).

Apart from the client so that the runner, which produces both, and the client, which
drives the runner, do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["JobExecutionResult", "JobStatus"]


class JobStatus(Enum):
    """Flink's job states, as far as a single process has them."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    FAILING = "FAILING"
    FINISHED = "FINISHED"
    CANCELLING = "CANCELLING"
    CANCELED = "CANCELED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.FINISHED, JobStatus.CANCELED, JobStatus.FAILED)


@dataclass(frozen=True, slots=True)
class JobExecutionResult:
    """What ``execute`` returns for a job that finished.

    :param job_id: unique id of this run
    :param job_name: the name passed to execute
    :param net_runtime_ms: wall time from start to finish
    :param restart_count: how many times the job restarted after failures
    :param records_in: records read by all subtasks' inputs (sources count what they read)
    :param checkpoints_completed: checkpoints (and savepoints) completed during the run
    :param savepoint_path: where ``stop_with_savepoint`` wrote its savepoint, if it ended the job
    :param restored_from: the location (directory, or ``memory://`` location) of the checkpoint
        or savepoint the last attempt restored its state from: the one ``restore=`` named at
        start, or, after a failover, the newest completed checkpoint or savepoint; ``None`` if
        the last attempt started from empty state
    """

    job_id: str
    job_name: str
    net_runtime_ms: float
    restart_count: int = 0
    records_in: int = 0
    checkpoints_completed: int = 0
    savepoint_path: str | None = None
    restored_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get_net_runtime(self) -> float:
        return self.net_runtime_ms

    def get_job_id(self) -> str:
        return self.job_id
