"""Where checkpoints are stored: the contract, and the choice from configuration.

Two implementations keep this contract: :class:`~checkpoints.file_storage.FileCheckpointStorage`
(the filesystem; temporary file, fsync, rename) and
:class:`~checkpoints.memory_storage.MemoryCheckpointStorage` (a dict; tests and small jobs).
The contract tests in ``tests/checkpoints/test_storage.py`` run against both.

Who calls what:

- the coordinator: :meth:`~CheckpointStorage.next_checkpoint_id` and
  :meth:`~CheckpointStorage.begin_checkpoint` at trigger time (savepoints pass a target
  directory there, so subtasks need not know where a savepoint goes),
  :meth:`~CheckpointStorage.write_metadata` when every subtask acknowledged,
  :meth:`~CheckpointStorage.discard` on abort and retention;
- subtasks (through :func:`~checkpoints.snapshotter.write_subtask_snapshot`):
  :meth:`~CheckpointStorage.write_state_file`, and
  :meth:`~CheckpointStorage.delete_state_file` to clean up a cancelled snapshot;
- the engine on restore: :meth:`~CheckpointStorage.find_latest` (falls back past damaged
  checkpoints), :meth:`~CheckpointStorage.load_checkpoint` (by id or path) and
  :meth:`~CheckpointStorage.read_state_file` (optionally only some key groups).

Every I/O failure surfaces as :class:`~checkpoints.errors.CheckpointStorageError` naming the
path; damaged data as :class:`~checkpoints.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from state.key_groups import KeyGroupRange

from .completed import CompletedCheckpoint
from .config import JobManagerCheckpointStorage
from .errors import CorruptCheckpointError
from .events import CheckpointKind
from .file_storage import FileCheckpointStorage
from .memory_storage import MemoryCheckpointStorage
from .metadata import CheckpointMetadata, StateHandle
from .state_file import StateFileContents
from .validation import Problem

__all__ = ["CheckpointStorage", "create_checkpoint_storage"]


@runtime_checkable
class CheckpointStorage(Protocol):
    """The storage contract shared by the file and in-memory implementations."""

    job_name: str

    def next_checkpoint_id(self, at_least: int = 1) -> int:
        """Reserve and return the next checkpoint id; ids increase across runs of a job."""
        ...

    def begin_checkpoint(
        self,
        checkpoint_id: int,
        kind: CheckpointKind = CheckpointKind.CHECKPOINT,
        target_dir: str | os.PathLike[str] | None = None,
    ) -> str:
        """Choose where a checkpoint (or a savepoint, in ``target_dir``) goes; return it."""
        ...

    def location_of(self, checkpoint_id: int) -> str:
        """Return where a checkpoint is (or would be) written."""
        ...

    async def write_state_file(
        self, checkpoint_id: int, operator_uid: str, subtask_index: int, data: bytes
    ) -> StateHandle:
        """Write one (operator uid, subtask) state file atomically; return its handle."""
        ...

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        """Write ``_metadata`` last and atomically (the commit); return the location."""
        ...

    async def discard(self, checkpoint_id: int) -> None:
        """Remove a checkpoint's files; never a completed savepoint."""
        ...

    async def delete_state_file(self, checkpoint_id: int, handle: StateHandle) -> None:
        """Remove one state file, if present."""
        ...

    async def discard_incomplete(self, newer_than: int) -> list[int]:
        """Remove checkpoints without ``_metadata`` above ``newer_than`` (left by a crash);
        return their ids. Only at start: one in flight looks the same."""
        ...

    async def read_latest_pointer(self) -> tuple[int, str] | None:
        """Return (id, location) of the newest checkpoint or savepoint that completed."""
        ...

    async def list_completed(self) -> list[int]:
        """Return the ids of this job's completed checkpoints, ascending."""
        ...

    async def load_checkpoint(self, pointer: Any) -> CompletedCheckpoint:
        """Read a checkpoint's ``_metadata`` by id, or a checkpoint or savepoint by path."""
        ...

    async def read_state_file(
        self, location: str, handle: StateHandle, key_groups: KeyGroupRange | None = None
    ) -> StateFileContents:
        """Read a state file, or only some of its key groups."""
        ...

    async def validate(self, location: str, *, deep: bool = True) -> list[Problem]:
        """Return what is wrong with a stored checkpoint (empty if valid)."""
        ...

    async def find_latest(
        self, *, before: int | None = None, deep: bool = False
    ) -> tuple[CompletedCheckpoint | None, list[CorruptCheckpointError]]:
        """Return the newest valid completed checkpoint and the damaged ones skipped."""
        ...


def create_checkpoint_storage(choice: Any, job_name: str) -> CheckpointStorage:
    """Build the storage a :class:`~checkpoints.config.CheckpointConfig` chose.

    :param choice: ``config.storage``: a directory ``Path`` (file storage under it),
        :class:`~checkpoints.config.JobManagerCheckpointStorage` or ``None`` (in memory), or a
        storage object (returned as is)
    :param job_name: the job's name (its directory under the base directory)
    :raises TypeError: if ``choice`` is none of those
    """
    if isinstance(choice, Path | str):
        return FileCheckpointStorage(choice, job_name)
    if choice is None or isinstance(choice, JobManagerCheckpointStorage):
        return MemoryCheckpointStorage(job_name)
    if isinstance(choice, CheckpointStorage):
        return choice
    raise TypeError(f"not a checkpoint storage choice: {choice!r}")
