"""Blobs in a dict: the in-memory blob store (tests and small jobs; lost with the process).

Directories are explicit, as on a filesystem: writing a blob creates its directory, removing
the last blob keeps it, and only :meth:`MemoryBlobStore.remove_tree` removes it. So "a
checkpoint directory without ``_metadata``" means the same here as on disk. Locations look
like ``memory://<root>/<key>``; stores made by :meth:`MemoryBlobStore.at` share one dict.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from typing import IO

from .blob_store import T, check_key

__all__ = ["MEMORY_SCHEME", "MemoryBlobStore"]

MEMORY_SCHEME = "memory://"


def _not_found(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


class MemoryBlobStore:
    """Keep blobs in a dict of directory paths to ``{name: bytes}``.

    :param root: the prefix of every path (``""``: the top of the memory namespace)
    """

    def __init__(self, root: str = "", *, _dirs: dict[str, dict[str, bytes]] | None = None):
        self.root = root
        # Invariant: every key is a directory path (root and key joined with "/"), every
        # value that directory's blobs; ancestors need no entry of their own.
        self._dirs: dict[str, dict[str, bytes]] = {} if _dirs is None else _dirs

    def __repr__(self) -> str:
        return f"MemoryBlobStore({self.root!r})"

    def _path(self, key: str) -> str:
        check_key(key)
        if not key:
            return self.root
        return f"{self.root}/{key}" if self.root else key

    def location(self, key: str = "") -> str:
        """Return ``memory://<root>/<key>``."""
        return MEMORY_SCHEME + self._path(key)

    def at(self, location: str | os.PathLike[str]) -> MemoryBlobStore:
        """Return a store rooted at ``location`` (``memory://`` optional), sharing this dict."""
        root = os.fspath(location).removeprefix(MEMORY_SCHEME).rstrip("/")
        return MemoryBlobStore(root, _dirs=self._dirs)

    def directory(self, location: str) -> dict[str, bytes]:
        """Return the live blob dict of the directory at ``location`` (tests damage blobs
        through it).

        :raises KeyError: if nothing was written there
        """
        return self._dirs[os.fspath(location).removeprefix(MEMORY_SCHEME).rstrip("/")]

    def _split(self, key: str) -> tuple[str, str]:
        parent, _, name = self._path(key).rpartition("/")
        if not name:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.location(key))
        return parent, name

    def read(self, key: str, reader: Callable[[IO[bytes], int], T]) -> T:
        """Return ``reader(file, size)`` over blob ``key``."""
        parent, name = self._split(key)
        data = self._dirs.get(parent, {}).get(name)
        if data is None:
            if self._is_dir(self._path(key)):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.location(key))
            raise _not_found(self.location(key))
        return reader(io.BytesIO(data), len(data))

    def write_atomically(self, key: str, data: bytes, *, sync_dir: bool = False) -> None:
        """Store a copy of ``data`` as blob ``key`` (creating its directory)."""
        parent, name = self._split(key)
        self._dirs.setdefault(parent, {})[name] = bytes(data)

    def remove(self, key: str) -> None:
        """Remove blob ``key`` (its directory stays)."""
        parent, name = self._split(key)
        if self._dirs.get(parent, {}).pop(name, None) is None:
            raise _not_found(self.location(key))

    def remove_tree(self, key: str) -> None:
        """Remove directory ``key`` and every directory below it."""
        path = self._path(key)
        doomed = [d for d in self._dirs if d == path or d.startswith(path + "/")]
        if not doomed:
            raise _not_found(self.location(key))
        for directory in doomed:
            del self._dirs[directory]

    def _is_dir(self, path: str) -> bool:
        prefix = path + "/" if path else ""
        return path in self._dirs or any(d.startswith(prefix) for d in self._dirs)

    def list(self, key: str = "") -> dict[str, int | None]:
        """Return name to size (``None`` for a directory) of directory ``key``'s entries."""
        path = self._path(key)
        files = self._dirs.get(path)
        prefix = path + "/" if path else ""
        children: dict[str, int | None] = {
            d[len(prefix) :].split("/", 1)[0]: None
            for d in self._dirs
            if d.startswith(prefix) and d != path
        }
        if files is None and not children:
            parent, _, name = path.rpartition("/")
            if name in self._dirs.get(parent, {}):
                raise NotADirectoryError(
                    errno.ENOTDIR, os.strerror(errno.ENOTDIR), self.location(key)
                )
            raise _not_found(self.location(key))
        children.update((name, len(data)) for name, data in (files or {}).items())
        return children

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Call ``function(*args)`` right here: nothing blocks."""
        return function(*args)
