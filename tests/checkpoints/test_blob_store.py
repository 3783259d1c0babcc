"""The blob store contract, run against the file and the memory store (``blobs`` fixture)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

import pytest

import streamlet.checkpoints.file_blob_store as file_blob_store
from streamlet.checkpoints.blob_store import BlobStore, check_key
from streamlet.checkpoints.file_blob_store import FileBlobStore
from streamlet.checkpoints.memory_blob_store import MemoryBlobStore

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", "file"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore("base")
    return FileBlobStore(tmp_path / "base")


def read_all(f: IO[bytes], size: int) -> bytes:
    data = f.read()
    assert len(data) == size
    return data


async def test_is_a_blob_store(blobs: BlobStore) -> None:
    assert isinstance(blobs, BlobStore)


async def test_write_read_list_remove(blobs: BlobStore) -> None:
    await blobs.run(blobs.write_atomically, "job/chk-1/a", b"abc")
    blobs.write_atomically("job/chk-1/b", b"12345", sync_dir=True)
    blobs.write_atomically("job/_latest", b"x")
    assert blobs.read("job/chk-1/a", read_all) == b"abc"
    assert blobs.read("job/chk-1/b", lambda f, size: (f.read(2), size)) == (b"12", 5)
    assert blobs.list("job") == {"chk-1": None, "_latest": 1}
    assert blobs.list("job/chk-1") == {"a": 3, "b": 5}
    blobs.write_atomically("job/chk-1/a", b"replaced")
    assert blobs.read("job/chk-1/a", read_all) == b"replaced"
    blobs.remove("job/chk-1/a")
    assert blobs.list("job/chk-1") == {"b": 5}
    blobs.remove("job/chk-1/b")
    assert blobs.list("job/chk-1") == {}  # the directory outlives its last blob
    blobs.remove_tree("job/chk-1")
    assert blobs.list("job") == {"_latest": 1}


async def test_missing_blobs_and_directories(blobs: BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        blobs.read("nope", read_all)
    with pytest.raises(FileNotFoundError):
        blobs.remove("nope")
    with pytest.raises(FileNotFoundError):
        blobs.remove_tree("nope")
    with pytest.raises(FileNotFoundError):
        blobs.list("nope")
    blobs.write_atomically("d/f", b"1")
    with pytest.raises(NotADirectoryError):
        blobs.list("d/f")
    with pytest.raises(IsADirectoryError):
        blobs.read("d", read_all)


async def test_locations_and_stores_at_other_roots(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.write_atomically("job/chk-1/_metadata", b"m")
    location = blobs.location("job/chk-1")
    assert blobs.location("job/chk-1/_metadata") == location + "/_metadata"
    there = blobs.at(location)
    assert there.location() == location
    assert there.read("_metadata", read_all) == b"m"
    if isinstance(blobs, MemoryBlobStore):
        assert location == "memory://base/job/chk-1"
    else:
        assert location == str(tmp_path / "base" / "job" / "chk-1")


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/", "a\\b", "a\x00b", ".."]
)
async def test_keys_cannot_leave_the_root(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError) as info:
        check_key(key)
    assert str(info.value) == f"not a relative blob key: {key!r}"
    for attempt in (
        lambda: blobs.read(key, read_all),
        lambda: blobs.write_atomically(key, b"x"),
        lambda: blobs.remove(key),
        lambda: blobs.remove_tree(key),
        lambda: blobs.list(key),
    ):
        with pytest.raises(ValueError, match=r"^not a relative blob key: "):
            attempt()


async def test_file_write_failure_leaves_neither_file_nor_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = FileBlobStore(tmp_path)

    def full(path: Path, data: bytes) -> None:
        path.write_bytes(data[:1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_blob_store, "_write_synced_sync", full)
    with pytest.raises(OSError, match="No space left"):
        blobs.write_atomically("d/f", b"data")
    assert os.listdir(tmp_path / "d") == []


async def test_file_sync_dir_fsyncs_the_directory_before_and_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(file_blob_store, "fsync_directory", lambda d: synced.append(str(d)))
    blobs = FileBlobStore(tmp_path)
    blobs.write_atomically("d/f", b"data")
    assert synced == []
    blobs.write_atomically("d/_metadata", b"data", sync_dir=True)
    assert synced == [str(tmp_path / "d")] * 2


async def test_fsync_directory_accepts_a_directory_and_refuses_a_missing_one(
    tmp_path: Path,
) -> None:
    file_blob_store.fsync_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        file_blob_store.fsync_directory(tmp_path / "missing")
