"""Where checkpoints are stored: one storage over a blob store, and the choice from configuration.

:class:`CheckpointStorage` keeps every piece of checkpoint bookkeeping (ids, locations, the
``_latest`` pointer, what a discard may remove, the integrity checks) and stores bytes
through a :class:`~streamlet.checkpoints.blob_store.BlobStore`: files
(:class:`~streamlet.checkpoints.file_blob_store.FileBlobStore`, Flink's
``FileSystemCheckpointStorage``) or a dict
(:class:`~streamlet.checkpoints.memory_blob_store.MemoryBlobStore`, Flink's
``JobManagerCheckpointStorage``). :class:`FileCheckpointStorage` and
:class:`MemoryCheckpointStorage` only choose the blob store. The contract tests in
``tests/checkpoints/test_checkpoint_storage.py`` run against both.

Layout (DESIGN §5): ``<base>/<job>/chk-<n>/`` holding one ``op-<uid>-<subtask>.state`` per
(operator uid, subtask) and ``_metadata``, and ``<base>/<job>/_latest``; savepoints go to
``<target>/savepoint-<job>-<n>/`` in the same format. ``_metadata`` is written last, with
the directory made durable before (the state files' names) and after (the commit itself).

Who calls what:

- the coordinator: :meth:`~CheckpointStorage.next_checkpoint_id` and
  :meth:`~CheckpointStorage.begin_checkpoint` at trigger time (savepoints pass a target
  directory there, so subtasks need not know where a savepoint goes),
  :meth:`~CheckpointStorage.write_metadata` when every subtask acknowledged,
  :meth:`~CheckpointStorage.discard` on abort and retention;
- subtasks (through :func:`~streamlet.checkpoints.snapshotter.write_subtask_snapshot`):
  :meth:`~CheckpointStorage.write_state_file`, and
  :meth:`~CheckpointStorage.delete_state_file` to clean up a cancelled snapshot;
- the engine on restore: :func:`~streamlet.checkpoints.latest.scan_latest`,
  :meth:`~CheckpointStorage.find_latest` (falls back past damaged checkpoints),
  :meth:`~CheckpointStorage.load_checkpoint` (by id or path) and
  :meth:`~CheckpointStorage.read_state_file` (optionally only some key groups).

Every I/O failure surfaces as :class:`~streamlet.checkpoints.errors.CheckpointStorageError` naming
the path; damaged data as :class:`~streamlet.checkpoints.errors.CorruptCheckpointError`.

For tests, ``write_hook`` is awaited before every write and removal with
``(operation, checkpoint_id, file name)`` where operation is ``"state"``, ``"metadata"``,
``"delete"`` or ``"discard"``: raise ``OSError`` from it to inject a storage failure (it
becomes :class:`~streamlet.checkpoints.errors.CheckpointStorageError`, as a real one does), or wait
on an event to stall a write. ``operations`` records every completed write and removal in
order. The ``_latest`` pointer is part of the ``"metadata"`` commit and not recorded apart.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any

from streamlet.state.key_groups import KeyGroupRange

from .blob_store import BlobStore, check_key, join_key, read_all
from .completed import CompletedCheckpoint
from .config import JobManagerCheckpointStorage
from .errors import CheckpointStorageError, CorruptCheckpointError
from .events import CheckpointKind
from .file_blob_store import FileBlobStore
from .layout import (
    checkpoint_dir_name,
    parse_checkpoint_dir_name,
    parse_piece_file_name,
    piece_file_name,
    safe_name,
    savepoint_dir_name,
    state_file_name,
)
from .memory_blob_store import MemoryBlobStore
from .metadata import (
    LATEST_POINTER_NAME,
    METADATA_FILE_NAME,
    SHARED_DIR_NAME,
    CheckpointMetadata,
    StateHandle,
    StatePiece,
    decode_latest_pointer,
    decode_metadata,
    encode_latest_pointer,
    encode_metadata,
    shared_location,
)
from .state_file import (
    EncodedStateFile,
    StateFileContents,
    read_checked_state_file,
    state_handle_for,
)
from .validation import Problem, inspect_checkpoint

__all__ = [
    "CheckpointStorage",
    "FileCheckpointStorage",
    "MemoryCheckpointStorage",
    "WriteHook",
    "create_checkpoint_storage",
]

WriteHook = Callable[[str, int, str], Awaitable[None]]
"""``async hook(operation, checkpoint_id, file_name)``, awaited before each write/removal."""

_POINTER_READ_LIMIT = 4096
"""A ``_latest`` pointer is tiny; reading more of a damaged one at start is never needed."""


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


def _read_pointer_prefix(f: IO[bytes], size: int) -> bytes:
    return f.read(_POINTER_READ_LIMIT)


def _is_directory(store: BlobStore, key: str) -> bool:
    try:
        store.list(key)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # there, but unreadable
    return True


def _last_component(location: str) -> str:
    return location.rstrip("/").rpartition("/")[2]


class CheckpointStorage:
    """Store a job's checkpoints in a blob store, under ``<job>/chk-<n>/``.

    Checkpoint ids come from :meth:`next_checkpoint_id`, which continues after the highest
    ``chk-<n>`` directory present (complete or not) and the ``_latest`` pointer, so ids keep
    increasing across runs of the same job name.

    :param blobs: where the bytes go; its root is the base directory holding job directories
    :param job_name: the job's name
    :param job_dir: the job directory's key (default: ``job_name`` made safe as one path
        component)
    :param write_hook: awaited before every write and removal (failure injection, stalls)
    :raises ValueError: if ``job_dir`` is not a relative key
    """

    def __init__(
        self,
        blobs: BlobStore,
        job_name: str,
        *,
        job_dir: str | None = None,
        write_hook: WriteHook | None = None,
    ) -> None:
        self.blobs = blobs
        self.job_name = job_name
        self.job_key = check_key(safe_name(job_name) if job_dir is None else job_dir)
        self.write_hook = write_hook
        self.operations: list[tuple[str, int, str]] = []
        self._next_id: int | None = None
        # Invariant: only checkpoints begun by this instance; a checkpoint's entry is dropped
        # on discard (its place is derived from its id), a savepoint's is kept.
        self._locations: dict[int, tuple[BlobStore, str, CheckpointKind]] = {}
        self._committed_savepoints: set[int] = set()
        self._pointer_id = 0
        # Reference counting of the shared pieces of incremental checkpoints (Flink's
        # SharedStateRegistry). Invariant, once loaded: _piece_refs[p] is the set of
        # completed checkpoints on disk whose _metadata references piece p (none empty),
        # and _pieces_of[n] is what checkpoint n references. Loaded from the completed
        # checkpoints on disk at first need, so pieces of earlier runs are counted too.
        self._piece_refs: dict[str, set[int]] | None = None
        self._pieces_of: dict[int, frozenset[str]] = {}
        # Pieces written for a checkpoint not committed yet: removed if it is discarded.
        self._unregistered: dict[int, set[str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.blobs!r}, {self.job_name!r})"

    # --- ids and locations ---

    def next_checkpoint_id(self, at_least: int = 1) -> int:
        """Reserve and return the next checkpoint id (at least ``at_least``).

        The first call lists the job directory once (on the loop: it is called at trigger
        time, which is synchronous); later calls only count.

        :raises CheckpointStorageError: if the job directory cannot be listed
        """
        if self._next_id is None:
            try:
                names = list(self.blobs.list(self.job_key))
            except FileNotFoundError:
                names = []
            except OSError as exc:
                raise CheckpointStorageError(
                    self.blobs.location(self.job_key), _describe(exc)
                ) from exc
            highest = 0
            for name in names:
                parsed = parse_checkpoint_dir_name(name)
                if parsed is not None and parsed[0] == "checkpoint":
                    highest = max(highest, parsed[1])
            self._next_id = max(highest, self._read_pointer_id()) + 1
        checkpoint_id = max(self._next_id, at_least)
        self._next_id = checkpoint_id + 1
        return checkpoint_id

    def _read_pointer_id(self) -> int:
        key = join_key(self.job_key, LATEST_POINTER_NAME)
        try:
            data = self.blobs.read(key, _read_pointer_prefix)
            return decode_latest_pointer(data, LATEST_POINTER_NAME)[0]
        except (OSError, CorruptCheckpointError):
            return 0

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
        if kind is CheckpointKind.SAVEPOINT:
            if target_dir is None:
                raise ValueError("a savepoint needs a target directory, got None")
            place = (self.blobs.at(target_dir), savepoint_dir_name(self.job_name, checkpoint_id))
        elif target_dir is not None:
            raise ValueError(f"only savepoints take a target directory, got {target_dir!r}")
        else:
            place = self._checkpoint_dir(checkpoint_id)
        self._locations[checkpoint_id] = (*place, kind)
        return place[0].location(place[1])

    def _checkpoint_dir(self, checkpoint_id: int) -> tuple[BlobStore, str]:
        return self.blobs, join_key(self.job_key, checkpoint_dir_name(checkpoint_id))

    def _dir_of(self, checkpoint_id: int) -> tuple[BlobStore, str]:
        known = self._locations.get(checkpoint_id)
        return known[:2] if known else self._checkpoint_dir(checkpoint_id)

    def location_of(self, checkpoint_id: int) -> str:
        """Return where checkpoint ``checkpoint_id`` is (or would be) written."""
        store, key = self._dir_of(checkpoint_id)
        return store.location(key)

    def _resolve(self, pointer: int | str | os.PathLike[str]) -> tuple[BlobStore, str]:
        """The directory of a checkpoint id of this job, or of a location (the directory or
        its ``_metadata``)."""
        if isinstance(pointer, int):
            return self._checkpoint_dir(pointer)
        location = os.fspath(pointer)
        head, sep, tail = location.rstrip("/").rpartition("/")
        if sep and tail == METADATA_FILE_NAME:
            location = head
        return self.blobs.at(location), ""

    # --- writing ---

    async def check_writable(self) -> None:
        """Write and remove a probe file in the job directory, so a job that could never
        complete a checkpoint fails at start, not after its first interval.

        :raises CheckpointStorageError: naming the job directory, if it cannot be written
        """
        key = join_key(self.job_key, ".write-probe")

        def probe() -> None:
            self.blobs.write_atomically(key, b"")
            self.blobs.remove(key)

        try:
            await self.blobs.run(probe)
        except OSError as exc:
            raise CheckpointStorageError(
                self.blobs.location(self.job_key),
                f"the checkpoint directory cannot be written: {_describe(exc)}; choose a "
                f"writable directory (set_checkpoint_storage_dir)",
            ) from exc

    async def _hook(self, operation: str, checkpoint_id: int, name: str, location: str) -> None:
        if self.write_hook is None:
            return
        try:
            await self.write_hook(operation, checkpoint_id, name)
        except OSError as exc:
            raise CheckpointStorageError(
                f"{location}/{name}", _describe(exc), checkpoint_id=checkpoint_id
            ) from exc

    async def _write(
        self, store: BlobStore, key: str, data: bytes, checkpoint_id: int, *, sync_dir: bool
    ) -> None:
        try:
            await store.run(partial(store.write_atomically, key, data, sync_dir=sync_dir))
        except OSError as exc:
            raise CheckpointStorageError(
                store.location(key), _describe(exc), checkpoint_id=checkpoint_id
            ) from exc

    async def write_state_file(
        self,
        checkpoint_id: int,
        operator_uid: str,
        subtask_index: int,
        data: bytes | EncodedStateFile,
    ) -> StateHandle:
        """Write one (operator uid, subtask) state file atomically; return its handle.

        :param data: an encoded state file
            (:func:`~streamlet.checkpoints.state_file.encode_state_file`), or one with its
            checksum (:meth:`~streamlet.checkpoints.state_file.EncodedStateFile.encode`,
            what snapshots write: nothing is parsed or checksummed again)
        :raises CheckpointStorageError: if writing fails
        :raises CorruptCheckpointError: if ``data`` is not a state file of that operator
            and subtask
        """
        store, directory = self._dir_of(checkpoint_id)
        name = state_file_name(operator_uid, subtask_index)
        key = join_key(directory, name)
        handle = state_handle_for(data, name, operator_uid, subtask_index, store.location(key))
        await self._hook("state", checkpoint_id, name, store.location(directory))
        blob = data.data if isinstance(data, EncodedStateFile) else data
        await self._write(store, key, blob, checkpoint_id, sync_dir=False)
        self.operations.append(("state", checkpoint_id, name))
        return handle

    @property
    def _shared_key(self) -> str:
        return join_key(self.job_key, SHARED_DIR_NAME)

    async def write_piece(
        self, checkpoint_id: int, operator_uid: str, subtask_index: int, data: EncodedStateFile
    ) -> StatePiece:
        """Write one shared piece of an incremental checkpoint into the job's ``shared/``
        directory; return its reference. It is removed again if the checkpoint is
        discarded before it completes.

        :raises CheckpointStorageError: if writing fails
        :raises CorruptCheckpointError: if ``data`` is not a state file of that operator
            and subtask
        """
        name = piece_file_name(checkpoint_id, operator_uid, subtask_index, secrets.token_hex(4))
        key = join_key(self._shared_key, name)
        handle = state_handle_for(data, name, operator_uid, subtask_index, self.blobs.location(key))
        await self._hook("piece", checkpoint_id, name, self.blobs.location(self._shared_key))
        self._unregistered.setdefault(checkpoint_id, set()).add(name)
        await self._write(self.blobs, key, data.data, checkpoint_id, sync_dir=False)
        self.operations.append(("piece", checkpoint_id, name))
        return StatePiece(name, handle.size, handle.checksum, checkpoint_id)

    def _load_piece_refs_sync(self) -> dict[str, set[int]]:
        """Build the reference counts from the completed checkpoints on disk (once)."""
        if self._piece_refs is not None:
            return self._piece_refs
        refs: dict[str, set[int]] = {}
        try:
            has_shared = SHARED_DIR_NAME in self.blobs.list(self.job_key)
        except (FileNotFoundError, NotADirectoryError):
            has_shared = False
        if has_shared:
            for checkpoint_id in self._checkpoint_ids_sync(completed=True):
                if checkpoint_id in self._pieces_of:
                    continue
                key = join_key(self._checkpoint_dir(checkpoint_id)[1], METADATA_FILE_NAME)
                try:
                    metadata = decode_metadata(self.blobs.read(key, read_all), key)
                except (OSError, CorruptCheckpointError):
                    continue  # unreadable: it cannot be restored from either
                self._pieces_of[checkpoint_id] = metadata.pieces
        for checkpoint_id, pieces in self._pieces_of.items():
            for name in pieces:
                refs.setdefault(name, set()).add(checkpoint_id)
        self._piece_refs = refs
        return refs

    async def _piece_refs_loaded(self) -> dict[str, set[int]]:
        if self._piece_refs is not None:
            return self._piece_refs
        try:
            return await self.blobs.run(self._load_piece_refs_sync)
        except OSError as exc:
            raise CheckpointStorageError(self.blobs.location(self.job_key), _describe(exc)) from exc

    async def referenced_pieces(self) -> dict[str, frozenset[int]]:
        """Return, per shared piece, the completed checkpoints that reference it."""
        refs = await self._piece_refs_loaded()
        return {name: frozenset(ids) for name, ids in refs.items()}

    async def _release_pieces(self, checkpoint_id: int, pieces: set[str]) -> None:
        """Drop ``checkpoint_id``'s references; remove the pieces nothing references now."""
        refs = await self._piece_refs_loaded()
        for name in sorted(pieces):
            holders = refs.get(name)
            if holders is not None:
                holders.discard(checkpoint_id)
                if holders:
                    continue
                del refs[name]
            key = join_key(self._shared_key, name)
            await self._hook("delete", checkpoint_id, name, self.blobs.location(self._shared_key))
            try:
                await self.blobs.run(self.blobs.remove, key)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CheckpointStorageError(self.blobs.location(key), _describe(exc)) from exc
            self.operations.append(("delete", checkpoint_id, f"{SHARED_DIR_NAME}/{name}"))

    async def write_metadata(self, checkpoint_id: int, metadata: CheckpointMetadata) -> str:
        """Write ``_metadata`` last and atomically (the commit); return the location.

        An incremental checkpoint's shared pieces are counted as referenced by it from then
        on; one that references a piece removed meanwhile (its last holder was discarded
        before this checkpoint completed) is refused before anything is written.

        :raises CheckpointStorageError: if writing fails (no ``_metadata`` is left behind)
        :raises CorruptCheckpointError: if a shared piece it references is gone
        """
        store, directory = self._dir_of(checkpoint_id)
        location = store.location(directory)
        pieces = metadata.pieces
        if pieces:
            if metadata.kind is CheckpointKind.SAVEPOINT:
                raise ValueError(
                    f"savepoint {checkpoint_id} references shared pieces; a savepoint must be "
                    f"self-contained"
                )
            refs = await self._piece_refs_loaded()
            own = self._unregistered.get(checkpoint_id, set())
            for name in sorted(pieces):
                if name not in refs and name not in own:
                    raise CorruptCheckpointError(
                        self.blobs.location(join_key(self._shared_key, name)),
                        f"checkpoint {checkpoint_id} references a shared piece that was "
                        f"removed with the checkpoints holding it; the next checkpoint "
                        f"writes its keyed state in full",
                        checkpoint_id=checkpoint_id,
                    )
        data = encode_metadata(metadata)
        await self._hook("metadata", checkpoint_id, METADATA_FILE_NAME, location)
        key = join_key(directory, METADATA_FILE_NAME)
        pointer_key = join_key(self.job_key, LATEST_POINTER_NAME)
        # Before the coordinator notifies anyone (sinks commit on that notification), so
        # the pointer never lags behind what a sink may have committed.
        pointer = None
        if checkpoint_id > self._pointer_id:
            pointer = encode_latest_pointer(checkpoint_id, location)
        committed = False

        def commit() -> None:
            nonlocal committed
            # The directory is synced before (the state files' renames are durable first)
            # and after (so is _metadata's).
            store.write_atomically(key, data, sync_dir=True)
            committed = True
            if pointer is not None:
                self.blobs.write_atomically(pointer_key, pointer, sync_dir=False)

        # One worker-thread call for both files: every call costs GIL hand-overs.
        try:
            await store.run(commit)
        except OSError as exc:
            failed = self.blobs.location(pointer_key) if committed else store.location(key)
            raise CheckpointStorageError(
                failed, _describe(exc), checkpoint_id=checkpoint_id
            ) from exc
        finally:
            if committed:
                if pieces:
                    assert self._piece_refs is not None
                    for name in pieces:
                        self._piece_refs.setdefault(name, set()).add(checkpoint_id)
                    self._pieces_of[checkpoint_id] = pieces
                self._unregistered.pop(checkpoint_id, None)
                self.operations.append(("metadata", checkpoint_id, METADATA_FILE_NAME))
                if metadata.kind is CheckpointKind.SAVEPOINT:
                    self._committed_savepoints.add(checkpoint_id)
                if pointer is not None:
                    self._pointer_id = checkpoint_id
        return location

    # --- removing ---

    async def discard(self, checkpoint_id: int) -> None:
        """Remove checkpoint ``checkpoint_id``'s directory, if present.

        A savepoint is removed only while it is incomplete (an aborted savepoint's partial
        files); a completed savepoint is never removed.

        :raises CheckpointStorageError: if removing fails
        """
        if checkpoint_id in self._committed_savepoints:
            return
        store, directory = self._dir_of(checkpoint_id)
        if parse_checkpoint_dir_name(_last_component(directory)) is None:
            return  # never remove a user's directory
        await self._hook("discard", checkpoint_id, "", store.location(directory))
        if self._piece_refs is None and checkpoint_id not in self._pieces_of:
            await self._piece_refs_loaded()  # a checkpoint of an earlier run: count first
        pieces = set(self._pieces_of.pop(checkpoint_id, ()))
        pieces |= self._unregistered.pop(checkpoint_id, set())
        try:
            await store.run(store.remove_tree, directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CheckpointStorageError(
                store.location(directory), _describe(exc), checkpoint_id=checkpoint_id
            ) from exc
        finally:
            # A checkpoint's location is derived from its id anyway; an aborted savepoint's
            # is kept, so a late subtask's files there can be discarded too.
            known = self._locations.get(checkpoint_id)
            if known is not None and known[2] is CheckpointKind.CHECKPOINT:
                del self._locations[checkpoint_id]
        self.operations.append(("discard", checkpoint_id, ""))
        if pieces:
            # After the directory: a crash in between leaves unreferenced pieces (removed
            # at the next start), never a checkpoint whose pieces are gone.
            await self._release_pieces(checkpoint_id, pieces)

    async def delete_state_file(self, checkpoint_id: int, handle: StateHandle) -> None:
        """Remove one state file (cleanup of a cancelled snapshot); a missing file is fine.

        :raises CheckpointStorageError: if removing fails
        """
        store, directory = self._dir_of(checkpoint_id)
        await self._hook("delete", checkpoint_id, handle.file_name, store.location(directory))
        key = join_key(directory, handle.file_name)
        try:
            await store.run(store.remove, key)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CheckpointStorageError(store.location(key), _describe(exc)) from exc
        self.operations.append(("delete", checkpoint_id, handle.file_name))

    def _checkpoint_ids_sync(self, *, completed: bool, newer_than: int = 0) -> list[int]:
        """This job's ``chk-<n>`` ids above ``newer_than`` with (``completed``) or without
        ``_metadata``, ascending (one blob-store call for the whole scan)."""
        try:
            names = self.blobs.list(self.job_key)
        except FileNotFoundError:
            return []
        ids = []
        for name in names:
            parsed = parse_checkpoint_dir_name(name)
            if parsed is None or parsed[0] != "checkpoint" or parsed[1] <= newer_than:
                continue
            try:
                has_metadata = METADATA_FILE_NAME in self.blobs.list(join_key(self.job_key, name))
            except (FileNotFoundError, NotADirectoryError):
                has_metadata = False
            if has_metadata is completed:
                ids.append(parsed[1])
        return sorted(ids)

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
        try:
            ids = await self.blobs.run(
                partial(self._checkpoint_ids_sync, completed=False, newer_than=newer_than)
            )
        except OSError as exc:
            raise CheckpointStorageError(self.blobs.location(self.job_key), _describe(exc)) from exc
        for checkpoint_id in ids:
            await self.discard(checkpoint_id)
        await self._discard_orphan_pieces(newer_than)
        return ids

    async def _discard_orphan_pieces(self, newer_than: int) -> None:
        """Remove shared pieces written by checkpoints above ``newer_than`` that no completed
        checkpoint references (a crash in the middle of a checkpoint left them)."""
        try:
            names = await self.blobs.run(self.blobs.list, self._shared_key)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise CheckpointStorageError(
                self.blobs.location(self._shared_key), _describe(exc)
            ) from exc
        refs = await self._piece_refs_loaded()
        for name in sorted(names):
            written_by = parse_piece_file_name(name)
            if written_by is None or written_by <= newer_than or name in refs:
                continue
            if any(name in own for own in self._unregistered.values()):
                continue
            await self._release_pieces(written_by, {name})

    # --- reading ---

    async def read_latest_pointer(self) -> tuple[int, str] | None:
        """Return (id, location) of the newest checkpoint or savepoint that completed.

        Read from ``<job>/_latest``, which :meth:`write_metadata` updates after each
        ``_metadata``; ``None`` if there is none (no checkpoint ever completed here).

        :raises CorruptCheckpointError: if the pointer file is damaged
        :raises CheckpointStorageError: if it cannot be read
        """
        key = join_key(self.job_key, LATEST_POINTER_NAME)
        path = self.blobs.location(key)
        try:
            data = await self.blobs.run(self.blobs.read, key, read_all)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointStorageError(path, _describe(exc)) from exc
        checkpoint_id, location = decode_latest_pointer(data, path)
        own = self.blobs.location(self._checkpoint_dir(checkpoint_id)[1])
        savepoint = savepoint_dir_name(self.job_name, checkpoint_id)
        if location != own and _last_component(location) != savepoint:
            raise CorruptCheckpointError(
                path, f"names {location!r}, which is not checkpoint {checkpoint_id} of this job"
            )
        return checkpoint_id, location

    async def list_completed(self) -> list[int]:
        """Return the ids of completed checkpoints (``chk-<n>`` with ``_metadata``), ascending.

        :raises CheckpointStorageError: if the job directory cannot be listed
        """
        try:
            return await self.blobs.run(partial(self._checkpoint_ids_sync, completed=True))
        except OSError as exc:
            raise CheckpointStorageError(self.blobs.location(self.job_key), _describe(exc)) from exc

    async def load_checkpoint(self, pointer: int | str | os.PathLike[str]) -> CompletedCheckpoint:
        """Read the ``_metadata`` of a checkpoint or savepoint.

        :param pointer: a checkpoint id of this job, or the location of a checkpoint or
            savepoint directory (or of its ``_metadata`` file)
        :raises CheckpointStorageError: if the directory does not exist or cannot be read
        :raises CorruptCheckpointError: if it has no ``_metadata`` or the metadata is damaged
        """
        store, directory = self._resolve(pointer)
        key = join_key(directory, METADATA_FILE_NAME)
        meta_path = store.location(key)
        try:
            data = await store.run(store.read, key, read_all)
        except FileNotFoundError as exc:
            if await store.run(_is_directory, store, directory):
                raise CorruptCheckpointError(
                    meta_path, "missing _metadata: the checkpoint did not complete"
                ) from None
            raise CheckpointStorageError(store.location(directory), _describe(exc)) from exc
        except OSError as exc:
            raise CheckpointStorageError(meta_path, _describe(exc)) from exc
        return CompletedCheckpoint(decode_metadata(data, meta_path), store.location(directory))

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
        store = self.blobs.at(location)
        path = store.location(handle.file_name)
        reader = partial(read_checked_state_file, handle=handle, path=path, key_groups=key_groups)
        try:
            return await store.run(store.read, handle.file_name, reader)
        except FileNotFoundError:
            raise CorruptCheckpointError(path, "missing state file") from None
        except OSError as exc:
            raise CheckpointStorageError(path, _describe(exc)) from exc

    async def read_piece(
        self,
        location: str,
        handle: StateHandle,
        piece: StatePiece,
        key_groups: KeyGroupRange | None = None,
    ) -> StateFileContents:
        """Read one shared piece ``handle`` of the checkpoint at ``location`` references.

        :raises CorruptCheckpointError: if the piece is missing, damaged, truncated or not
            the one the handle names
        :raises CheckpointStorageError: if it cannot be read
        """
        store = self.blobs.at(shared_location(location))
        path = store.location(piece.file_name)
        as_handle = replace(
            handle, file_name=piece.file_name, size=piece.size, checksum=piece.checksum, pieces=()
        )
        reader = partial(
            read_checked_state_file, handle=as_handle, path=path, key_groups=key_groups
        )
        try:
            return await store.run(store.read, piece.file_name, reader)
        except FileNotFoundError:
            raise CorruptCheckpointError(
                path, f"missing shared piece (written by checkpoint {piece.checkpoint_id})"
            ) from None
        except OSError as exc:
            raise CheckpointStorageError(path, _describe(exc)) from exc

    async def validate(self, location: str, *, deep: bool = True) -> list[Problem]:
        """Return what is wrong with the checkpoint at ``location`` (empty if valid)."""
        store = self.blobs.at(location)
        report = await store.run(partial(inspect_checkpoint, store, deep=deep))
        return report.problems

    async def find_latest(
        self, *, before: int | None = None, deep: bool = False
    ) -> tuple[CompletedCheckpoint | None, list[CorruptCheckpointError]]:
        """Return the newest completed checkpoint that passes validation, and the ones skipped.

        A damaged newest checkpoint is reported (file and reason) and the previous one tried,
        as DESIGN §6 asks of ``restore="latest"``.

        :param before: only consider ids below this (to fall back past a bad one)
        :param deep: also check every state file's CRC-32 (reads all state)
        :raises CheckpointStorageError: if the job directory cannot be listed
        """
        skipped: list[CorruptCheckpointError] = []
        for checkpoint_id in reversed(await self.list_completed()):
            if before is not None and checkpoint_id >= before:
                continue
            try:
                checkpoint = await self.load_checkpoint(checkpoint_id)
            except CorruptCheckpointError as exc:
                skipped.append(exc)
                continue
            problems = await self.validate(checkpoint.location, deep=deep)
            if problems:
                first = problems[0]
                skipped.append(
                    CorruptCheckpointError(first.file, first.reason, checkpoint_id=checkpoint_id)
                )
                continue
            return checkpoint, skipped
        return None, skipped


class FileCheckpointStorage(CheckpointStorage):
    """:class:`CheckpointStorage` in files under ``<base_dir>/<job_name>/``.

    :param base_dir: ``file:///abs/path`` or a plain path
    :param job_name: the job's name; made safe for use as a directory name
    :raises ValueError: if ``base_dir`` is not a local path or ``file://`` URI
    """

    blobs: FileBlobStore

    def __init__(self, base_dir: str | os.PathLike[str], job_name: str) -> None:
        super().__init__(FileBlobStore(base_dir), job_name)

    @property
    def base_dir(self) -> Path:
        """The directory holding job directories."""
        return self.blobs.root

    @property
    def job_dir(self) -> Path:
        """This job's directory."""
        return self.blobs.root / self.job_key


class MemoryCheckpointStorage(CheckpointStorage):
    """:class:`CheckpointStorage` in memory, at ``memory://<job>/chk-<n>``.

    :param job_name: the job's name (kept as it is in locations when it is a valid key)
    :param write_hook: awaited before every write and removal (failure injection, stalls)
    """

    blobs: MemoryBlobStore

    def __init__(self, job_name: str = "job", *, write_hook: WriteHook | None = None) -> None:
        try:
            job_dir = check_key(job_name) or safe_name(job_name)
        except ValueError:
            job_dir = safe_name(job_name)
        super().__init__(MemoryBlobStore(), job_name, job_dir=job_dir, write_hook=write_hook)

    def directory(self, location: str | int) -> dict[str, bytes]:
        """Return the live file dict of a location (tests may damage files through it).

        :raises KeyError: if nothing was written there
        """
        pointer = self.location_of(location) if isinstance(location, int) else location
        store, directory = self._resolve(pointer)
        return self.blobs.directory(store.location(directory))


_CONTRACT = tuple(
    name for name, value in vars(CheckpointStorage).items() if callable(value) and name[0] != "_"
)
"""The public methods a storage object passed in configuration must have."""


def create_checkpoint_storage(choice: Any, job_name: str) -> CheckpointStorage:
    """Build the storage a :class:`~streamlet.checkpoints.config.CheckpointConfig` chose.

    :param choice: ``config.storage``: a directory ``Path`` (file storage under it),
        :class:`~streamlet.checkpoints.config.JobManagerCheckpointStorage` or ``None`` (in memory),
        or a storage object (returned as is): a :class:`CheckpointStorage`, or any object with
        its methods, as
        :meth:`~streamlet.checkpoints.config.CheckpointConfig.set_checkpoint_storage` accepts
    :param job_name: the job's name (its directory under the base directory)
    :raises TypeError: if ``choice`` is none of those
    """
    if isinstance(choice, Path | str):
        return FileCheckpointStorage(choice, job_name)
    if choice is None or isinstance(choice, JobManagerCheckpointStorage):
        return MemoryCheckpointStorage(job_name)
    if isinstance(choice, CheckpointStorage) or all(
        callable(getattr(choice, name, None)) for name in _CONTRACT
    ):
        return choice
    raise TypeError(f"not a checkpoint storage choice: {choice!r}")
