"""What ``restore="latest"`` finds: the newest restorable point, and what completed after it.

The policy built on it (refuse, fall back, or start empty) is the engine's
(:func:`streamlet.job.recovery.find_restore_point`); this module only reads and classifies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .completed import CompletedCheckpoint
from .errors import CheckpointStorageError, CorruptCheckpointError
from .storage import CheckpointStorage

__all__ = ["LatestScan", "scan_latest"]


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
