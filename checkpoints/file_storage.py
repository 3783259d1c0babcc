"""Checkpoint storage on the local filesystem (Flink's ``FileSystemCheckpointStorage``).

Layout: ``<base_dir>/<job>/chk-<n>/`` holding one ``op-<uid>-<subtask>.state`` per
(operator uid, subtask) and ``_metadata``; savepoints go to
``<target_dir>/savepoint-<job>-<n>/`` in the same format.

Every file is written to a hidden temporary name, flushed, fsynced and renamed into place, so
a reader never sees half a file under its final name. ``_metadata`` is written last: before
it, the directory is fsynced so the state files' names are durable; after the rename, once
more, so the commit itself is. ``OSError`` never escapes: it becomes
:class:`~checkpoints.errors.CheckpointStorageError` naming the path.
"""

from __future__ import annotations

import errno
import os
import shutil
import zlib
from io import BytesIO
from pathlib import Path

import anyio
import anyio.to_thread

from state.key_groups import KeyGroupRange

from . import fileio
from .completed import CompletedCheckpoint
from .config import parse_storage_uri
from .errors import CheckpointStorageError, CorruptCheckpointError
from .events import CheckpointKind
from .layout import (
    checkpoint_dir_name,
    parse_checkpoint_dir_name,
    safe_name,
    savepoint_dir_name,
    state_file_name,
)
from .metadata import (
    LATEST_POINTER_NAME,
    METADATA_FILE_NAME,
    CheckpointMetadata,
    StateHandle,
    decode_latest_pointer,
    decode_metadata,
    encode_latest_pointer,
    encode_metadata,
)
from .state_file import StateFileContents, read_state_file_from
from .storage_common import handle_for, load_latest_valid
from .validation import Problem, inspect_checkpoint_dir

__all__ = ["FileCheckpointStorage"]


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


