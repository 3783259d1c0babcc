"""The few blob operations checkpoint storage needs, and the keys they take.

A blob store holds byte strings (blobs) under relative, ``/``-separated keys below one root
(a directory, or a prefix in memory). :class:`~streamlet.checkpoints.storage.CheckpointStorage`
keeps all checkpoint bookkeeping (ids, locations, the ``_latest`` pointer, integrity checks) and
asks a blob store only to read, write atomically, remove, list and remove a tree.

The primitives are synchronous and may block; the storage calls them through :meth:`run`,
which a file store runs in a worker thread and a memory store runs inline. So a composite
step (read and check a state file, inspect a checkpoint directory) costs one worker-thread
call, not one per system call (see :mod:`streamlet.checkpoints.file_blob_store` for why that
matters).

Keys come from checkpoint metadata read back from disk, which is untrusted: every key is
checked by :func:`check_key` before it names a path, so a damaged ``_metadata`` cannot make a
restore read or a discard remove anything outside the root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Protocol, TypeVar, runtime_checkable

__all__ = ["BlobStore", "check_key", "join_key", "read_all"]

T = TypeVar("T")
"""What a reader or a function passed to :meth:`BlobStore.run` returns."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a relative key below a root; ``""`` names the root itself.

    :raises ValueError: if a component is empty, ``.`` or ``..``, or the key holds a
        backslash or a NUL (it could escape the root or mean another file elsewhere)
    """
    if key == "":
        return key
    if "\\" in key or "\x00" in key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"not a relative blob key: {key!r}")
    return key


def read_all(f: IO[bytes], size: int) -> bytes:
    """The reader for :meth:`BlobStore.read` that returns the whole blob."""
    return f.read()


def join_key(directory: str, name: str) -> str:
    """Return the key of ``name`` inside the directory key ``directory``."""
    return f"{directory}/{name}" if directory else name


@runtime_checkable
class BlobStore(Protocol):
    """Blobs under relative keys below one root.

    Missing blobs raise :class:`FileNotFoundError`, other failures :class:`OSError`, as the
    filesystem does; the storage turns them into
    :class:`~streamlet.checkpoints.errors.CheckpointStorageError` naming :meth:`location`.
    """

    def location(self, key: str = "") -> str:
        """Return the location shown for ``key`` (a path, or a ``memory://`` location)."""
        ...

    def at(self, location: str | os.PathLike[str]) -> BlobStore:
        """Return a store of the same kind rooted at ``location`` (a savepoint target, or a
        checkpoint a restore names)."""
        ...

    def read(self, key: str, reader: Callable[[IO[bytes], int], T]) -> T:
        """Open blob ``key`` and return ``reader(file, size)`` (which may read only a part)."""
        ...

    def write_atomically(self, key: str, data: bytes, *, sync_dir: bool = False) -> None:
        """Replace blob ``key`` by ``data`` so that readers see all of it or none.

        :param sync_dir: also make the directory durable before (entries written into it
            earlier) and after (this entry) the write
        """
        ...

    def remove(self, key: str) -> None:
        """Remove blob ``key``."""
        ...

    def remove_tree(self, key: str) -> None:
        """Remove the directory ``key`` and everything below it."""
        ...

    def list(self, key: str = "") -> dict[str, int | None]:
        """Return the entries directly in directory ``key``: name to size, ``None`` for a
        directory.

        :raises FileNotFoundError: if there is no such directory
        :raises NotADirectoryError: if ``key`` is a blob
        """
        ...

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Return ``function(*args)``, called where this store's primitives may block."""
        ...
