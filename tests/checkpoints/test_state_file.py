from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest

from streamlet.checkpoints import CorruptCheckpointError, decode_state_file, encode_state_file
from streamlet.checkpoints.state_file import (
    EncodedStateFile,
    read_state_file_from,
    read_state_header_from,
)
from streamlet.state.key_groups import KeyGroupRange


class CountingReader(io.BytesIO):
    """A BytesIO that counts the bytes read through it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        return data


def sample(**overrides) -> bytes:
    args: dict[str, Any] = dict(
        keyed={kg: bytes([kg]) * (100 + kg) for kg in range(16)},
        operator=b"operator-state",
        extra={"offset": 42, "file": "a.txt"},
    )
    args.update(overrides)
    return encode_state_file("my-op", 1, 2, 16, **args)


def test_roundtrip():
    contents = decode_state_file(sample())
    assert (contents.operator_uid, contents.subtask_index) == ("my-op", 1)
    assert (contents.parallelism, contents.max_parallelism) == (2, 16)
    assert contents.operator == b"operator-state"
    assert contents.extra == {"offset": 42, "file": "a.txt"}
    assert contents.keyed == {kg: bytes([kg]) * (100 + kg) for kg in range(16)}


def test_empty_sections():
    contents = decode_state_file(encode_state_file("x", 0, 1, 1))
    assert contents.keyed == {} and contents.operator is None and contents.extra == {}


def test_key_group_filter_reads_only_that_range():
    data = sample()
    reader = CountingReader(data)
    contents = read_state_file_from(reader, len(data), "f", KeyGroupRange(4, 7))
    assert sorted(contents.keyed) == [4, 5, 6, 7]
    assert contents.keyed[5] == bytes([5]) * 105
    header = read_state_header_from(io.BytesIO(data), "f")
    wanted = sum(100 + kg for kg in range(4, 8))
    assert header.operator is not None and header.extra is not None
    # Header, operator and extra sections, and exactly the wanted key groups: nothing else.
    assert reader.bytes_read == (
        header.payload_offset + header.operator[1] + header.extra[1] + wanted
    )


def test_key_group_filter_tolerates_corruption_elsewhere():
    data = bytearray(sample())
    header = read_state_header_from(io.BytesIO(bytes(data)), "f")
    off, _, _ = header.keyed[12]
    data[header.payload_offset + off] ^= 0xFF
    contents = decode_state_file(bytes(data), KeyGroupRange(0, 3))
    assert sorted(contents.keyed) == [0, 1, 2, 3]
    with pytest.raises(CorruptCheckpointError, match=r"f: checksum mismatch in key group 12$"):
        decode_state_file(bytes(data), path="f")


def test_bad_magic():
    data = b"NOTSTATE" + sample()[8:]
    with pytest.raises(CorruptCheckpointError, match=r"/p/x\.state: not a state file: bad magic"):
        decode_state_file(data, path="/p/x.state")


def test_unsupported_version():
    data = bytearray(sample())
    struct.pack_into("<H", data, 8, 99)
    with pytest.raises(CorruptCheckpointError, match=r"unsupported state file version 99"):
        decode_state_file(bytes(data))


@pytest.mark.parametrize("cut", [3, 20, 100, -1])
def test_truncated(cut):
    data = sample()
    with pytest.raises(CorruptCheckpointError, match=r"truncated"):
        decode_state_file(data[:cut], path="x")


def test_trailing_garbage():
    with pytest.raises(CorruptCheckpointError, match=r"\(trailing data\)$"):
        decode_state_file(sample() + b"junk")


def test_flipped_header_byte():
    data = bytearray(sample())
    data[25] ^= 0x01
    with pytest.raises(CorruptCheckpointError, match=r"header checksum mismatch$"):
        decode_state_file(bytes(data))


@pytest.mark.parametrize("section", ["the operator state section", "the extra section"])
def test_flipped_section_byte(section):
    data = bytearray(sample())
    header = read_state_header_from(io.BytesIO(bytes(data)), "f")
    sec = header.operator if "operator" in section else header.extra
    assert sec is not None  # sample() writes both sections
    data[header.payload_offset + sec[0]] ^= 0x01
    with pytest.raises(CorruptCheckpointError, match=f"checksum mismatch in {section}$"):
        decode_state_file(bytes(data))


def test_extra_must_be_json():
    with pytest.raises(
        TypeError, match=r"^extra state of operator 'my-op' is not JSON-serializable"
    ):
        sample(extra={"x": object()})


def test_an_encoded_state_file_is_the_plain_encoding_with_its_checksum() -> None:
    args: dict[str, Any] = {
        "keyed": {3: b"three", 1: b"one"},
        "operator": b"op",
        "extra": {"pos": 7},
    }
    state = EncodedStateFile.encode("my-op", 1, 2, 16, **args)
    assert state.data == encode_state_file("my-op", 1, 2, 16, **args)
    assert state.checksum == zlib.crc32(state.data)
    assert (state.operator_uid, state.subtask_index) == ("my-op", 1)
    assert (state.parallelism, state.max_parallelism) == (2, 16)
