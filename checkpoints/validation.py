"""Check stored checkpoints: complete, uncorrupted, every file present and matching.

Synchronous and storage-agnostic at its core (:func:`inspect_checkpoint` reads through a
:class:`~streamlet.checkpoints.blob_store.BlobStore`), with directory helpers for the file layout.
Used by the command line (``python -m streamlet.checkpoints validate``) and, in one worker-thread
call for a file store, by the storage when it looks for the latest valid checkpoint to restore.

A checkpoint is

- **valid**: ``_metadata`` reads and passes its checksum, and every state file it lists exists
  with the recorded size (and, in a deep check, the recorded CRC-32 and a readable header);
- **incomplete**: no ``_metadata`` (never completed, or still being written), or a listed
  state file is missing;
- **corrupt**: ``_metadata`` or a state file is damaged (checksum, size, or format).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from .blob_store import BlobStore, read_all
from .channel_state import CHANNEL_STATE_KEY, parse_channel_state
from .errors import CorruptCheckpointError
from .file_blob_store import FileBlobStore
from .layout import is_temporary_name, parse_checkpoint_dir_name
from .metadata import METADATA_FILE_NAME, CheckpointMetadata, decode_metadata, shared_location
from .state_file import read_checked_state_file

__all__ = [
    "CheckpointReport",
    "Problem",
    "Validity",
    "find_checkpoint_dirs",
    "inspect_checkpoint",
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


def inspect_checkpoint(
    store: BlobStore, *, deep: bool = True, dir_timestamp_ms: int | None = None
) -> CheckpointReport:
    """Inspect the checkpoint or savepoint directory at ``store``'s root (synchronous: run
    it through :meth:`~streamlet.checkpoints.blob_store.BlobStore.run`, one call for the whole
    check).

    :param deep: also read every state file and check its CRC-32 and header
    :param dir_timestamp_ms: when the directory was last changed, reported as the time of a
        checkpoint whose ``_metadata`` is missing or damaged (``None`` if unknown)
    """
    location = store.location()
    name = location.rstrip("/").rpartition("/")[2]
    parsed = parse_checkpoint_dir_name(name)
    report = CheckpointReport(
        path=location,
        name=name,
        kind=parsed[0] if parsed else "unknown",
        checkpoint_id=parsed[1] if parsed else None,
    )
    try:
        # A running job may remove files while we look: vanished files are left out.
        entries = store.list()
    except OSError as exc:
        report.problems.append(Problem(location, f"unreadable: {exc.strerror or exc}", True))
        return report
    sizes = [size for n, size in entries.items() if size is not None and not is_temporary_name(n)]
    report.file_count = len(sizes)
    report.size = sum(sizes)
    meta_path = store.location(METADATA_FILE_NAME)
    if METADATA_FILE_NAME not in entries:
        report.timestamp_ms = dir_timestamp_ms
        report.problems.append(
            Problem(meta_path, "missing _metadata: the checkpoint did not complete", False)
        )
        return report
    try:
        metadata = decode_metadata(store.read(METADATA_FILE_NAME, read_all), meta_path)
    except CorruptCheckpointError as exc:
        report.timestamp_ms = dir_timestamp_ms
        report.problems.append(Problem(meta_path, exc.detail or str(exc), True))
        return report
    except OSError as exc:
        report.problems.append(Problem(meta_path, f"unreadable: {exc.strerror}", True))
        return report
    report.metadata = metadata
    report.timestamp_ms = metadata.completion_timestamp_ms
    report.kind = metadata.kind.value
    if parsed is not None and parsed[1] != metadata.checkpoint_id:
        report.problems.append(
            Problem(
                meta_path,
                f"metadata is for checkpoint {metadata.checkpoint_id}, directory says {parsed[1]}",
                True,
            )
        )
    report.checkpoint_id = metadata.checkpoint_id
    report.problems.extend(_check_state_files(store, metadata, entries, deep))
    if metadata.pieces:
        report.problems.extend(_check_pieces(store.at(shared_location(location)), metadata, deep))
    return report


def _check_pieces(shared: BlobStore, metadata: CheckpointMetadata, deep: bool) -> list[Problem]:
    """Check every shared piece ``metadata`` references, once each: present in the job's
    ``shared/`` directory with its recorded size and, in a deep check, intact."""
    try:
        entries = shared.list()
    except (FileNotFoundError, NotADirectoryError):
        entries = {}
    except OSError as exc:
        return [Problem(shared.location(), f"unreadable: {exc.strerror or exc}", True)]
    problems: list[Problem] = []
    seen: set[str] = set()
    for handle in metadata.states:
        for piece in handle.pieces:
            name = piece.file_name
            if name in seen:
                continue
            seen.add(name)
            shown = shared.location(name)
            if entries.get(name) is None:
                problems.append(
                    Problem(
                        shown,
                        f"missing shared piece (written by checkpoint {piece.checkpoint_id})",
                        corrupt=False,
                    )
                )
                continue
            as_handle = replace(
                handle, file_name=name, size=piece.size, checksum=piece.checksum, pieces=()
            )
            try:
                if deep:
                    shared.read(
                        name, partial(read_checked_state_file, handle=as_handle, path=shown)
                    )
                elif entries[name] != piece.size:
                    raise CorruptCheckpointError(
                        shown, f"size mismatch: expected {piece.size} bytes, found {entries[name]}"
                    )
            except CorruptCheckpointError as exc:
                problems.append(Problem(shown, f"shared piece: {exc.detail or exc}", corrupt=True))
            except FileNotFoundError:
                problems.append(Problem(shown, "missing shared piece", corrupt=False))
            except OSError as exc:
                problems.append(Problem(shown, f"unreadable: {exc.strerror or exc}", corrupt=True))
    return problems


def _check_state_files(
    store: BlobStore, metadata: CheckpointMetadata, entries: dict[str, int | None], deep: bool
) -> list[Problem]:
    """Check every state file ``metadata`` lists: present with its recorded size and, in a
    deep check, intact (:func:`~streamlet.checkpoints.state_file.read_checked_state_file`)."""
    problems: list[Problem] = []
    for handle in metadata.states:
        name = handle.file_name
        shown = store.location(name)
        if entries.get(name) is None:
            problems.append(Problem(shown, "missing state file", corrupt=False))
            continue
        try:
            if deep:
                contents = store.read(
                    name, partial(read_checked_state_file, handle=handle, path=shown)
                )
                raw = contents.extra.get(CHANNEL_STATE_KEY) if contents.extra else None
                if raw is not None:  # channel state of an unaligned checkpoint: its shape
                    parse_channel_state(raw, shown)
            elif entries[name] != handle.size:
                raise CorruptCheckpointError(
                    shown, f"size mismatch: expected {handle.size} bytes, found {entries[name]}"
                )
        except CorruptCheckpointError as exc:
            problems.append(Problem(shown, exc.detail or str(exc), corrupt=True))
        except FileNotFoundError:
            problems.append(Problem(shown, "missing state file", corrupt=False))
        except OSError as exc:
            problems.append(Problem(shown, f"unreadable: {exc.strerror or exc}", corrupt=True))
    return problems


def inspect_checkpoint_dir(path: Path, *, deep: bool = True) -> CheckpointReport:
    """Inspect one ``chk-<n>`` or savepoint directory on disk (the command line's view).

    :param deep: also read every state file and check its CRC-32 and header
    """
    try:
        mtime_ms: int | None = int(path.stat().st_mtime * 1000)
    except OSError:
        mtime_ms = None  # listing it fails too, and says why
    return inspect_checkpoint(FileBlobStore(path), deep=deep, dir_timestamp_ms=mtime_ms)


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
