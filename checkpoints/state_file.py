"""The on-disk format of one state file: the state of one operator in one subtask.

Layout (little-endian)::

    magic        8 bytes   b"STLSTATE"
    version      u16       FORMAT_VERSION
    header_len   u32       length of the header
    header_crc   u32       CRC-32 of the header
    header       orjson    {"operator_uid", "subtask_index", "parallelism", "max_parallelism",
                            "payload_size", "operator": [off, len, crc] | null,
                            "extra": [off, len, crc] | null,
                            "keyed": [[key_group, off, len, crc], ...]}
    payload      bytes     the sections, offsets relative to the payload start

Sections are written in the order operator, extra, keyed (ascending key group), so the key
groups of one :class:`~streamlet.state.key_groups.KeyGroupRange` are one contiguous byte range: a
subtask restoring at a new parallelism reads the header and exactly that range, and never parses the
other key groups. Every section carries its own CRC-32, checked when it is read.
Key-group and operator blobs are opaque bytes (the state layer serializes them); ``extra`` is a
small JSON object the engine owns (source positions, ...).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from streamlet.state.key_groups import KeyGroupRange

from .errors import CorruptCheckpointError
from .metadata import StateHandle

__all__ = [
    "FORMAT_VERSION",
    "STATE_FILE_MAGIC",
    "EncodedStateFile",
    "StateFileContents",
    "StateFileHeader",
    "decode_state_file",
    "encode_state_file",
    "read_checked_state_file",
    "read_state_file_from",
    "read_state_header_from",
    "state_handle_for",
]

STATE_FILE_MAGIC = b"STLSTATE"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHII")  # magic, version, header_len, header_crc
_MAX_HEADER = 1 << 30

_Section = tuple[int, int, int]
"""(offset, length, crc32) of a section, offset relative to the payload."""


@dataclass(frozen=True, slots=True)
class StateFileHeader:
    """The index of a state file: who wrote it and where each section is."""

    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    payload_offset: int
    payload_size: int
    operator: _Section | None
    extra: _Section | None
    keyed: dict[int, _Section]

    @property
    def file_size(self) -> int:
        """The size the whole file must have."""
        return self.payload_offset + self.payload_size


@dataclass(slots=True)
class StateFileContents:
    """What a state file holds (the keyed part possibly filtered to some key groups)."""

    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    keyed: dict[int, bytes] = field(default_factory=dict)
    operator: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode_state_file(
    operator_uid: str,
    subtask_index: int,
    parallelism: int,
    max_parallelism: int,
    *,
    keyed: Mapping[int, bytes] | None = None,
    operator: bytes | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Return the bytes of one state file.

    The blobs are copied exactly once, into the result.

    :param keyed: serialized state per key group; empty key groups may be left out
    :param operator: serialized operator (non-keyed) state, opaque here
    :param extra: a small JSON-serializable dict the engine reads back on restore
    :raises TypeError: if ``extra`` is not JSON-serializable
    """
    parts: list[bytes] = []
    offset = 0

    def add(blob: bytes) -> _Section:
        nonlocal offset
        section = (offset, len(blob), zlib.crc32(blob))
        parts.append(blob)
        offset += len(blob)
        return section

    operator_section = None if operator is None else add(operator)
    extra_section = None
    if extra:
        try:
            extra_section = add(orjson.dumps(extra))
        except TypeError as exc:
            raise TypeError(
                f"extra state of operator {operator_uid!r} is not JSON-serializable: {exc}"
            ) from exc
    keyed_index = [[kg, *add(blob)] for kg, blob in sorted((keyed or {}).items())]
    header = orjson.dumps(
        {
            "operator_uid": operator_uid,
            "subtask_index": subtask_index,
            "parallelism": parallelism,
            "max_parallelism": max_parallelism,
            "payload_size": offset,
            "operator": operator_section,
            "extra": extra_section,
            "keyed": keyed_index,
        }
    )
    prefix = _PREFIX.pack(STATE_FILE_MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))
    return b"".join([prefix, header, *parts])


