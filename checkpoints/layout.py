"""Names in a checkpoint directory: ``chk-<n>``, ``savepoint-<job>-<n>``, state file names.

Layout (DESIGN §5)::

    <base dir>/<job name>/chk-<n>/_metadata
                                 /op-<operator uid>-<subtask>.state
    <savepoint target>/savepoint-<job name>-<n>/_metadata, op-...state

Operator uids and job names are user strings; they are made safe for file names here. The real
uid is stored inside the state file and in ``_metadata``, so a restore never parses file names.
"""

from __future__ import annotations

import re
import zlib

__all__ = [
    "CHECKPOINT_DIR_PREFIX",
    "SAVEPOINT_DIR_PREFIX",
    "checkpoint_dir_name",
    "is_temporary_name",
    "parse_checkpoint_dir_name",
    "safe_name",
    "savepoint_dir_name",
    "state_file_name",
]

CHECKPOINT_DIR_PREFIX = "chk-"
SAVEPOINT_DIR_PREFIX = "savepoint-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CHK = re.compile(r"^chk-(\d+)$")
_SAVEPOINT = re.compile(r"^savepoint-.*-(\d+)$")


def safe_name(name: str) -> str:
    """Return ``name`` made safe as one path component, distinct for distinct inputs.

    Characters other than letters, digits, ``_``, ``.`` and ``-`` become ``_``; if anything
    was replaced (or the name starts with a dot), a short hash of the original is appended so
    ``"a/b"`` and ``"a_b"`` do not collide.
    """
    cleaned = _UNSAFE.sub("_", name)
    if cleaned == name and name and not name.startswith("."):
        return name
    cleaned = cleaned.lstrip(".") or "_"
    return f"{cleaned[:80]}_{zlib.crc32(name.encode('utf-8', 'surrogatepass')):08x}"


def checkpoint_dir_name(checkpoint_id: int) -> str:
    """Return ``chk-<checkpoint_id>``."""
    return f"{CHECKPOINT_DIR_PREFIX}{checkpoint_id}"


def savepoint_dir_name(job_name: str, checkpoint_id: int) -> str:
    """Return ``savepoint-<job>-<checkpoint_id>``."""
    return f"{SAVEPOINT_DIR_PREFIX}{safe_name(job_name)}-{checkpoint_id}"


def parse_checkpoint_dir_name(name: str) -> tuple[str, int] | None:
    """Return ``("checkpoint" | "savepoint", id)`` for a checkpoint or savepoint dir name."""
    match = _CHK.match(name)
    if match:
        return "checkpoint", int(match.group(1))
    match = _SAVEPOINT.match(name)
    if match:
        return "savepoint", int(match.group(1))
    return None


def state_file_name(operator_uid: str, subtask_index: int) -> str:
    """Return the state file name of one (operator uid, subtask)."""
    return f"op-{safe_name(operator_uid)}-{subtask_index}.state"


_PIECE = re.compile(r"^(\d+)-op-.*\.piece$")


def piece_file_name(checkpoint_id: int, operator_uid: str, subtask_index: int, tag: str) -> str:
    """Return the name of a shared piece (in ``shared/``) written by checkpoint
    ``checkpoint_id`` for one (operator uid, subtask); ``tag`` (a few random hex digits)
    keeps a piece of a crashed run that reused the id from ever being overwritten."""
    return f"{checkpoint_id}-op-{safe_name(operator_uid)}-{subtask_index}-{tag}.piece"


def parse_piece_file_name(name: str) -> int | None:
    """Return the checkpoint id that wrote the shared piece ``name``, or ``None`` if it is
    not a piece's name."""
    match = _PIECE.match(name)
    return int(match.group(1)) if match else None


def is_temporary_name(name: str) -> bool:
    """True for files being written (``.<name>.<random>.tmp``): not part of a checkpoint."""
    return name.startswith(".") and name.endswith(".tmp")
