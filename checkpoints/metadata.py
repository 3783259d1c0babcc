"""The ``_metadata`` file: the entry point and commit record of a checkpoint or savepoint.

A checkpoint directory is a checkpoint only once ``_metadata`` exists, and it is written last
(DESIGN §5). It lists every state file with its size and CRC-32, so a reader can tell a
complete checkpoint from a damaged one without trusting the directory listing.

Format: an orjson object (indented, for people who ``cat`` it) followed by one trailer line
``crc32:<8 hex digits>`` holding the CRC-32 of everything before the trailer::

    {
      "format": "streamlet-checkpoint-metadata",
      "version": 1,
      "checkpoint_id": 7, "kind": "checkpoint", "job_name": "...",
      "trigger_timestamp_ms": ..., "completion_timestamp_ms": ...,
      "max_parallelism": 128,
      "operators": {"<uid>": {"parallelism": 4, "max_parallelism": 128}},
      "states": [{"operator_uid": "<uid>", "subtask_index": 0, "file": "op-<uid>-0.state",
                  "size": 1234, "checksum": 305419896}],
      "extra": {}
    }
    crc32:1a2b3c4d

An incremental checkpoint's state entry also lists ``pieces``: the files in the job's
``shared/`` directory holding its keyed state, a base and then the changes after it in
order (see :class:`StatePiece`); pieces written by earlier checkpoints are shared with them.
An entry without ``pieces`` (every savepoint's, every full checkpoint's) is self-contained.

A truncated or edited file fails the trailer check and raises
:class:`~streamlet.checkpoints.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import CorruptCheckpointError
from .events import CheckpointKind

__all__ = [
    "LATEST_POINTER_NAME",
    "METADATA_FILE_NAME",
    "METADATA_FORMAT",
    "METADATA_VERSION",
    "SHARED_DIR_NAME",
    "CheckpointMetadata",
    "OperatorInfo",
    "StateHandle",
    "StatePiece",
    "decode_latest_pointer",
    "decode_metadata",
    "encode_latest_pointer",
    "encode_metadata",
    "shared_location",
]

METADATA_FILE_NAME = "_metadata"
LATEST_POINTER_NAME = "_latest"
"""In a job's checkpoint directory: which checkpoint or savepoint completed last."""
SHARED_DIR_NAME = "shared"
"""In a job's checkpoint directory: the pieces incremental checkpoints share."""
METADATA_FORMAT = "streamlet-checkpoint-metadata"
METADATA_VERSION = 1
_TRAILER_PREFIX = b"crc32:"


def _plain_name(name: str, what: str) -> str:
    if "/" in name or "\\" in name or "\x00" in name or name in ("", ".", ".."):
        raise ValueError(f"{what} name {name!r} is not a plain file name")
    return name


def shared_location(checkpoint_location: str) -> str:
    """Return where the shared pieces of the checkpoint at ``checkpoint_location`` are: the
    ``shared/`` directory beside it, in its job directory."""
    parent = checkpoint_location.rstrip("/").rpartition("/")[0]
    return f"{parent}/{SHARED_DIR_NAME}"


