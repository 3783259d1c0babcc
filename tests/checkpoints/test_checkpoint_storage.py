"""The storage contract, run against both implementations (the ``storage`` fixture)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import streamlet.checkpoints.file_blob_store as fileio_module
import streamlet.checkpoints.state_file as state_file_module
from streamlet.checkpoints import (
    CheckpointKind,
    CheckpointMetadata,
    CheckpointStorage,
    CheckpointStorageError,
    CorruptCheckpointError,
    FileCheckpointStorage,
    JobManagerCheckpointStorage,
    MemoryCheckpointStorage,
    create_checkpoint_storage,
)
from streamlet.checkpoints.latest import scan_latest
from streamlet.checkpoints.state_file import EncodedStateFile, state_handle_for
from streamlet.state.key_groups import KeyGroupRange
from tests.checkpoints.ckpt_testing import state_bytes

pytestmark = pytest.mark.asyncio


async def write_checkpoint(
    storage,
    checkpoint_id,
    *,
    complete=True,
    kind=CheckpointKind.CHECKPOINT,
    target=None,
    tasks=(("a", 0), ("a", 1)),
):
    location = storage.begin_checkpoint(checkpoint_id, kind, target)
    handles = []
    for uid, subtask in tasks:
        data = state_bytes(
            uid, subtask, keyed={kg: b"v%d" % kg for kg in range(subtask * 4, subtask * 4 + 4)}
        )
        handles.append(await storage.write_state_file(checkpoint_id, uid, subtask, data))
    meta = CheckpointMetadata.from_handles(
        checkpoint_id=checkpoint_id,
        kind=kind,
        job_name="job",
        trigger_timestamp_ms=1,
        completion_timestamp_ms=2,
        handles=handles,
        max_parallelism=8,
    )
    if complete:
        assert await storage.write_metadata(checkpoint_id, meta) == location
    return location, handles


def damage(storage, location: str, name: str, *, truncate: bool = False) -> None:
    if isinstance(storage, MemoryCheckpointStorage):
        files = storage.directory(location)
        data = bytearray(files[name])
        if truncate:
            files[name] = bytes(data[:-5])
        else:
            data[len(data) // 2] ^= 0xFF
            files[name] = bytes(data)
        return
    path = Path(location) / name
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(bytes(data[:-5]))
    else:
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


async def test_is_a_checkpoint_storage(storage):
    assert isinstance(storage, CheckpointStorage)


async def test_ids_increase(storage):
    assert storage.next_checkpoint_id() == 1
    assert storage.next_checkpoint_id() == 2
    assert storage.next_checkpoint_id(at_least=10) == 10
    assert storage.next_checkpoint_id() == 11


async def test_write_complete_and_read_back(storage):
    location, handles = await write_checkpoint(storage, 1)
    assert location == storage.location_of(1)
    assert await storage.list_completed() == [1]
    completed = await storage.load_checkpoint(1)
    assert completed.location == location
    assert completed.metadata.states == tuple(handles)
    assert completed.metadata.operators["a"].parallelism == 2
    contents = await storage.read_state_file(location, handles[1])
    assert contents.keyed == {4: b"v4", 5: b"v5", 6: b"v6", 7: b"v7"}
    assert contents.extra == {"pos": 1}
    part = await storage.read_state_file(location, handles[1], KeyGroupRange(5, 6))
    assert part.keyed == {5: b"v5", 6: b"v6"}
    assert await storage.validate(location) == []
    found, skipped = await storage.find_latest()
    assert found is not None and found.checkpoint_id == 1 and skipped == []


async def test_without_metadata_it_is_not_a_checkpoint(storage):
    location, _ = await write_checkpoint(storage, 3, complete=False)
    assert await storage.list_completed() == []
    with pytest.raises(CorruptCheckpointError, match=r"missing _metadata"):
        await storage.load_checkpoint(3)
    problems = await storage.validate(location)
    assert [p.corrupt for p in problems] == [False]
    assert await storage.find_latest() == (None, [])


async def test_load_missing_checkpoint(storage):
    with pytest.raises(CheckpointStorageError):
        await storage.load_checkpoint(99)


async def test_discard(storage):
    await write_checkpoint(storage, 1)
    await write_checkpoint(storage, 2, complete=False)
    await storage.discard(1)
    await storage.discard(2)
    await storage.discard(42)  # nothing there: fine
    assert await storage.list_completed() == []
    with pytest.raises(CheckpointStorageError):
        await storage.load_checkpoint(1)


async def test_delete_state_file(storage):
    location, handles = await write_checkpoint(storage, 1, complete=False)
    await storage.delete_state_file(1, handles[0])
    await storage.delete_state_file(1, handles[0])
    with pytest.raises(CorruptCheckpointError, match=r"missing state file"):
        await storage.read_state_file(location, handles[0])


async def test_savepoint_goes_to_target_and_survives_discard(storage, tmp_path):
    target = str(tmp_path / "savepoints")
    location, _ = await write_checkpoint(storage, 5, kind=CheckpointKind.SAVEPOINT, target=target)
    assert location.endswith("savepoint-job-5")
    assert location != storage.location_of(4)
    await storage.discard(5)
    loaded = await storage.load_checkpoint(location)
    assert loaded.kind is CheckpointKind.SAVEPOINT
    assert (await storage.load_checkpoint(location + "/_metadata")).checkpoint_id == 5
    assert await storage.list_completed() == []  # savepoints are not checkpoints of the job


async def test_incomplete_savepoint_is_discarded(storage, tmp_path):
    target = str(tmp_path / "sp")
    location, _ = await write_checkpoint(
        storage, 6, kind=CheckpointKind.SAVEPOINT, target=target, complete=False
    )
    await storage.discard(6)
    with pytest.raises(CheckpointStorageError):
        await storage.load_checkpoint(location)


async def test_begin_validates_target(storage):
    with pytest.raises(ValueError, match=r"^a savepoint needs a target directory, got None$"):
        storage.begin_checkpoint(1, CheckpointKind.SAVEPOINT)
    with pytest.raises(ValueError, match=r"^only savepoints take a target directory"):
        storage.begin_checkpoint(1, CheckpointKind.CHECKPOINT, "/tmp/x")


async def test_write_refuses_non_state_data(storage):
    with pytest.raises(CorruptCheckpointError, match=r"not a state file"):
        await storage.write_state_file(1, "a", 0, b"garbage-garbage-garbage")
    with pytest.raises(CorruptCheckpointError, match=r"expected 'a' subtask 0$"):
        await storage.write_state_file(1, "a", 0, state_bytes("b", 0))


def encoded(uid: str, subtask: int) -> EncodedStateFile:
    return EncodedStateFile.encode(
        uid, subtask, 2, 8, keyed={1: b"one", 5: b"five"}, extra={"p": 1}
    )


async def test_an_encoded_state_file_is_written_without_reading_its_header_back(
    storage, monkeypatch
):
    def no_parse(*args, **kwargs):
        raise AssertionError("the header of a file just encoded was parsed again")

    state = encoded("a", 0)
    monkeypatch.setattr(state_file_module, "read_state_header_from", no_parse)
    handle = await storage.write_state_file(1, "a", 0, state)
    monkeypatch.undo()
    # The handle is the one the bytes alone give (which parses the header).
    assert handle == state_handle_for(state.data, handle.file_name, "a", 0, "<memory>")
    meta = CheckpointMetadata.from_handles(
        checkpoint_id=1,
        kind=CheckpointKind.CHECKPOINT,
        job_name="job",
        trigger_timestamp_ms=1,
        completion_timestamp_ms=2,
        handles=[handle],
        max_parallelism=8,
    )
    location = await storage.write_metadata(1, meta)
    contents = await storage.read_state_file(location, handle)
    assert contents.keyed == {1: b"one", 5: b"five"}
    assert contents.extra == {"p": 1}


async def test_an_encoded_state_file_written_then_damaged_is_refused_on_restore(storage):
    handle = await storage.write_state_file(1, "a", 0, encoded("a", 0))
    location = storage.location_of(1)
    damage(storage, location, handle.file_name)
    with pytest.raises(CorruptCheckpointError, match=r"checksum mismatch"):
        await storage.read_state_file(location, handle)
    with pytest.raises(CorruptCheckpointError, match=r"checksum mismatch"):
        await storage.read_state_file(location, handle, KeyGroupRange(0, 7))


async def test_an_encoded_state_file_of_another_subtask_is_refused(storage):
    with pytest.raises(CorruptCheckpointError, match=r"expected 'a' subtask 0$"):
        await storage.write_state_file(1, "a", 0, encoded("a", 1))
    with pytest.raises(CorruptCheckpointError, match=r"expected 'a' subtask 0$"):
        await storage.write_state_file(1, "a", 0, encoded("b", 0))


async def test_corrupt_state_file_detected_on_read(storage):
    location, handles = await write_checkpoint(storage, 1)
    damage(storage, location, handles[0].file_name)
    with pytest.raises(CorruptCheckpointError, match=r"checksum mismatch"):
        await storage.read_state_file(location, handles[0])
    problems = await storage.validate(location, deep=True)
    assert problems and problems[0].corrupt
    assert problems[0].file.endswith(handles[0].file_name)
    assert await storage.validate(location, deep=False) == []


async def test_truncated_state_file_detected(storage):
    location, handles = await write_checkpoint(storage, 1)
    damage(storage, location, handles[1].file_name, truncate=True)
    with pytest.raises(CorruptCheckpointError, match=r"size mismatch: expected \d+ bytes"):
        await storage.read_state_file(location, handles[1], KeyGroupRange(0, 7))


async def test_latest_falls_back_past_corrupt_checkpoint(storage):
    await write_checkpoint(storage, 1)
    location2, _ = await write_checkpoint(storage, 2)
    damage(storage, location2, "_metadata")
    found, skipped = await storage.find_latest()
    assert found is not None and found.checkpoint_id == 1
    assert len(skipped) == 1 and "checksum mismatch" in str(skipped[0])
    assert skipped[0].path.endswith("_metadata")


async def test_latest_falls_back_past_missing_state_file(storage):
    await write_checkpoint(storage, 1)
    _, handles2 = await write_checkpoint(storage, 2)
    await storage.delete_state_file(2, handles2[0])
    found, skipped = await storage.find_latest()
    assert found.checkpoint_id == 1
    assert "missing state file" in str(skipped[0])
    found, _ = await storage.find_latest(before=1)
    assert found is None


async def test_the_latest_pointer_names_the_newest_completed_point(storage, tmp_path):
    assert await storage.read_latest_pointer() is None
    location1, _ = await write_checkpoint(storage, 1)
    assert await storage.read_latest_pointer() == (1, location1)
    target = "memory://sp" if isinstance(storage, MemoryCheckpointStorage) else str(tmp_path)
    savepoint, _ = await write_checkpoint(storage, 2, kind=CheckpointKind.SAVEPOINT, target=target)
    assert await storage.read_latest_pointer() == (2, savepoint)
    await write_checkpoint(storage, 3, complete=False)  # in flight: not completed
    assert await storage.read_latest_pointer() == (2, savepoint)
    scan = await scan_latest(storage)
    assert scan.point.location == savepoint and scan.damaged == []  # a newer savepoint wins


async def test_scan_reports_a_completed_checkpoint_that_lost_its_metadata(storage):
    location1, _ = await write_checkpoint(storage, 1)
    location2, _ = await write_checkpoint(storage, 2)
    if isinstance(storage, MemoryCheckpointStorage):
        del storage.directory(location2)["_metadata"]
    else:
        (Path(location2) / "_metadata").unlink()
    scan = await scan_latest(storage)
    assert scan.point.location == location1
    assert [(d.checkpoint_id, "missing _metadata" in d.detail) for d in scan.damaged] == [(2, True)]
    # Not crash-left: it completed (the pointer says so), so it is kept as evidence.
    assert await storage.discard_incomplete(2) == []
    assert await storage.validate(location2) != []


async def test_discard_incomplete_removes_only_what_never_completed(storage):
    await write_checkpoint(storage, 1)
    await write_checkpoint(storage, 2, complete=False)
    await write_checkpoint(storage, 3, complete=False)
    assert await storage.discard_incomplete(2) == [3]
    with pytest.raises(CheckpointStorageError):  # gone
        await storage.load_checkpoint(3)
    with pytest.raises(CorruptCheckpointError, match="missing _metadata"):  # kept
        await storage.load_checkpoint(2)
    assert await storage.list_completed() == [1]
    assert (await scan_latest(storage)).damaged == []  # 2 never completed: no damage


async def test_file_unreadable_metadata_is_damage_like_a_corrupt_one(tmp_path):
    storage = FileCheckpointStorage(tmp_path, "job")
    await write_checkpoint(storage, 1)
    location2, _ = await write_checkpoint(storage, 2)
    (Path(location2) / "_metadata").unlink()
    (Path(location2) / "_metadata").mkdir()  # EISDIR on read, as a bad sector gives EIO
    scan = await scan_latest(storage)
    assert scan.point.checkpoint_id == 1
    assert len(scan.damaged) == 1 and "unreadable" in scan.damaged[0].detail
    assert scan.damaged[0].path == str(Path(location2) / "_metadata")


async def test_file_pointer_naming_a_foreign_directory_is_refused(tmp_path):
    storage = FileCheckpointStorage(tmp_path, "job")
    await write_checkpoint(storage, 1)
    (storage.job_dir / "_latest").write_bytes(b'{"checkpoint_id": 1, "location": "/etc"}')
    with pytest.raises(CorruptCheckpointError, match="not checkpoint 1 of this job"):
        await storage.read_latest_pointer()
    scan = await scan_latest(storage)
    assert scan.point.checkpoint_id == 1 and len(scan.damaged) == 1  # unknown: refuse later


# --- the file storage ---


async def test_file_layout(tmp_path):
    storage = FileCheckpointStorage(f"file://{tmp_path}/base", "my job/1")
    location, handles = await write_checkpoint(storage, 1, tasks=(("ns/op", 0),))
    job_dir = Path(location).parent
    assert job_dir.parent == tmp_path / "base"
    assert job_dir.name.startswith("my_job_1_")
    assert Path(location).name == "chk-1"
    names = sorted(os.listdir(location))
    assert names == ["_metadata", handles[0].file_name]
    assert handles[0].file_name.startswith("op-ns_op_") and handles[0].file_name.endswith(
        "-0.state"
    )


async def test_file_ids_continue_across_instances(tmp_path):
    first = FileCheckpointStorage(tmp_path, "job")
    await write_checkpoint(first, first.next_checkpoint_id())  # 1, complete
    cid = first.next_checkpoint_id()
    await write_checkpoint(first, cid, complete=False)  # 2, no _metadata
    second = FileCheckpointStorage(tmp_path, "job")
    assert second.next_checkpoint_id() == 3
    other_job = FileCheckpointStorage(tmp_path, "other")
    assert other_job.next_checkpoint_id() == 1


async def test_disk_full_leaves_no_file(tmp_path, monkeypatch):
    storage = FileCheckpointStorage(tmp_path, "job")

    def full(path, data):
        path.write_bytes(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio_module, "_write_synced_sync", full)
    with pytest.raises(
        CheckpointStorageError, match=r"No space left on device \(ENOSPC\)$"
    ) as info:
        await storage.write_state_file(1, "a", 0, state_bytes("a", 0))
    assert info.value.path.endswith("op-a-0.state")
    assert os.listdir(tmp_path / "job" / "chk-1") == []


async def test_metadata_write_failure_leaves_no_metadata(tmp_path, monkeypatch):
    storage = FileCheckpointStorage(tmp_path, "job")
    real = fileio_module._write_synced_sync

    def fail_metadata(path, data):
        if "_metadata" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(fileio_module, "_write_synced_sync", fail_metadata)
    with pytest.raises(CheckpointStorageError, match=r"_metadata: No space left on device"):
        await write_checkpoint(storage, 1)
    assert not (tmp_path / "job" / "chk-1" / "_metadata").exists()
    assert [n for n in os.listdir(tmp_path / "job" / "chk-1") if n.startswith(".")] == []


async def test_unusable_base_dir(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    storage = FileCheckpointStorage(blocker, "job")
    with pytest.raises(CheckpointStorageError) as info:
        await storage.write_state_file(1, "a", 0, state_bytes("a", 0))
    assert str(blocker) in info.value.path


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
async def test_permission_denied(tmp_path):
    base = tmp_path / "ro"
    base.mkdir()
    base.chmod(0o500)
    try:
        storage = FileCheckpointStorage(base, "job")
        with pytest.raises(CheckpointStorageError, match=r"Permission denied \(EACCES\)$"):
            await storage.write_state_file(1, "a", 0, state_bytes("a", 0))
    finally:
        base.chmod(0o700)


async def test_discard_never_removes_a_completed_savepoint_even_from_a_new_instance(tmp_path):
    storage = FileCheckpointStorage(tmp_path / "c", "job")
    location, _ = await write_checkpoint(
        storage, 4, kind=CheckpointKind.SAVEPOINT, target=str(tmp_path / "sp")
    )
    other = FileCheckpointStorage(tmp_path / "c", "job")
    await other.discard(4)  # it only knows chk-4 of the job dir
    assert (Path(location) / "_metadata").exists()


# --- the memory storage ---


async def test_memory_write_hook_injects_failures():
    calls = []

    async def hook(operation, checkpoint_id, name):
        calls.append((operation, checkpoint_id, name))
        if operation == "metadata":
            raise OSError(errno.ENOSPC, "No space left on device")

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    with pytest.raises(CheckpointStorageError, match=r"chk-1/_metadata: No space left on device"):
        await write_checkpoint(storage, 1)
    assert await storage.list_completed() == []
    assert [c[0] for c in calls] == ["state", "state", "metadata"]
    assert [op for op, _, _ in storage.operations] == ["state", "state"]


async def test_create_storage_from_config_choice(tmp_path):
    assert isinstance(create_checkpoint_storage(tmp_path, "j"), FileCheckpointStorage)
    assert isinstance(
        create_checkpoint_storage(JobManagerCheckpointStorage(), "j"), MemoryCheckpointStorage
    )
    assert isinstance(create_checkpoint_storage(None, "j"), MemoryCheckpointStorage)
    mine = MemoryCheckpointStorage()
    assert create_checkpoint_storage(mine, "j") is mine
    with pytest.raises(TypeError, match=r"^not a checkpoint storage choice: 3$"):
        create_checkpoint_storage(3, "j")


async def test_create_storage_accepts_an_object_with_the_storage_methods():
    inner = MemoryCheckpointStorage("j")

    class Delegating:
        def __getattr__(self, name):
            return getattr(inner, name)

    duck = Delegating()
    assert create_checkpoint_storage(duck, "j") is duck  # type: ignore[comparison-overlap]  # duck

    class Partial:
        def write_state_file(self): ...

        def write_metadata(self): ...

    with pytest.raises(TypeError, match=r"^not a checkpoint storage choice: "):
        create_checkpoint_storage(Partial(), "j")


async def test_check_writable_names_the_job_directory_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointStorageError, match=r"file/job: the checkpoint directory cannot"):
        await FileCheckpointStorage(blocker, "job").check_writable()
    writable = FileCheckpointStorage(tmp_path / "ok", "job")
    await writable.check_writable()
    assert list((tmp_path / "ok" / "job").iterdir()) == []  # the probe is gone
