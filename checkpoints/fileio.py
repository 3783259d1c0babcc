"""Async file operations that run under asyncio and trio alike.

The data path (write + fsync, read) uses aiofiles on asyncio, as the storage design asks.
aiofiles cannot run under trio (it needs asyncio's running loop), and every job must run
under both backends, so on trio the same blocking calls run in anyio's worker threads —
which is what aiofiles does internally anyway. Small metadata operations (mkdir, rename,
remove) use anyio's worker threads on both.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiofiles
import aiofiles.os
import anyio.to_thread
import sniffio

__all__ = ["fsync_dir", "isdir", "makedirs", "read_bytes", "remove", "replace", "write_synced"]


def _on_asyncio() -> bool:
    return sniffio.current_async_library() == "asyncio"


def _write_synced_sync(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


async def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (truncating) and fsync it before returning."""
    if _on_asyncio():
        async with aiofiles.open(path, "wb") as f:
            await f.write(data)
            await f.flush()
            await aiofiles.os.wrap(os.fsync)(f.fileno())  # type: ignore[attr-defined]
    else:
        await anyio.to_thread.run_sync(_write_synced_sync, path, data)


async def read_bytes(path: Path) -> bytes:
    """Return the whole content of ``path``."""
    if _on_asyncio():
        async with aiofiles.open(path, "rb") as f:
            return await f.read()
    return await anyio.to_thread.run_sync(Path(path).read_bytes)


async def makedirs(path: Path) -> None:
    await anyio.to_thread.run_sync(lambda: os.makedirs(path, exist_ok=True))


async def replace(source: Path, target: Path) -> None:
    await anyio.to_thread.run_sync(os.replace, source, target)


async def remove(path: Path) -> None:
    await anyio.to_thread.run_sync(os.remove, path)


async def isdir(path: Path) -> bool:
    return await anyio.to_thread.run_sync(os.path.isdir, path)


def _fsync_dir_sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in directory ``path`` durable."""
    await anyio.to_thread.run_sync(_fsync_dir_sync, path)