@dataclass(frozen=True, slots=True)
class StatePiece:
    """One file of keyed state in the job's ``shared/`` directory, written by checkpoint
    ``checkpoint_id`` and referenced by it and by later incremental checkpoints.

    It is a state file (:mod:`~streamlet.checkpoints.state_file`) holding only key groups:
    full ones in a base, changes in the pieces after it.

    :param file_name: its name inside ``shared/``
    :param size: its size in bytes
    :param checksum: CRC-32 of the whole file
    :param checkpoint_id: the checkpoint that wrote it
    """

    file_name: str
    size: int
    checksum: int
    checkpoint_id: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in ``_metadata``."""
        return {
            "file": self.file_name,
            "size": self.size,
            "checksum": self.checksum,
            "checkpoint_id": self.checkpoint_id,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> StatePiece:
        """Read the JSON form back, checking every field.

        :raises ValueError: if a field is missing, of the wrong type or out of range
        """
        if not isinstance(raw, dict):
            raise ValueError(f"a state piece must be an object, got {raw!r}")
        name = raw.get("file")
        size, checksum, checkpoint_id = (
            raw.get("size"),
            raw.get("checksum"),
            raw.get("checkpoint_id"),
        )
        if not (
            isinstance(name, str)
            and isinstance(size, int)
            and isinstance(checksum, int)
            and isinstance(checkpoint_id, int)
            and all(type(n) is int and n >= 0 for n in (size, checksum, checkpoint_id))
        ):
            raise ValueError(f"malformed state piece {raw!r}")
        return cls(_plain_name(name, "state piece"), size, checksum, checkpoint_id)


@dataclass(frozen=True, slots=True)
class StateHandle:
    """Where one subtask's state of one operator is stored, and how to check it.

    :param operator_uid: the operator's uid
    :param subtask_index: the subtask that wrote it
    :param file_name: the file's name inside the checkpoint directory
    :param size: its size in bytes
    :param checksum: CRC-32 of the whole file
    :param parallelism: the operator's parallelism when it was written
    :param max_parallelism: the operator's max parallelism (number of key groups)
    :param pieces: for incremental checkpoints, the shared pieces holding the keyed state
        (a base, then changes, in order); empty when the file itself holds it
    """

    operator_uid: str
    subtask_index: int
    file_name: str
    size: int
    checksum: int
    parallelism: int
    max_parallelism: int
    pieces: tuple[StatePiece, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in ``_metadata``."""
        out: dict[str, Any] = {
            "operator_uid": self.operator_uid,
            "subtask_index": self.subtask_index,
            "file": self.file_name,
            "size": self.size,
            "checksum": self.checksum,
        }
        if self.pieces:
            out["pieces"] = [piece.to_dict() for piece in self.pieces]
        return out

    @property
    def state_size(self) -> int:
        """Bytes of the whole state: the file and every piece it references."""
        return self.size + sum(piece.size for piece in self.pieces)


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    """Per-operator facts a restore needs: the parallelism it was written with."""

    parallelism: int
    max_parallelism: int


