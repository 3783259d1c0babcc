"""The final checkpoint of one attempt (Flink's FLIP-147), as one state machine.

A bounded job with checkpointing must not end before a checkpoint taken after the end of
all input completed: two-phase-commit sinks commit their last transactions on that
completion. The protocol touches the runner (which triggers and retries), each
coordinator-triggered subtask (which waits once its input ended) and each subtask's
checkpointer (which sees the completion notifications); its state lives here only, and
those three call the ``on_*`` inputs below.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import anyio

from streamlet.checkpoints.errors import CheckpointFailureReason
from streamlet.checkpoints.pending import TaskId
from streamlet.state.errors import StreamletInternalError

__all__ = ["FinalCheckpoint", "FinalCheckpointFailure", "FinalCheckpointState"]


class FinalCheckpointState(enum.Enum):
    """Where one attempt's final checkpoint stands."""

    #: Periodic checkpoints are off: subtasks end as soon as their input ends.
    DISABLED = "disabled"
    #: Some coordinator-triggered subtask has not read all its input yet.
    WAITING_FOR_END_OF_INPUT = "waiting for end of input"
    #: Every such subtask finished its input; no final checkpoint is in flight.
    WAITING_FOR_TRIGGER = "waiting for trigger"
    #: The final checkpoint ``checkpoint_id`` is in flight.
    TRIGGERED = "triggered"
    #: It completed; each finished subtask is released when its notification reaches it.
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class FinalCheckpointFailure:
    """One failed try of the final checkpoint, kept as data (the runner retries).

    ``checkpoint_id`` is None when the trigger itself was refused.
    """

    checkpoint_id: int | None
    reason: CheckpointFailureReason | str


class FinalCheckpoint:
    """The final checkpoint of one attempt: the whole FLIP-147 protocol in one place.

    When checkpointing is on, a subtask that gets its barriers from the coordinator (a
    source, or a subtask no channel reaches) does not end when its input ends: it keeps
    answering checkpoint triggers with its final positions until a checkpoint triggered
    after *every* such subtask finished completes, so that two-phase-commit sinks commit
    everything before end of partition runs through the job. A subtask is released when
    the completion notification reaches *it* (not when it reaches any subtask), so each
    chain's operators are notified before their ``end_input`` runs.

    It is a synchronous state machine (inputs ``on_*``, no I/O); the runner drives the
    triggering and the subtasks poll :meth:`is_released` from their mailbox loop. The one
    awaitable, :meth:`wait_end_of_input`, is how the runner learns that it may trigger.

    :param tasks: the coordinator-triggered subtasks (from deploy)
    :param enabled: whether periodic checkpointing is on
    """

    def __init__(self, tasks: Iterable[TaskId], *, enabled: bool) -> None:
        self._tasks = frozenset(tasks)
        self._enabled = enabled
        # Invariant: _finished <= _tasks and _released <= _finished.
        self._finished: set[TaskId] = set()
        self._released: set[TaskId] = set()
        self._end_of_input = anyio.Event()
        self.checkpoint_id: int | None = None
        self._completed = False
        #: Every failed try, oldest first.
        self.failures: list[FinalCheckpointFailure] = []
        if not self._tasks:
            self._end_of_input.set()

    @property
    def state(self) -> FinalCheckpointState:
        if not self._enabled:
            return FinalCheckpointState.DISABLED
        if self._completed:
            return FinalCheckpointState.COMPLETED
        if self.checkpoint_id is not None:
            return FinalCheckpointState.TRIGGERED
        if self._end_of_input.is_set():
            return FinalCheckpointState.WAITING_FOR_TRIGGER
        return FinalCheckpointState.WAITING_FOR_END_OF_INPUT

    def waits(self, task: TaskId) -> bool:
        """Whether subtask ``task``, once its input ended, waits to be released."""
        return self._enabled and task in self._tasks

    def on_end_of_input(self, task: TaskId) -> None:
        """Subtask ``task`` read all its input; it waits for release from now on."""
        if not self.waits(task):
            raise StreamletInternalError(f"subtask {task} does not wait for a final checkpoint")
        self._finished.add(task)
        if self._finished == self._tasks:
            self._end_of_input.set()

    async def wait_end_of_input(self) -> None:
        """Wait until every coordinator-triggered subtask read all its input."""
        await self._end_of_input.wait()

    def on_triggered(self, checkpoint_id: int) -> None:
        """The runner triggered ``checkpoint_id`` as the final checkpoint (again, on retry)."""
        assert self._end_of_input.is_set(), "final checkpoint triggered before end of input"
        self.checkpoint_id = checkpoint_id

    def on_failed(self, checkpoint_id: int | None, reason: CheckpointFailureReason | str) -> None:
        """A try failed (``checkpoint_id`` None: the trigger was refused); it is retried."""
        self.failures.append(FinalCheckpointFailure(checkpoint_id, reason))

    def on_completed(self) -> None:
        """The coordinator completed the final checkpoint."""
        self._completed = True

    def on_notify_complete(self, task: TaskId, checkpoint_id: int) -> None:
        """Subtask ``task`` was notified of completed ``checkpoint_id`` (subsuming ids)."""
        final = self.checkpoint_id
        if task in self._finished and final is not None and checkpoint_id >= final:
            self._released.add(task)

    def is_released(self, task: TaskId) -> bool:
        """Whether finished subtask ``task`` may end now (the final checkpoint reached it)."""
        return task in self._released