class FileCheckpointStorage:
    """Store checkpoints under ``<base_dir>/<job_name>/``.

    Checkpoint ids come from :meth:`next_checkpoint_id`, which continues after the highest
    ``chk-<n>`` directory present (complete or not), so ids keep increasing across runs of
    the same job name.

    :param base_dir: ``file:///abs/path`` or a plain path
    :param job_name: the job's name; made safe for use as a directory name
    :raises ValueError: if ``base_dir`` is not a local path or ``file://`` URI
    """

    def __init__(self, base_dir: str | os.PathLike[str], job_name: str) -> None:
        self.base_dir = parse_storage_uri(base_dir)
        self.job_name = job_name
        self.job_dir = self.base_dir / safe_name(job_name)
        self._next_id: int | None = None
        self._locations: dict[int, tuple[Path, CheckpointKind]] = {}
        self._committed_savepoints: set[int] = set()
        self._pointer_id = 0

    def __repr__(self) -> str:
        return f"FileCheckpointStorage({str(self.base_dir)!r}, {self.job_name!r})"

    # --- ids and locations ---

    def next_checkpoint_id(self, at_least: int = 1) -> int:
        """Reserve and return the next checkpoint id (at least ``at_least``).

        The first call lists the job directory once; later calls only count.

        :raises CheckpointStorageError: if the job directory cannot be listed
        """
        if self._next_id is None:
            highest = 0
            try:
                for entry in os.scandir(self.job_dir):
                    parsed = parse_checkpoint_dir_name(entry.name)
                    if parsed is not None and parsed[0] == "checkpoint":
                        highest = max(highest, parsed[1])
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CheckpointStorageError(str(self.job_dir), _describe(exc)) from exc
            pointer = self._read_pointer_id()
            self._next_id = max(highest, pointer) + 1
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

        Nothing is created yet: directories appear with the first file.

        :param target_dir: for a savepoint, the directory to create ``savepoint-<job>-<n>`` in
        :raises ValueError: if a savepoint has no ``target_dir``, or a checkpoint has one
        """
        self._locations[checkpoint_id] = (self._location(checkpoint_id, kind, target_dir), kind)
        return str(self._locations[checkpoint_id][0])

    def _location(
        self, checkpoint_id: int, kind: CheckpointKind, target_dir: str | os.PathLike[str] | None
    ) -> Path:
        if kind is CheckpointKind.SAVEPOINT:
            if target_dir is None:
                raise ValueError("a savepoint needs a target directory, got None")
            return parse_storage_uri(target_dir) / savepoint_dir_name(self.job_name, checkpoint_id)
        if target_dir is not None:
            raise ValueError(f"only savepoints take a target directory, got {target_dir!r}")
        return self.job_dir / checkpoint_dir_name(checkpoint_id)

    def location_of(self, checkpoint_id: int) -> str:
        """Return where checkpoint ``checkpoint_id`` is (or would be) written."""
        return str(self._dir_of(checkpoint_id))

    def _dir_of(self, checkpoint_id: int) -> Path:
        known = self._locations.get(checkpoint_id)
        return known[0] if known else self.job_dir / checkpoint_dir_name(checkpoint_id)

    # --- writing ---

    async def _atomic_write(
        self, path: Path, data: bytes, checkpoint_id: int, *, sync_dir: bool = False
    ) -> None:
        try:
            await fileio.write_atomically(path, data, sync_dir=sync_dir)
        except OSError as exc:
            raise CheckpointStorageError(
                str(path), _describe(exc), checkpoint_id=checkpoint_id
            ) from exc

    async def write_state_file(
        self, checkpoint_id: int, operator_uid: str, subtask_index: int, data: bytes
    ) -> StateHandle:
        """Write one (operator uid, subtask) state file atomically; return its handle.

        :param data: an encoded state file (:func:`~checkpoints.state_file.encode_state_file`)
        :raises CheckpointStorageError: if writing fails
        :raises CorruptCheckpointError: if ``data`` is not a state file
        """
        name = state_file_name(operator_uid, subtask_index)
        path = self._dir_of(checkpoint_id) / name
        handle = handle_for(data, name, operator_uid, subtask_index, str(path))
        await self._atomic_write(path, data, checkpoint_id)
        return handle

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        """Write ``_metadata`` last and atomically; return the checkpoint's location.

        :raises CheckpointStorageError: if writing fails (no ``_metadata`` is left behind)
        """
        directory = self._dir_of(checkpoint_id)
        data = encode_metadata(metadata)
        # The directory is synced before (the state files' renames are durable first) and
        # after (so is _metadata's).
        await self._atomic_write(directory / METADATA_FILE_NAME, data, checkpoint_id, sync_dir=True)
        if metadata.kind is CheckpointKind.SAVEPOINT:
            self._committed_savepoints.add(checkpoint_id)
        if checkpoint_id > self._pointer_id:
            # Before the coordinator notifies anyone (sinks commit on that notification), so
            # the pointer never lags behind what a sink may have committed.
            self._pointer_id = checkpoint_id
            pointer = encode_latest_pointer(checkpoint_id, str(directory))
            await self._atomic_write(self.job_dir / LATEST_POINTER_NAME, pointer, checkpoint_id)
        return str(directory)

    # --- removing ---

    async def discard(self, checkpoint_id: int) -> None:
        """Remove checkpoint ``checkpoint_id``'s directory, if present.

        A savepoint is removed only while it is incomplete (an aborted savepoint's partial
        files); a completed savepoint is never removed.

        :raises CheckpointStorageError: if removing fails
        """
        directory = self._dir_of(checkpoint_id)
        if checkpoint_id in self._committed_savepoints:
            return
        if parse_checkpoint_dir_name(directory.name) is None:  # never rmtree a user directory
            return
        try:
            await anyio.to_thread.run_sync(shutil.rmtree, directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CheckpointStorageError(
                str(directory), _describe(exc), checkpoint_id=checkpoint_id
            ) from exc
        finally:
            # A checkpoint's location is derived from its id anyway; an aborted savepoint's
            # is kept, so a late subtask's files there can be discarded too.
            known = self._locations.get(checkpoint_id)
            if known is not None and known[1] is CheckpointKind.CHECKPOINT:
                del self._locations[checkpoint_id]

    async def discard_incomplete(self, newer_than: int) -> list[int]:
        """Remove ``chk-<n>`` directories without ``_metadata`` whose id is above ``newer_than``.

        They are left by a crash or a cancellation in the middle of a checkpoint, which never
        completed (nothing was committed on them). Call it at start, before the coordinator
        triggers anything: it cannot tell such a directory from one in flight. Ids up to
        ``newer_than`` are kept even without ``_metadata``: a checkpoint that did complete
        and then lost it is evidence.

        :return: the ids removed
        :raises CheckpointStorageError: if the job directory cannot be listed or cleaned
        """

        def scan() -> list[int]:
            try:
                entries = list(os.scandir(self.job_dir))
            except FileNotFoundError:
                return []
            ids = []
            for entry in entries:
                parsed = parse_checkpoint_dir_name(entry.name)
                if parsed is None or parsed[0] != "checkpoint" or parsed[1] <= newer_than:
                    continue
                if not os.path.lexists(os.path.join(entry.path, METADATA_FILE_NAME)):
                    ids.append(parsed[1])
            return sorted(ids)

        try:
            ids = await anyio.to_thread.run_sync(scan)
        except OSError as exc:
            raise CheckpointStorageError(str(self.job_dir), _describe(exc)) from exc
        for checkpoint_id in ids:
            await self.discard(checkpoint_id)
        return ids

    async def read_latest_pointer(self) -> tuple[int, str] | None:
        """Return (id, location) of the newest checkpoint or savepoint that completed.

        Read from ``<job>/_latest``, which :meth:`write_metadata` updates after each
        ``_metadata``; ``None`` if there is none (no checkpoint ever completed here).

        :raises CorruptCheckpointError: if the pointer file is damaged
        :raises CheckpointStorageError: if it cannot be read
        """
        path = self.job_dir / LATEST_POINTER_NAME
        try:
            data = await fileio.read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointStorageError(str(path), _describe(exc)) from exc
        checkpoint_id, location = decode_latest_pointer(data, str(path))
        expected = {
            str(self.job_dir / checkpoint_dir_name(checkpoint_id)),
        }
        name = Path(location).name
        if str(location) not in expected and name != savepoint_dir_name(
            self.job_name, checkpoint_id
        ):
            raise CorruptCheckpointError(
                str(path),
                f"names {location!r}, which is not checkpoint {checkpoint_id} of this job",
            )
        return checkpoint_id, location

    def _read_pointer_id(self) -> int:
        try:
            with open(self.job_dir / LATEST_POINTER_NAME, "rb") as f:
                return decode_latest_pointer(f.read(4096), LATEST_POINTER_NAME)[0]
        except (OSError, CorruptCheckpointError):
            return 0

    async def delete_state_file(self, checkpoint_id: int, handle: StateHandle) -> None:
        """Remove one state file (cleanup of a cancelled snapshot); a missing file is fine.

        :raises CheckpointStorageError: if removing fails
        """
        path = self._dir_of(checkpoint_id) / handle.file_name
        try:
            await fileio.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CheckpointStorageError(str(path), _describe(exc)) from exc

    # --- reading ---

    async def list_completed(self) -> list[int]:
        """Return the ids of completed checkpoints (``chk-<n>`` with ``_metadata``), ascending.

        :raises CheckpointStorageError: if the job directory cannot be listed
        """

        def scan() -> list[int]:
            ids = []
            try:
                entries = list(os.scandir(self.job_dir))
            except FileNotFoundError:
                return []
            for entry in entries:
                parsed = parse_checkpoint_dir_name(entry.name)
                if parsed and parsed[0] == "checkpoint":
                    if os.path.exists(os.path.join(entry.path, METADATA_FILE_NAME)):
                        ids.append(parsed[1])
            return sorted(ids)

        try:
            return await anyio.to_thread.run_sync(scan)
        except OSError as exc:
            raise CheckpointStorageError(str(self.job_dir), _describe(exc)) from exc

    def _resolve(self, pointer: int | str | os.PathLike[str]) -> Path:
        if isinstance(pointer, int):
            return self.job_dir / checkpoint_dir_name(pointer)
        path = parse_storage_uri(pointer)
        return path.parent if path.name == METADATA_FILE_NAME else path

    async def load_checkpoint(self, pointer: int | str | os.PathLike[str]) -> CompletedCheckpoint:
        """Read the ``_metadata`` of a checkpoint or savepoint.

        :param pointer: a checkpoint id of this job, or the path of a checkpoint or savepoint
            directory (or of its ``_metadata`` file)
        :raises CheckpointStorageError: if the directory does not exist or cannot be read
        :raises CorruptCheckpointError: if it has no ``_metadata`` or the metadata is damaged
        """
        directory = self._resolve(pointer)
        meta_path = directory / METADATA_FILE_NAME
        try:
            data = await fileio.read_bytes(meta_path)
        except FileNotFoundError as exc:
            if await fileio.isdir(directory):
                raise CorruptCheckpointError(
                    str(meta_path), "missing _metadata: the checkpoint did not complete"
                ) from None
            raise CheckpointStorageError(str(directory), _describe(exc)) from exc
        except OSError as exc:
            raise CheckpointStorageError(str(meta_path), _describe(exc)) from exc
        return CompletedCheckpoint(decode_metadata(data, str(meta_path)), str(directory))

    async def read_state_file(
        self, location: str, handle: StateHandle, key_groups: KeyGroupRange | None = None
    ) -> StateFileContents:
        """Read one state file of a completed checkpoint.

        With ``key_groups``, only the header, the operator and extra sections and that range
        of key groups are read (each checked by its own CRC-32). Without, the whole file is
        read and checked against the handle's size and CRC-32 too.

        :param location: the checkpoint's location (:attr:`CompletedCheckpoint.location`)
        :raises CorruptCheckpointError: if the file is damaged, truncated or not the one the
            handle names
        :raises CheckpointStorageError: if it cannot be read
        """
        path = Path(location) / handle.file_name
        try:
            return await anyio.to_thread.run_sync(_read_state_file_sync, path, handle, key_groups)
        except FileNotFoundError:
            raise CorruptCheckpointError(str(path), "missing state file") from None
        except OSError as exc:
            raise CheckpointStorageError(str(path), _describe(exc)) from exc

    async def validate(self, location: str, *, deep: bool = True) -> list[Problem]:
        """Return what is wrong with the checkpoint at ``location`` (empty if valid)."""
        report = await anyio.to_thread.run_sync(
            lambda: inspect_checkpoint_dir(Path(location), deep=deep)
        )
        return report.problems

    async def find_latest(
        self, *, before: int | None = None, deep: bool = False
    ) -> tuple[CompletedCheckpoint | None, list[CorruptCheckpointError]]:
        """Return the newest valid completed checkpoint, and the damaged ones skipped.

        :param before: only consider ids below this (to fall back past a bad one)
        :param deep: also check every state file's CRC-32 (reads all state)
        :raises CheckpointStorageError: if the job directory cannot be listed
        """
        return await load_latest_valid(self, before=before, deep=deep)


def _read_state_file_sync(
    path: Path, handle: StateHandle, key_groups: KeyGroupRange | None
) -> StateFileContents:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != handle.size:
            raise CorruptCheckpointError(
                str(path), f"size mismatch: expected {handle.size} bytes, found {size}"
            )
        if key_groups is None:
            data = f.read()
            crc = zlib.crc32(data)
            if crc != handle.checksum:
                raise CorruptCheckpointError(
                    str(path),
                    f"checksum mismatch: expected crc32 {handle.checksum:08x}, got {crc:08x}",
                )
            contents = read_state_file_from(BytesIO(data), size, str(path))
        else:
            contents = read_state_file_from(f, size, str(path), key_groups)
    if (contents.operator_uid, contents.subtask_index) != (
        handle.operator_uid,
        handle.subtask_index,
    ):
        raise CorruptCheckpointError(
            str(path),
            f"holds operator {contents.operator_uid!r} subtask {contents.subtask_index}, "
            f"expected {handle.operator_uid!r} subtask {handle.subtask_index}",
        )
    return contents
