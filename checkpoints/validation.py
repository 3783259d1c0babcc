"""Check stored checkpoints: complete, uncorrupted, every file present and matching.

Synchronous and storage-agnostic at its core (:func:`check_state_files` takes ``stat`` and
``read`` callables), with directory helpers for the file layout. Used by the command line
(``python -m checkpoints validate``) and, in a worker thread, by the file storage when it
looks for the latest valid checkpoint to restore.

A checkpoint is

- **valid**: ``_metadata`` reads and passes its checksum, and every state file it lists exists
  with the recorded size (and, in a deep check, the recorded CRC-32 and a readable header);
- **incomplete**: no ``_metadata`` (never completed, or still being written), or a listed
  state file is missing;
- **corrupt**: ``_metadata`` or a state file is damaged (checksum, size, or format).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import CorruptCheckpointError
from .layout import is_temporary_name, parse_checkpoint_dir_name
from .metadata import METADATA_FILE_NAME, CheckpointMetadata, decode_metadata
from .state_file import decode_state_file

__all__ = [
    "CheckpointReport",
    "Problem",
    "Validity",
    "check_state_files",
    "find_checkpoint_dirs",
    "inspect_checkpoint_dir",
]


class Validity(Enum):
    """The verdict on one stored checkpoint."""

    VALID = "valid"
    INCOMPLETE = "incomplete"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a checkpoint: which file, and why."""

    file: str
    reason: str
    corrupt: bool
    """True for damage; False for something missing (incomplete)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"file": self.file, "reason": self.reason, "corrupt": self.corrupt}


@dataclass(slots=True)
class CheckpointReport:
    """What inspecting one checkpoint directory found."""

    path: str
    name: str
    kind: str
    checkpoint_id: int | None
    problems: list[Problem] = field(default_factory=list)
    metadata: CheckpointMetadata | None = None
    file_count: int = 0
    size: int = 0
    timestamp_ms: int | None = None

    @property
    def validity(self) -> Validity:
        """Valid, incomplete or corrupt (damage wins over absence)."""
        if any(p.corrupt for p in self.problems):
            return Validity.CORRUPT
        return Validity.INCOMPLETE if self.problems else Validity.VALID

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "checkpoint_id": self.checkpoint_id,
            "status": self.validity.value,
            "timestamp_ms": self.timestamp_ms,
            "size": self.size,
            "file_count": self.file_count,
            "problems": [p.to_dict() for p in self.problems],
        }


def check_state_files(
    metadata: CheckpointMetadata,
    stat: Callable[[str], int | None],
    read: Callable[[str], bytes] | None = None,
    describe: Callable[[str], str] = str,
) -> list[Problem]:
    """Check every state file ``metadata`` lists.

    :param stat: file name to its size, or ``None`` if it does not exist
    :param read: file name to its bytes, for a deep check (CRC-32 and header); ``None`` for a
        quick check of presence and size
    :param describe: file name to the path shown in problems
    """
    problems: list[Problem] = []
    for handle in metadata.states:
        name = handle.file_name
        shown = describe(name)
        try:
            size = stat(name)
            if size is None:
                problems.append(Problem(shown, "missing state file", corrupt=False))
                continue
            if size != handle.size:
                problems.append(
                    Problem(
                        shown,
                        f"size mismatch: expected {handle.size} bytes, found {size}",
                        corrupt=True,
                    )
                )
                continue
            if read is None:
                continue
            data = read(name)
        except OSError as exc:
            problems.append(Problem(shown, f"unreadable: {exc.strerror or exc}", corrupt=True))
            continue
        crc = zlib.crc32(data)
        if crc != handle.checksum:
            problems.append(
                Problem(
                    shown,
                    f"checksum mismatch: expected crc32 {handle.checksum:08x}, got {crc:08x}",
                    corrupt=True,
                )
            )
            continue
        try:
            contents = decode_state_file(data, path=shown)
        except CorruptCheckpointError as exc:
            problems.append(Problem(shown, exc.detail or str(exc), corrupt=True))
            continue
        if (contents.operator_uid, contents.subtask_index) != (
            handle.operator_uid,
            handle.subtask_index,
        ):
            problems.append(
                Problem(
                    shown,
                    f"holds operator {contents.operator_uid!r} subtask "
                    f"{contents.subtask_index}, metadata says {handle.operator_uid!r} "
                    f"subtask {handle.subtask_index}",
                    corrupt=True,
                )
            )
    return problems


def _stat_size(directory: Path) -> Callable[[str], int | None]:
    def stat(name: str) -> int | None:
        try:
            return (directory / name).stat().st_size
        except FileNotFoundError:
            return None

    return stat


def _size_or_zero(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_size
    except FileNotFoundError:
        return 0


def inspect_checkpoint_dir(path: Path, *, deep: bool = True) -> CheckpointReport:
    """Inspect one ``chk-<n>`` or savepoint directory.

    :param deep: also read every state file and check its CRC-32 and header
    """
    parsed = parse_checkpoint_dir_name(path.name)
    report = CheckpointReport(
        path=str(path),
        name=path.name,
        kind=parsed[0] if parsed else "unknown",
        checkpoint_id=parsed[1] if parsed else None,
    )
    try:
        # A running job may remove files while we look: sizes of vanished files count as 0.
        sizes = [
            _size_or_zero(e)
            for e in os.scandir(path)
            if e.is_file() and not is_temporary_name(e.name)
        ]
        mtime_ms = int(path.stat().st_mtime * 1000)
    except OSError as exc:
        report.problems.append(Problem(str(path), f"unreadable: {exc.strerror or exc}", True))
        return report
    report.file_count = len(sizes)
    report.size = sum(sizes)
    meta_path = path / METADATA_FILE_NAME
    if not meta_path.exists():
        report.timestamp_ms = mtime_ms
        report.problems.append(
            Problem(str(meta_path), "missing _metadata: the checkpoint did not complete", False)
        )
        return report
    try:
        metadata = decode_metadata(meta_path.read_bytes(), str(meta_path))
    except CorruptCheckpointError as exc:
        report.timestamp_ms = mtime_ms
        report.problems.append(Problem(str(meta_path), exc.detail or str(exc), True))
        return report
    except OSError as exc:
        report.problems.append(Problem(str(meta_path), f"unreadable: {exc.strerror}", True))
        return report
    report.metadata = metadata
    report.timestamp_ms = metadata.completion_timestamp_ms
    report.kind = metadata.kind.value
    if parsed is not None and parsed[1] != metadata.checkpoint_id:
        report.problems.append(
            Problem(
                str(meta_path),
                f"metadata is for checkpoint {metadata.checkpoint_id}, directory says {parsed[1]}",
                True,
            )
        )
    report.checkpoint_id = metadata.checkpoint_id
    report.problems.extend(
        check_state_files(
            metadata,
            _stat_size(path),
            (lambda name: (path / name).read_bytes()) if deep else None,
            lambda name: str(path / name),
        )
    )
    return report


def find_checkpoint_dirs(path: Path) -> list[Path]:
    """Return the checkpoint and savepoint directories at ``path``.

    ``path`` may be one checkpoint directory (``chk-<n>``, a savepoint, or any directory
    holding ``_metadata``), a job directory holding them, or a base directory holding job
    directories. Results are sorted by job, then kind, then id.

    :raises FileNotFoundError: if ``path`` does not exist
    :raises NotADirectoryError: if ``path`` is not a directory
    """
    if not path.exists():
        raise FileNotFoundError(f"no such directory: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"not a directory: {path}")
    if (path / METADATA_FILE_NAME).exists() or parse_checkpoint_dir_name(path.name):
        return [path]
    found = _checkpoint_children(path)
    if found:
        return found
    result: list[Path] = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        result.extend(_checkpoint_children(child))
    return result


def _checkpoint_children(path: Path) -> list[Path]:
    dirs = []
    for child in path.iterdir():
        parsed = parse_checkpoint_dir_name(child.name)
        if parsed is not None and child.is_dir():
            dirs.append((parsed, child))
    return [child for _, child in sorted(dirs)]
