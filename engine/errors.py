"""Errors a job can raise, and the whole tree in one picture.

Our exception hierarchy::

    StreamletError                      (state.errors; root of everything raised on purpose)
    ├── StreamletInternalError          a bug in streamlet itself
    ├── StateError                      misuse of state
    │   └── StateSerializationError     a state value cannot be (de)serialized
    ├── CheckpointError(reason)         a checkpoint failed (checkpoints.errors)
    │   ├── CheckpointStorageError      the storage failed (path, cause)
    │   ├── CorruptCheckpointError      a checkpoint on disk is damaged (path, detail)
    │   └── TooManyFailedCheckpointsError   more consecutive failures than tolerated
    ├── JobExecutionError               the job failed; ``__cause__`` is why (a subtask's
    │                                   exception, or the checkpoint error that failed it)
    ├── JobCancelledError               the job was cancelled through its JobClient
    └── JobGraphError                   the job graph cannot run as built

Bad arguments to API calls raise the built-in ``ValueError`` / ``TypeError`` at the call,
with a message naming the parameter and the value received.
"""

from __future__ import annotations

from streamlet.state.errors import StreamletError

__all__ = ["JobCancelledError", "JobExecutionError", "JobGraphError"]


class JobExecutionError(StreamletError):
    """A subtask of the job failed; the original exception is ``__cause__``.

    :param operator_name: display name of the failing operator
    :param operator_uid: uid of the failing operator
    :param subtask_index: 0-based index of the failing subtask
    :param parallelism: number of subtasks of that operator
    :param attempt: attempt of the job (0 = first run, +1 per restart)
    :param job_name: name of the job
    """

    def __init__(
        self,
        operator_name: str,
        operator_uid: str,
        subtask_index: int,
        parallelism: int,
        *,
        attempt: int = 0,
        job_name: str = "",
        detail: str | None = None,
    ) -> None:
        self.operator_name = operator_name
        self.operator_uid = operator_uid
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.attempt = attempt
        self.job_name = job_name
        self.detail = detail
        where = (
            f" in operator {operator_name!r} (uid {operator_uid!r}), "
            f"subtask {subtask_index + 1}/{parallelism}"
            if operator_uid
            else ""
        )
        super().__init__(f"job {job_name!r} failed{where}" + (f": {detail}" if detail else ""))

    @classmethod
    def of_job(cls, job_name: str, cause: BaseException, *, attempt: int = 0) -> JobExecutionError:
        """A failure of the job as a whole, not of one subtask (its checkpoints failed, its
        storage is unusable): no operator is named (``operator_uid`` is ``""``) and ``cause``
        is chained as ``__cause__``."""
        error = cls("", "", 0, 1, attempt=attempt, job_name=job_name)
        error.__cause__ = cause
        return error

    def __str__(self) -> str:
        text = self.args[0]
        cause = self.__cause__
        if cause is not None and self.detail is None:
            text += f": {type(cause).__name__}: {cause}"
        return text


class JobCancelledError(StreamletError):
    """The job was cancelled through :meth:`JobClient.cancel` before it finished."""


class JobGraphError(StreamletError):
    """The job graph cannot run as built (for example it has no sink or no source)."""
