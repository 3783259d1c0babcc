"""Checkpoint storage in memory: the file storage's contract without a filesystem.

Flink's ``JobManagerCheckpointStorage``: for tests and small jobs; lost with the process.
Locations look like ``memory://<job>/chk-<n>`` and ``memory://<target>/savepoint-<job>-<n>``;
each holds file names mapped to bytes, in the same formats the file storage writes.

For tests, ``write_hook`` is awaited before every write and removal with
``(operation, checkpoint_id, file name)`` where operation is ``"state"``, ``"metadata"``,
``"delete"`` or ``"discard"``: raise ``OSError`` from it to inject a storage failure (it
becomes :class:`~checkpoints.errors.CheckpointStorageError`, as on disk), or wait on an event
to stall a write. ``operations`` records every completed write and removal in order.
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Awaitable, Callable

from state.key_groups import KeyGroupRange

from .completed import CompletedCheckpoint
from .errors import CheckpointStorageError, CorruptCheckpointError
from .events import CheckpointKind
from .layout import (
    checkpoint_dir_name,
    parse_checkpoint_dir_name,
    savepoint_dir_name,
    state_file_name,
)
from .metadata import (
    METADATA_FILE_NAME,
    CheckpointMetadata,
    StateHandle,
    decode_metadata,
    encode_metadata,
)
from .state_file import StateFileContents, decode_state_file
from .storage_common import handle_for, load_latest_valid
from .validation import Problem, check_state_files

__all__ = ["MemoryCheckpointStorage", "WriteHook"]

WriteHook = Callable[[str, int, str], Awaitable[None]]
"""``async hook(operation, checkpoint_id, file_name)``, awaited before each write/removal."""

_SCHEME = "memory://"


class MemoryCheckpointStorage:
    """Store checkpoints in a dict of locations to files.

    :param job_name: the job's name (part of the locations)
    :param write_hook: awaited before every write and removal (failure injection, stalls)
    """

    def __init__(self, job_name: str = "job", *, write_hook: WriteHook | None = None) -> None:
        self.job_name = job_name
        self.write_hook = write_hook
        self.operations: list[tuple[str, int, str]] = []
        self._dirs: dict[str, dict[str, bytes]] = {}
        self._locations: dict[int, tuple[str, CheckpointKind]] = {}
        self._committed_savepoints: set[int] = set()
        self._latest_pointer: tuple[int, str] | None = None
        self._next_id: int | None = None

    def __repr__(self) -> str:
        return f"MemoryCheckpointStorage({self.job_name!r})"

    # --- ids and locations ---

    def next_checkpoint_id(self, at_least: int = 1) -> int:
        """Reserve and return the next checkpoint id (at least ``at_least``)."""
        if self._next_id is None:
            prefix = f"{_SCHEME}{self.job_name}/"
            ids = [
                parsed[1]
                for loc in self._dirs
                if loc.startswith(prefix)
                and (parsed := parse_checkpoint_dir_name(loc[len(prefix) :])) is not None
                and parsed[0] == "checkpoint"
            ]
            self._next_id = max(ids, default=0) + 1
        checkpoint_id = max(self._next_id, at_least)
        self._next_id = checkpoint_id + 1
        return checkpoint_id

    def begin_checkpoint(
        self,
        checkpoint_id: int,
        kind: CheckpointKind = CheckpointKind.CHECKPOINT,
        target_dir: str | os.PathLike[str] | None = None,
    ) -> str:
        """Choose where checkpoint ``checkpoint_id`` is written; return that location.

        :raises ValueError: if a savepoint has no ``target_dir``, or a checkpoint has one
        """
        if kind is CheckpointKind.SAVEPOINT:
            if target_dir is None:
                raise ValueError("a savepoint needs a target directory, got None")
            target = str(target_dir).removeprefix(_SCHEME).rstrip("/")
            location = f"{_SCHEME}{target}/{savepoint_dir_name(self.job_name, checkpoint_id)}"
        elif target_dir is not None:
            raise ValueError(f"only savepoints take a target directory, got {target_dir!r}")
        else:
            location = self.location_of(checkpoint_id)
        self._locations[checkpoint_id] = (location, kind)
        return location

    def location_of(self, checkpoint_id: int) -> str:
        """Return where checkpoint ``checkpoint_id`` is (or would be) written."""
        known = self._locations.get(checkpoint_id)
        if known is not None:
            return known[0]
        return f"{_SCHEME}{self.job_name}/{checkpoint_dir_name(checkpoint_id)}"

    def directory(self, location: str | int) -> dict[str, bytes]:
        """Return the live file dict of a location (tests may damage files through it).

        :raises KeyError: if nothing was written there
        """
        return self._dirs[self._resolve(location)]

    # --- writing and removing ---

    async def _hook(self, operation: str, checkpoint_id: int, name: str, location: str) -> None:
        if self.write_hook is None:
            return
        try:
            await self.write_hook(operation, checkpoint_id, name)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0)
            detail = f"{exc.strerror or exc} ({code})" if code else str(exc.strerror or exc)
            raise CheckpointStorageError(
                f"{location}/{name}", detail, checkpoint_id=checkpoint_id
            ) from exc

    async def write_state_file(
        self, checkpoint_id: int, operator_uid: str, subtask_index: int, data: bytes
    ) -> StateHandle:
        """Store one (operator uid, subtask) state file; return its handle.

        :raises CheckpointStorageError: if the write hook injects an ``OSError``
        :raises CorruptCheckpointError: if ``data`` is not a state file
        """
        location = self.location_of(checkpoint_id)
        name = state_file_name(operator_uid, subtask_index)
        handle = handle_for(data, name, operator_uid, subtask_index, f"{location}/{name}")
        await self._hook("state", checkpoint_id, name, location)
        self._dirs.setdefault(location, {})[name] = bytes(data)
        self.operations.append(("state", checkpoint_id, name))
        return handle

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        """Store ``_metadata`` (the commit); return the checkpoint's location.

        :raises CheckpointStorageError: if the write hook injects an ``OSError``
        """
        location = self.location_of(checkpoint_id)
        data = encode_metadata(metadata)
        await self._hook("metadata", checkpoint_id, METADATA_FILE_NAME, location)
        self._dirs.setdefault(location, {})[METADATA_FILE_NAME] = data
        self.operations.append(("metadata", checkpoint_id, METADATA_FILE_NAME))
        if metadata.kind is CheckpointKind.SAVEPOINT:
            self._committed_savepoints.add(checkpoint_id)
        if self._latest_pointer is None or checkpoint_id > self._latest_pointer[0]:
            self._latest_pointer = (checkpoint_id, location)
        return location

    async def read_latest_pointer(self) -> tuple[int, str] | None:
        """Return (id, location) of the newest checkpoint or savepoint that completed."""
        return self._latest_pointer

    async def discard_incomplete(self, newer_than: int) -> list[int]:
        """Remove this job's checkpoints without ``_metadata`` whose id is above ``newer_than``."""
        prefix = f"{_SCHEME}{self.job_name}/"
        ids = []
        for location, files in list(self._dirs.items()):
            parsed = parse_checkpoint_dir_name(location[len(prefix) :])
            if not location.startswith(prefix) or parsed is None or parsed[0] != "checkpoint":
                continue
            if parsed[1] > newer_than and METADATA_FILE_NAME not in files:
                ids.append(parsed[1])
                await self.discard(parsed[1])
        return sorted(ids)

    async def discard(self, checkpoint_id: int) -> None:
        """Remove checkpoint ``checkpoint_id`` (a completed savepoint is never removed).

        :raises CheckpointStorageError: if the write hook injects an ``OSError``
        """
        if checkpoint_id in self._committed_savepoints:
            return
        location = self.location_of(checkpoint_id)
        await self._hook("discard", checkpoint_id, "", location)
        self._dirs.pop(location, None)
        known = self._locations.get(checkpoint_id)
        if known is not None and known[1] is CheckpointKind.CHECKPOINT:
            del self._locations[checkpoint_id]
        self.operations.append(("discard", checkpoint_id, ""))

    async def delete_state_file(self, checkpoint_id: int, handle: StateHandle) -> None:
        """Remove one state file; a missing file is fine."""
        location = self.location_of(checkpoint_id)
        await self._hook("delete", checkpoint_id, handle.file_name, location)
        self._dirs.get(location, {}).pop(handle.file_name, None)
        self.operations.append(("delete", checkpoint_id, handle.file_name))

    # --- reading ---

    async def list_completed(self) -> list[int]:
        """Return the ids of this job's completed checkpoints, ascending."""
        prefix = f"{_SCHEME}{self.job_name}/"
        ids = []
        for location, files in self._dirs.items():
            if location.startswith(prefix) and METADATA_FILE_NAME in files:
                parsed = parse_checkpoint_dir_name(location[len(prefix) :])
                if parsed is not None and parsed[0] == "checkpoint":
                    ids.append(parsed[1])
        return sorted(ids)

    def _resolve(self, pointer: int | str) -> str:
        if isinstance(pointer, int):
            return self.location_of(pointer)
        location = str(pointer).removesuffix("/" + METADATA_FILE_NAME)
        return location if location.startswith(_SCHEME) else _SCHEME + location

    async def load_checkpoint(self, pointer: int | str) -> CompletedCheckpoint:
        """Read the ``_metadata`` of a checkpoint or savepoint (by id or location).

        :raises CheckpointStorageError: if nothing is stored there
        :raises CorruptCheckpointError: if it has no ``_metadata`` or it is damaged
        """
        location = self._resolve(pointer)
        files = self._dirs.get(location)
        if files is None:
            raise CheckpointStorageError(location, "No such checkpoint (ENOENT)")
        meta_path = f"{location}/{METADATA_FILE_NAME}"
        if METADATA_FILE_NAME not in files:
            raise CorruptCheckpointError(
                meta_path, "missing _metadata: the checkpoint did not complete"
            )
        return CompletedCheckpoint(decode_metadata(files[METADATA_FILE_NAME], meta_path), location)

    async def read_state_file(
        self, location: str, handle: StateHandle, key_groups: KeyGroupRange | None = None
    ) -> StateFileContents:
        """Read one state file of a completed checkpoint (see the file storage).

        :raises CorruptCheckpointError: if it is missing, damaged or not the one named
        """
        path = f"{location}/{handle.file_name}"
        data = self._dirs.get(location, {}).get(handle.file_name)
        if data is None:
            raise CorruptCheckpointError(path, "missing state file")
        if len(data) != handle.size:
            raise CorruptCheckpointError(
                path, f"size mismatch: expected {handle.size} bytes, found {len(data)}"
            )
        if key_groups is None and zlib.crc32(data) != handle.checksum:
            raise CorruptCheckpointError(
                path,
                f"checksum mismatch: expected crc32 {handle.checksum:08x}, "
                f"got {zlib.crc32(data):08x}",
            )
        contents = decode_state_file(data, key_groups, path)
        if (contents.operator_uid, contents.subtask_index) != (
            handle.operator_uid,
            handle.subtask_index,
        ):
            raise CorruptCheckpointError(
                path,
                f"holds operator {contents.operator_uid!r} subtask {contents.subtask_index}, "
                f"expected {handle.operator_uid!r} subtask {handle.subtask_index}",
            )
        return contents

    async def validate(self, location: str, *, deep: bool = True) -> list[Problem]:
        """Return what is wrong with the checkpoint at ``location`` (empty if valid)."""
        files = self._dirs.get(location)
        if files is None:
            return [Problem(location, "no such checkpoint", corrupt=False)]
        meta_path = f"{location}/{METADATA_FILE_NAME}"
        if METADATA_FILE_NAME not in files:
            return [Problem(meta_path, "missing _metadata: the checkpoint did not complete", False)]
        try:
            metadata = decode_metadata(files[METADATA_FILE_NAME], meta_path)
        except CorruptCheckpointError as exc:
            return [Problem(meta_path, exc.detail or str(exc), corrupt=True)]
        return check_state_files(
            metadata,
            lambda name: len(files[name]) if name in files else None,
            (lambda name: files[name]) if deep else None,
            lambda name: f"{location}/{name}",
        )

    async def find_latest(
        self, *, before: int | None = None, deep: bool = False
    ) -> tuple[CompletedCheckpoint | None, list[CorruptCheckpointError]]:
        """Return the newest valid completed checkpoint, and the damaged ones skipped."""
        return await load_latest_valid(self, before=before, deep=deep)