@dataclass(frozen=True, slots=True)
class CheckpointMetadata:
    """Everything ``_metadata`` records about one checkpoint or savepoint."""

    checkpoint_id: int
    kind: CheckpointKind
    job_name: str
    trigger_timestamp_ms: int
    completion_timestamp_ms: int
    max_parallelism: int | None
    operators: Mapping[str, OperatorInfo] = field(default_factory=dict)
    states: tuple[StateHandle, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_handles(
        cls,
        *,
        checkpoint_id: int,
        kind: CheckpointKind,
        job_name: str,
        trigger_timestamp_ms: int,
        completion_timestamp_ms: int,
        handles: Iterable[StateHandle],
        max_parallelism: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CheckpointMetadata:
        """Build metadata from the handles the subtasks acknowledged."""
        states = tuple(sorted(handles, key=lambda h: (h.operator_uid, h.subtask_index)))
        operators = {h.operator_uid: OperatorInfo(h.parallelism, h.max_parallelism) for h in states}
        return cls(
            checkpoint_id=checkpoint_id,
            kind=kind,
            job_name=job_name,
            trigger_timestamp_ms=trigger_timestamp_ms,
            completion_timestamp_ms=completion_timestamp_ms,
            max_parallelism=max_parallelism,
            operators=operators,
            states=states,
            extra=dict(extra or {}),
        )

    @property
    def state_size(self) -> int:
        """Total bytes of the state: every state file and every shared piece it references
        (Flink's ``state_size``, the full size)."""
        return sum(h.state_size for h in self.states)

    @property
    def checkpointed_size(self) -> int:
        """Bytes this checkpoint wrote: its state files and the pieces it wrote itself, not
        those shared with earlier checkpoints (Flink's ``checkpointed_size``; the full size
        for a checkpoint without shared pieces)."""
        own = {
            piece.file_name: piece.size
            for h in self.states
            for piece in h.pieces
            if piece.checkpoint_id == self.checkpoint_id
        }
        return sum(h.size for h in self.states) + sum(own.values())

    @property
    def pieces(self) -> frozenset[str]:
        """Names of the shared pieces this checkpoint references."""
        return frozenset(piece.file_name for h in self.states for piece in h.pieces)

    def handles_for(self, operator_uid: str) -> list[StateHandle]:
        """Return the handles of one operator, by subtask index."""
        return [h for h in self.states if h.operator_uid == operator_uid]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written to ``_metadata`` (without the trailer)."""
        return {
            "format": METADATA_FORMAT,
            "version": METADATA_VERSION,
            "checkpoint_id": self.checkpoint_id,
            "kind": self.kind.value,
            "job_name": self.job_name,
            "trigger_timestamp_ms": self.trigger_timestamp_ms,
            "completion_timestamp_ms": self.completion_timestamp_ms,
            "max_parallelism": self.max_parallelism,
            "operators": {
                uid: {"parallelism": op.parallelism, "max_parallelism": op.max_parallelism}
                for uid, op in self.operators.items()
            },
            "states": [h.to_dict() for h in self.states],
            "extra": dict(self.extra),
        }


def encode_metadata(metadata: CheckpointMetadata) -> bytes:
    """Return the bytes of a ``_metadata`` file.

    :raises TypeError: if ``metadata.extra`` is not JSON-serializable
    """
    body = orjson.dumps(metadata.to_dict(), option=orjson.OPT_INDENT_2)
    return b"%s\n%s%08x\n" % (body, _TRAILER_PREFIX, zlib.crc32(body))


def decode_metadata(data: bytes, path: str = "<memory>") -> CheckpointMetadata:
    """Decode and check a ``_metadata`` file.

    :param path: named in errors
    :raises CorruptCheckpointError: if the trailer is missing (truncated file), the checksum
        does not match (edited or damaged file), or the content is not valid metadata
    """
    body, sep, trailer = data.rstrip(b"\n").rpartition(b"\n")
    if not sep or not trailer.startswith(_TRAILER_PREFIX):
        raise CorruptCheckpointError(path, "missing checksum trailer (truncated?)")
    try:
        expected = int(trailer[len(_TRAILER_PREFIX) :], 16)
    except ValueError:
        raise CorruptCheckpointError(path, f"unreadable checksum trailer {trailer!r}") from None
    actual = zlib.crc32(body)
    if actual != expected:
        raise CorruptCheckpointError(
            path, f"checksum mismatch (expected {expected:08x}, got {actual:08x})"
        )
    try:
        raw = orjson.loads(body)
        if raw.get("format") != METADATA_FORMAT:
            raise ValueError(f"not a streamlet metadata file (format {raw.get('format')!r})")
        if raw.get("version") != METADATA_VERSION:
            raise ValueError(f"unsupported metadata version {raw.get('version')!r}")
        operators = {
            str(uid): OperatorInfo(int(op["parallelism"]), int(op["max_parallelism"]))
            for uid, op in raw["operators"].items()
        }
        states = tuple(
            StateHandle(
                operator_uid=str(s["operator_uid"]),
                subtask_index=int(s["subtask_index"]),
                file_name=str(s["file"]),
                size=int(s["size"]),
                checksum=int(s["checksum"]),
                parallelism=operators[str(s["operator_uid"])].parallelism,
                max_parallelism=operators[str(s["operator_uid"])].max_parallelism,
                pieces=tuple(StatePiece.from_dict(p) for p in s.get("pieces") or ()),
            )
            for s in raw["states"]
        )
        for h in states:
            _plain_name(h.file_name, "state file")
        max_parallelism = raw["max_parallelism"]
        return CheckpointMetadata(
            checkpoint_id=int(raw["checkpoint_id"]),
            kind=CheckpointKind(raw["kind"]),
            job_name=str(raw["job_name"]),
            trigger_timestamp_ms=int(raw["trigger_timestamp_ms"]),
            completion_timestamp_ms=int(raw["completion_timestamp_ms"]),
            max_parallelism=None if max_parallelism is None else int(max_parallelism),
            operators=operators,
            states=states,
            extra=dict(raw.get("extra") or {}),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptCheckpointError(path, f"invalid metadata: {exc}") from None


def encode_latest_pointer(checkpoint_id: int, location: str) -> bytes:
    """Encode the job's ``_latest`` pointer: the newest completed checkpoint or savepoint.

    Restore uses it to tell a checkpoint that completed (so two-phase-commit sinks may have
    committed its output) and then lost or damaged its ``_metadata`` from one that never
    completed, and to find a savepoint newer than every checkpoint.
    """
    return orjson.dumps({"checkpoint_id": checkpoint_id, "location": location})


def decode_latest_pointer(data: bytes, path: str = "<memory>") -> tuple[int, str]:
    """Decode a ``_latest`` pointer into (checkpoint id, location).

    :raises CorruptCheckpointError: if it is not a pointer this module wrote
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptCheckpointError(path, f"not a checkpoint pointer: {exc}") from None
    if not isinstance(doc, dict):
        raise CorruptCheckpointError(path, "not a checkpoint pointer: expected an object")
    checkpoint_id = doc.get("checkpoint_id")
    location = doc.get("location")
    if type(checkpoint_id) is not int or checkpoint_id < 1:
        raise CorruptCheckpointError(path, f"bad checkpoint id {checkpoint_id!r}")
    if not isinstance(location, str) or not location or "\x00" in location:
        raise CorruptCheckpointError(path, f"bad location {location!r}")
    return checkpoint_id, location
