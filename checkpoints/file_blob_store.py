"""Blobs as files below a directory, written atomically, under asyncio and trio alike.

An atomic write goes to a hidden temporary name (``.<name>.<random>.tmp``), is flushed,
fsynced and renamed over the final name (and removed if anything fails); with ``sync_dir``
the directory is fsynced before (so entries renamed into it earlier are durable first) and
after (so this rename is). A reader never sees half a file under its final name.

Every storage operation is one blocking function run in one anyio worker-thread call
(:meth:`FileBlobStore.run`): open, write, fsync and close happen together, and a cancelled
caller waits for the thread to finish, so no half-written file object is ever left open.

One call per operation also matters for speed: a worker thread needs the GIL to start, after
every system call and to report back, and a busy event loop hands it over only when a
subtask yields (every couple of milliseconds). A checkpoint made of fifteen small calls took
75 ms of hand-overs; one call writes a whole file. For the same reason a write makes few
system calls: a temporary name from a counter rather than from ``os.urandom``, and the
directory is created only when the first write into it finds it missing. (Files are written
through ``open()``, unbuffered: raw ``os.open`` saved two cheap system calls a file, and
would bypass what tests and users hook to inject disk errors.)

Why not aiofiles: it needs asyncio's running loop (every job must also run under trio), and
it opens a file in one thread hop and writes in the next, so a failover that cancels a
snapshot between the two leaks the open file (the fault-injection tests caught exactly that
as a ResourceWarning).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

import anyio.to_thread

from .blob_store import T, check_key
from .config import parse_storage_uri

__all__ = ["FileBlobStore", "fsync_directory"]


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make ``directory``'s entries (names created, renamed or removed in it) durable.

    The one place the engine does this: checkpoint storage, the file sink and the ingress
    write-ahead log all call it. A no-op where directories cannot be opened (Windows).
    """
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Temporary names: unique per process (the random part) and per write (the counter).
_TMP_PREFIX = secrets.token_hex(4)
_tmp_counter = itertools.count()


def _write_synced_sync(path: Path, data: bytes) -> None:
    with open(path, "wb", buffering=0) as f:
        view = memoryview(data)
        while view:
            view = view[f.write(view) :]
        os.fsync(f.fileno())


class FileBlobStore:
    """Keep blobs as files below ``root``; keys are paths relative to it.

    :param root: a directory (need not exist yet: writes create it), a plain path or a
        ``file://`` URI
    :raises ValueError: if ``root`` is not a local path or ``file://`` URI
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = parse_storage_uri(root)

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key) if key else self.root

    def location(self, key: str = "") -> str:
        """Return the file path of ``key``."""
        return str(self._path(key))

    def at(self, location: str | os.PathLike[str]) -> FileBlobStore:
        """Return a store rooted at the directory ``location``."""
        return FileBlobStore(location)

    def read(self, key: str, reader: Callable[[IO[bytes], int], T]) -> T:
        """Open file ``key`` and return ``reader(file, size)``."""
        with open(self._path(key), "rb") as f:
            return reader(f, os.fstat(f.fileno()).st_size)

    def write_atomically(self, key: str, data: bytes, *, sync_dir: bool = False) -> None:
        """Create ``key``'s directory if needed and replace the file by ``data`` atomically."""
        path = self._path(key)
        directory = path.parent
        if sync_dir:
            os.makedirs(directory, exist_ok=True)
            fsync_directory(directory)
        tmp = path.with_name(f".{path.name}.{_TMP_PREFIX}{next(_tmp_counter)}.tmp")
        try:
            try:
                _write_synced_sync(tmp, data)
            except FileNotFoundError:
                # The first file of its directory (or a sibling's write created it meanwhile).
                os.makedirs(directory, exist_ok=True)
                _write_synced_sync(tmp, data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        if sync_dir:
            fsync_directory(directory)

    def remove(self, key: str) -> None:
        """Remove file ``key``."""
        os.remove(self._path(key))

    def remove_tree(self, key: str) -> None:
        """Remove directory ``key`` and everything in it."""
        shutil.rmtree(self._path(key))

    def list(self, key: str = "") -> dict[str, int | None]:
        """Return name to size (``None`` for a directory) of directory ``key``'s entries.

        A file removed while listing (a running job cleans up) is left out.
        """
        entries: dict[str, int | None] = {}
        with os.scandir(self._path(key)) as scan:
            for entry in scan:
                try:
                    entries[entry.name] = None if entry.is_dir() else entry.stat().st_size
                except FileNotFoundError:
                    continue
        return entries

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Return ``function(*args)``, run in one worker thread."""
        return await anyio.to_thread.run_sync(function, *args)
