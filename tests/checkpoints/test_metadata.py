from __future__ import annotations

import zlib

import orjson
import pytest

from streamlet.checkpoints import (
    CheckpointKind,
    CheckpointMetadata,
    CorruptCheckpointError,
    StateHandle,
    decode_metadata,
    encode_metadata,
)


def meta() -> CheckpointMetadata:
    handles = [
        StateHandle("b", 1, "op-b-1.state", 20, 0xDEADBEEF, 2, 128),
        StateHandle("a", 0, "op-a-0.state", 10, 7, 1, 128),
        StateHandle("b", 0, "op-b-0.state", 30, 9, 2, 128),
    ]
    return CheckpointMetadata.from_handles(
        checkpoint_id=7,
        kind=CheckpointKind.CHECKPOINT,
        job_name="job",
        trigger_timestamp_ms=100,
        completion_timestamp_ms=150,
        handles=handles,
        max_parallelism=128,
        extra={"graph": "v1"},
    )


def test_roundtrip():
    original = meta()
    decoded = decode_metadata(encode_metadata(original))
    assert decoded == original
    assert [(h.operator_uid, h.subtask_index) for h in decoded.states] == [
        ("a", 0),
        ("b", 0),
        ("b", 1),
    ]
    assert decoded.operators["b"].parallelism == 2
    assert decoded.state_size == 60
    assert [h.subtask_index for h in decoded.handles_for("b")] == [0, 1]


def test_file_is_readable_json_with_trailer():
    data = encode_metadata(meta())
    assert data.startswith(b"{\n")
    assert data.splitlines()[-1].startswith(b"crc32:")


def test_truncated_metadata():
    data = encode_metadata(meta())
    with pytest.raises(CorruptCheckpointError, match=r"^.*/_metadata: missing checksum trailer"):
        decode_metadata(data[: len(data) // 2], "/c/chk-7/_metadata")


def test_edited_metadata():
    data = encode_metadata(meta()).replace(b'"size": 10', b'"size": 11')
    with pytest.raises(CorruptCheckpointError, match=r"checksum mismatch \(expected [0-9a-f]{8}"):
        decode_metadata(data)


def test_valid_checksum_but_wrong_content():
    body = b'{"format": "something-else"}'
    data = body + b"\ncrc32:%08x\n" % zlib.crc32(body)
    with pytest.raises(CorruptCheckpointError, match=r"invalid metadata: not a streamlet"):
        decode_metadata(data)


def test_path_traversal_in_file_name_is_refused():
    bad = meta().to_dict()
    bad["states"][0]["file"] = "../../etc/passwd"
    body = orjson.dumps(bad)
    data = body + b"\ncrc32:%08x\n" % zlib.crc32(body)
    with pytest.raises(CorruptCheckpointError, match=r"is not a plain file name"):
        decode_metadata(data)
