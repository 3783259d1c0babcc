"""Helpers both storage implementations share: state handles and "latest valid" lookup."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import CheckpointStorageError, CorruptCheckpointError
from .metadata import StateHandle
from .state_file import read_state_header_from

if TYPE_CHECKING:
    from .completed import CompletedCheckpoint
    from .storage import CheckpointStorage

__all__ = ["LatestScan", "handle_for", "load_latest_valid", "scan_latest"]


def handle_for(
    data: bytes, file_name: str, operator_uid: str, subtask_index: int, path: str
) -> StateHandle:
    """Return the handle of an encoded state file about to be written as ``file_name``.

    The parallelism recorded in the handle is read from the file's own header, which also
    proves ``data`` is a state file of the right operator and subtask.

    :raises CorruptCheckpointError: if ``data`` is not a state file of that operator/subtask
    """
    header = read_state_header_from(io.BytesIO(data), path)
    if (header.operator_uid, header.subtask_index) != (operator_uid, subtask_index):
        raise CorruptCheckpointError(
            path,
            f"state file holds operator {header.operator_uid!r} subtask "
            f"{header.subtask_index}, expected {operator_uid!r} subtask {subtask_index}",
        )
    return StateHandle(
        operator_uid=operator_uid,
        subtask_index=subtask_index,
        file_name=file_name,
        size=len(data),
        checksum=zlib.crc32(data),
        parallelism=header.parallelism,
        max_parallelism=header.max_parallelism,
    )


async def load_latest_valid(
    storage: CheckpointStorage, *, before: int | None, deep: bool
) -> tuple[CompletedCheckpoint | None, list[CorruptCheckpointError]]:
    """Return the newest completed checkpoint that passes validation, and the ones skipped.

    A damaged newest checkpoint is reported (file and reason) and the previous one tried,
    as DESIGN §6 asks of ``restore="latest"``.
    """
    skipped: list[CorruptCheckpointError] = []
    for checkpoint_id in reversed(await storage.list_completed()):
        if before is not None and checkpoint_id >= before:
            continue
        try:
            checkpoint = await storage.load_checkpoint(checkpoint_id)
        except CorruptCheckpointError as exc:
            skipped.append(exc)
            continue
        problems = await storage.validate(checkpoint.location, deep=deep)
        if problems:
            first = problems[0]
            skipped.append(
                CorruptCheckpointError(first.file, first.reason, checkpoint_id=checkpoint_id)
            )
            continue
        return checkpoint, skipped
    return None, skipped


@dataclass(slots=True)
class LatestScan:
    """What ``restore="latest"`` finds in a job's checkpoint storage.

    :param point: the newest valid checkpoint or savepoint, or ``None``
    :param damaged: checkpoints (or the ``_latest`` pointer) newer than ``point`` that did
        complete (they have, or had, ``_metadata``) but cannot be restored: each names the
        file and the reason. Non-empty means restoring ``point`` rewinds past a completed
        checkpoint, whose output two-phase-commit sinks may have committed.
    """

    point: CompletedCheckpoint | None = None
    damaged: list[CorruptCheckpointError] = field(default_factory=list)


def _as_damage(
    exc: CorruptCheckpointError | CheckpointStorageError, checkpoint_id: int | None
) -> CorruptCheckpointError:
    if isinstance(exc, CorruptCheckpointError):
        return CorruptCheckpointError(exc.path, exc.detail, checkpoint_id=checkpoint_id)
    # An unreadable _metadata (EIO, EISDIR) is as unrestorable as a corrupt one: same policy.
    return CorruptCheckpointError(
        exc.path, f"unreadable: {exc.detail}", checkpoint_id=checkpoint_id
    )


async def _load_valid(
    storage: CheckpointStorage, pointer: int | str, checkpoint_id: int, deep: bool
) -> CompletedCheckpoint | CorruptCheckpointError:
    try:
        checkpoint = await storage.load_checkpoint(pointer)
    except (CorruptCheckpointError, CheckpointStorageError) as exc:
        return _as_damage(exc, checkpoint_id)
    if checkpoint.checkpoint_id != checkpoint_id:
        return CorruptCheckpointError(
            checkpoint.location,
            f"_metadata says checkpoint {checkpoint.checkpoint_id}, expected {checkpoint_id}",
            checkpoint_id=checkpoint_id,
        )
    problems = await storage.validate(checkpoint.location, deep=deep)
    if problems:
        first = problems[0]
        return CorruptCheckpointError(first.file, first.reason, checkpoint_id=checkpoint_id)
    return checkpoint


async def scan_latest(storage: CheckpointStorage, *, deep: bool = True) -> LatestScan:
    """Find the newest restorable checkpoint or savepoint, and what completed after it.

    Candidates are this job's ``chk-<n>`` directories with ``_metadata`` and the checkpoint
    or savepoint the ``_latest`` pointer names (a savepoint newer than every checkpoint is
    the recovery point, as in Flink since FLINK-10354). A directory without ``_metadata``
    counts as damaged only if the pointer says it completed; otherwise it is a checkpoint
    that was in flight at a crash, never committed, and is ignored.

    :raises CheckpointStorageError: if the job's checkpoints cannot be listed
    """
    scan = LatestScan()
    try:
        pointer = await storage.read_latest_pointer()
    except (CorruptCheckpointError, CheckpointStorageError) as exc:
        # Which checkpoint completed last is unknown: treat it as newer than any.
        scan.damaged.append(_as_damage(exc, None))
        pointer = None
    examined: set[int] = set()
    for checkpoint_id in reversed(await storage.list_completed()):
        examined.add(checkpoint_id)
        outcome = await _load_valid(storage, checkpoint_id, checkpoint_id, deep)
        if isinstance(outcome, CorruptCheckpointError):
            scan.damaged.append(outcome)
            continue
        scan.point = outcome
        break
    newest = 0 if scan.point is None else scan.point.checkpoint_id
    if pointer is not None and pointer[0] > newest and pointer[0] not in examined:
        outcome = await _load_valid(storage, pointer[1], pointer[0], deep)
        if isinstance(outcome, CorruptCheckpointError):
            scan.damaged.append(outcome)
        else:
            scan.point = outcome
    return scan