@dataclass(frozen=True, slots=True)
class EncodedStateFile:
    """An encoded state file, with what its handle needs, known from encoding it.

    :func:`state_handle_for` takes it without parsing the header back and checksumming the
    bytes a second time: they were built by :meth:`encode` from these very fields and never
    left memory, so the check that ``data`` is a state file of that operator and subtask
    holds by construction. What protects a restore is untouched: reading a state file back
    (:func:`read_checked_state_file`) checks its size and CRC-32 against the handle, the
    magic, version, header CRC-32 and index, and each section's CRC-32.
    """

    data: bytes
    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    #: CRC-32 of ``data``.
    checksum: int

    @classmethod
    def encode(
        cls,
        operator_uid: str,
        subtask_index: int,
        parallelism: int,
        max_parallelism: int,
        *,
        keyed: Mapping[int, bytes] | None = None,
        operator: bytes | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> EncodedStateFile:
        """Encode a state file as :func:`encode_state_file` does, and checksum it.

        :raises TypeError: if ``extra`` is not JSON-serializable
        """
        data = encode_state_file(
            operator_uid,
            subtask_index,
            parallelism,
            max_parallelism,
            keyed=keyed,
            operator=operator,
            extra=extra,
        )
        return cls(
            data, operator_uid, subtask_index, parallelism, max_parallelism, zlib.crc32(data)
        )


def _read_exact(f: IO[bytes], n: int, path: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise CorruptCheckpointError(
            path, f"truncated: {what} needs {n} bytes, only {len(data)} present"
        )
    return data


def _section(raw: Any) -> _Section | None:
    return None if raw is None else _present_section(raw)


def _present_section(raw: Any) -> _Section:
    off, length, crc = raw
    if not all(isinstance(v, int) and v >= 0 for v in (off, length, crc)):
        raise ValueError(f"bad section {raw!r}")
    return off, length, crc


def read_state_header_from(f: IO[bytes], path: str) -> StateFileHeader:
    """Read and check the header of a state file positioned at its start.

    :raises CorruptCheckpointError: if the magic, version, header checksum or index is wrong
        or the file is too short for its header
    """
    magic, version, header_len, header_crc = _PREFIX.unpack(
        _read_exact(f, _PREFIX.size, path, "the file prefix")
    )
    if magic != STATE_FILE_MAGIC:
        raise CorruptCheckpointError(path, f"not a state file: bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(
            path, f"unsupported state file version {version} (expected {FORMAT_VERSION})"
        )
    if header_len > _MAX_HEADER:
        raise CorruptCheckpointError(path, f"implausible header length {header_len}")
    raw = _read_exact(f, header_len, path, "the header")
    if zlib.crc32(raw) != header_crc:
        raise CorruptCheckpointError(path, "header checksum mismatch")
    try:
        index = orjson.loads(raw)
        header = StateFileHeader(
            operator_uid=str(index["operator_uid"]),
            subtask_index=int(index["subtask_index"]),
            parallelism=int(index["parallelism"]),
            max_parallelism=int(index["max_parallelism"]),
            payload_offset=_PREFIX.size + header_len,
            payload_size=int(index["payload_size"]),
            operator=_section(index["operator"]),
            extra=_section(index["extra"]),
            keyed={int(kg): _present_section(sec) for kg, *sec in index["keyed"]},
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(path, f"unreadable header: {exc}") from None
    return header


def read_state_file_from(
    f: IO[bytes],
    size: int,
    path: str,
    key_groups: KeyGroupRange | None = None,
) -> StateFileContents:
    """Read a state file from a seekable binary file positioned at its start.

    Only the header, the operator and extra sections and the byte range of the wanted key
    groups are read.

    :param size: the size of the whole file, to detect truncation before reading
    :param key_groups: load only these key groups; ``None`` loads all
    :raises CorruptCheckpointError: if the file is truncated, too long, or any section read
        fails its checksum
    """
    header = read_state_header_from(f, path)
    if size != header.file_size:
        raise CorruptCheckpointError(
            path,
            f"truncated: expected {header.file_size} bytes, found {size}"
            if size < header.file_size
            else f"expected {header.file_size} bytes, found {size} (trailing data)",
        )
    base = header.payload_offset

    def read(section: _Section, what: str) -> bytes:
        off, length, crc = section
        if off + length > header.payload_size:
            raise CorruptCheckpointError(path, f"{what} lies outside the payload")
        f.seek(base + off)
        blob = _read_exact(f, length, path, what)
        if zlib.crc32(blob) != crc:
            raise CorruptCheckpointError(path, f"checksum mismatch in {what}")
        return blob

    contents = StateFileContents(
        header.operator_uid, header.subtask_index, header.parallelism, header.max_parallelism
    )
    if header.operator is not None:
        contents.operator = read(header.operator, "the operator state section")
    if header.extra is not None:
        blob = read(header.extra, "the extra section")
        try:
            contents.extra = orjson.loads(blob)
        except orjson.JSONDecodeError as exc:
            raise CorruptCheckpointError(path, f"unreadable extra section: {exc}") from None
    wanted = [
        (kg, sec) for kg, sec in header.keyed.items() if key_groups is None or kg in key_groups
    ]
    if wanted:
        # One read for the whole (contiguous) range, then slice: far fewer syscalls than
        # a seek and read per key group.
        start = min(sec[0] for _, sec in wanted)
        end = max(sec[0] + sec[1] for _, sec in wanted)
        span = memoryview(_read_span(f, base, start, end, header, path))
        for kg, (off, length, crc) in wanted:
            blob = bytes(span[off - start : off - start + length])
            if zlib.crc32(blob) != crc:
                raise CorruptCheckpointError(path, f"checksum mismatch in key group {kg}")
            contents.keyed[kg] = blob
    return contents


def _read_span(
    f: IO[bytes], base: int, start: int, end: int, header: StateFileHeader, path: str
) -> bytes:
    if end > header.payload_size:
        raise CorruptCheckpointError(path, "the keyed section lies outside the payload")
    f.seek(base + start)
    return _read_exact(f, end - start, path, "the keyed section")


def decode_state_file(
    data: bytes,
    key_groups: KeyGroupRange | None = None,
    path: str = "<memory>",
) -> StateFileContents:
    """Decode a whole state file held in memory.

    :param key_groups: keep only these key groups; ``None`` keeps all
    :param path: named in errors
    :raises CorruptCheckpointError: if the data is not a valid state file
    """
    return read_state_file_from(io.BytesIO(data), len(data), path, key_groups)


# --- the integrity checks against a handle (one place for writing, reading, validating) ---


def state_handle_for(
    data: bytes | EncodedStateFile,
    file_name: str,
    operator_uid: str,
    subtask_index: int,
    path: str,
) -> StateHandle:
    """Return the handle of an encoded state file about to be written as ``file_name``.

    For plain bytes, the parallelism recorded in the handle is read from the file's own
    header, which also proves ``data`` is a state file of the right operator and subtask.
    An :class:`EncodedStateFile` carries both (see there why that is as safe).

    :raises CorruptCheckpointError: if ``data`` is not a state file of that operator/subtask
    """
    if isinstance(data, EncodedStateFile):
        owner = (data.operator_uid, data.subtask_index)
        parallelism, max_parallelism = data.parallelism, data.max_parallelism
        size, checksum = len(data.data), data.checksum
    else:
        header = read_state_header_from(io.BytesIO(data), path)
        owner = (header.operator_uid, header.subtask_index)
        parallelism, max_parallelism = header.parallelism, header.max_parallelism
        size, checksum = len(data), zlib.crc32(data)
    if owner != (operator_uid, subtask_index):
        raise CorruptCheckpointError(
            path,
            f"state file holds operator {owner[0]!r} subtask {owner[1]}, "
            f"expected {operator_uid!r} subtask {subtask_index}",
        )
    return StateHandle(
        operator_uid=operator_uid,
        subtask_index=subtask_index,
        file_name=file_name,
        size=size,
        checksum=checksum,
        parallelism=parallelism,
        max_parallelism=max_parallelism,
    )


def read_checked_state_file(
    f: IO[bytes],
    size: int,
    handle: StateHandle,
    path: str,
    key_groups: KeyGroupRange | None = None,
) -> StateFileContents:
    """Read a state file and check it is the one ``handle`` names, intact.

    The size must match the handle's. With ``key_groups``, only the header, the operator and
    extra sections and that range of key groups are read (each checked by its own CRC-32);
    without, the whole file is read and checked against the handle's CRC-32 too.

    :param size: the size of the whole file
    :raises CorruptCheckpointError: if the file is damaged, truncated or not the one the
        handle names
    """
    if size != handle.size:
        raise CorruptCheckpointError(
            path, f"size mismatch: expected {handle.size} bytes, found {size}"
        )
    if key_groups is None:
        data = f.read()
        crc = zlib.crc32(data)
        if crc != handle.checksum:
            raise CorruptCheckpointError(
                path, f"checksum mismatch: expected crc32 {handle.checksum:08x}, got {crc:08x}"
            )
        contents = read_state_file_from(io.BytesIO(data), size, path)
    else:
        contents = read_state_file_from(f, size, path, key_groups)
    if (contents.operator_uid, contents.subtask_index) != (
        handle.operator_uid,
        handle.subtask_index,
    ):
        raise CorruptCheckpointError(
            path,
            f"holds operator {contents.operator_uid!r} subtask {contents.subtask_index}, "
            f"expected {handle.operator_uid!r} subtask {handle.subtask_index}",
        )
    return contents
