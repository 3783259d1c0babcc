"""Shared pieces of incremental checkpoints: writing, reference counting, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlet.checkpoints import (
    CheckpointKind,
    CheckpointMetadata,
    CorruptCheckpointError,
    FileCheckpointStorage,
)
from streamlet.checkpoints.metadata import StateHandle, StatePiece, decode_metadata, encode_metadata
from streamlet.checkpoints.state_file import EncodedStateFile

pytestmark = pytest.mark.asyncio


def piece_data(fill: bytes) -> EncodedStateFile:
    return EncodedStateFile.encode("a", 0, 1, 8, keyed={kg: fill * (kg + 1) for kg in range(8)})


async def checkpoint(
    storage, checkpoint_id: int, base: tuple[StatePiece, ...], *, commit: bool = True
) -> tuple[StateHandle, ...]:
    storage.begin_checkpoint(checkpoint_id)
    piece = await storage.write_piece(checkpoint_id, "a", 0, piece_data(b"%d" % checkpoint_id))
    handle = await storage.write_state_file(
        checkpoint_id, "a", 0, EncodedStateFile.encode("a", 0, 1, 8)
    )
    handle = StateHandle(**{**handle_fields(handle), "pieces": (*base, piece)})
    if commit:
        await storage.write_metadata(checkpoint_id, metadata(checkpoint_id, handle))
    return (handle,)


def handle_fields(handle: StateHandle) -> dict:
    return {name: getattr(handle, name) for name in StateHandle.__slots__}


def metadata(checkpoint_id: int, *handles: StateHandle) -> CheckpointMetadata:
    return CheckpointMetadata.from_handles(
        checkpoint_id=checkpoint_id,
        kind=CheckpointKind.CHECKPOINT,
        job_name="job",
        trigger_timestamp_ms=1,
        completion_timestamp_ms=2,
        handles=handles,
        max_parallelism=8,
    )


def shared_names(storage: FileCheckpointStorage) -> set[str]:
    shared = storage.job_dir / "shared"
    return {p.name for p in shared.iterdir()} if shared.exists() else set()


@pytest.fixture
def storage(tmp_path: Path) -> FileCheckpointStorage:
    return FileCheckpointStorage(tmp_path, "job")


async def test_a_piece_lives_while_a_checkpoint_references_it(storage) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    (h2,) = await checkpoint(storage, 2, h1.pieces)
    base, change = h2.pieces
    assert shared_names(storage) == {base.file_name, change.file_name}
    await storage.discard(1)
    assert shared_names(storage) == {base.file_name, change.file_name}
    refs = await storage.referenced_pieces()
    assert refs == {base.file_name: {2}, change.file_name: {2}}
    await storage.discard(2)
    assert shared_names(storage) == set()


async def test_pieces_of_a_discarded_incomplete_checkpoint_are_removed(storage) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    await checkpoint(storage, 2, h1.pieces, commit=False)
    assert len(shared_names(storage)) == 2
    await storage.discard(2)
    assert shared_names(storage) == {h1.pieces[0].file_name}


async def test_counts_are_rebuilt_from_disk_by_a_new_storage(storage, tmp_path: Path) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    await checkpoint(storage, 2, h1.pieces)
    again = FileCheckpointStorage(tmp_path, "job")
    await again.discard(2)  # checkpoint 1 (of the earlier run) still needs its base
    assert shared_names(again) == {h1.pieces[0].file_name}
    await again.discard(1)
    assert shared_names(again) == set()


async def test_a_checkpoint_referencing_a_removed_piece_is_refused(storage) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    await checkpoint(storage, 2, ())
    await storage.discard(1)  # its base is gone now
    with pytest.raises(CorruptCheckpointError, match="references a shared piece that was removed"):
        await checkpoint(storage, 3, h1.pieces)
    assert not (storage.job_dir / "chk-3" / "_metadata").exists()


async def test_orphans_of_a_crash_are_removed_at_start(storage, tmp_path: Path) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    await checkpoint(storage, 2, h1.pieces, commit=False)
    again = FileCheckpointStorage(tmp_path, "job")  # the process died mid-checkpoint
    assert await again.discard_incomplete(newer_than=1) == [2]
    assert shared_names(again) == {h1.pieces[0].file_name}


async def test_a_savepoint_with_pieces_is_refused(storage, tmp_path: Path) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    storage.begin_checkpoint(2, CheckpointKind.SAVEPOINT, tmp_path / "sp")
    meta = CheckpointMetadata.from_handles(
        checkpoint_id=2,
        kind=CheckpointKind.SAVEPOINT,
        job_name="job",
        trigger_timestamp_ms=1,
        completion_timestamp_ms=2,
        handles=(h1,),
    )
    with pytest.raises(ValueError, match="self-contained"):
        await storage.write_metadata(2, meta)


async def test_missing_and_damaged_pieces_fail_validation_and_reading(storage) -> None:
    (h1,) = await checkpoint(storage, 1, ())
    (h2,) = await checkpoint(storage, 2, h1.pieces)
    location = storage.location_of(2)
    assert await storage.validate(location) == []
    contents = await storage.read_piece(location, h2, h2.pieces[1], None)
    assert contents.keyed[3] == b"2222"
    path = storage.job_dir / "shared" / h2.pieces[1].file_name
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    problems = await storage.validate(location)
    assert [p.file for p in problems] == [str(path)]
    assert problems[0].reason.startswith("shared piece: checksum mismatch")
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        await storage.read_piece(location, h2, h2.pieces[1])
    path.unlink()
    problems = await storage.validate(location, deep=False)
    assert [p.reason for p in problems] == ["missing shared piece (written by checkpoint 2)"]
    with pytest.raises(CorruptCheckpointError, match="missing shared piece"):
        await storage.read_piece(location, h2, h2.pieces[1])


def test_metadata_round_trips_pieces_and_refuses_bad_ones() -> None:
    piece = StatePiece("1-op-a-0-00000000.piece", 10, 7, 1)
    handle = StateHandle("a", 0, "op-a-0.state", 5, 3, 1, 8, (piece,))
    meta = metadata(2, handle)
    again = decode_metadata(encode_metadata(meta))
    assert again.states[0].pieces == (piece,)
    assert again.state_size == 15 and again.checkpointed_size == 5
    for bad, message in (
        ({"file": "../x", "size": 1, "checksum": 1, "checkpoint_id": 1}, "not a plain file name"),
        ({"file": "x", "size": -1, "checksum": 1, "checkpoint_id": 1}, "malformed state piece"),
        ({"file": "x"}, "malformed state piece"),
        ("x", "must be an object"),
    ):
        with pytest.raises(ValueError, match=message):
            StatePiece.from_dict(bad)
    tampered = encode_metadata(meta).replace(b'"checkpoint_id": 1\n', b'"checkpoint_id": -1\n')
    with pytest.raises(CorruptCheckpointError):
        decode_metadata(tampered)
