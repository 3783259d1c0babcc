"""Restore: pick a checkpoint or savepoint and read it back into per-operator state.

Keyed state comes back as key-group blobs (each new subtask then loads the key groups it
owns, whatever the old parallelism), operator state as one blob per old subtask (the state
backend redistributes it: even split, union or broadcast), and source positions ride in the
sources' operator state. Nothing is decoded here; the backends decode what they own.
"""

from __future__ import annotations

import logging
from typing import Any

from checkpoints.completed import CompletedCheckpoint
from checkpoints.errors import CorruptCheckpointError
from checkpoints.storage import CheckpointStorage
from state.operator_state import OperatorStateBackend

from .deploy import RestoredState
from .plan import JobPlan

__all__ = ["find_restore_point", "read_restored_state"]

logger = logging.getLogger("streamlet.recovery")

_EMPTY_OPERATOR_STATE = OperatorStateBackend("empty").snapshot_sync().serialize()


async def find_restore_point(
    storage: CheckpointStorage, restore: str, job_name: str
) -> CompletedCheckpoint | None:
    """Resolve ``restore`` (``"latest"`` or a path) to a completed checkpoint or savepoint.

    ``"latest"`` skips damaged checkpoints with a warning naming the file and the reason,
    and returns None (start fresh, logged) when there is no valid one. An explicit path must
    be valid.

    :raises CorruptCheckpointError: if an explicit path is damaged or incomplete
    :raises CheckpointStorageError: if it cannot be read
    """
    if restore == "latest":
        latest, skipped = await storage.find_latest(deep=True)
        for problem in skipped:
            logger.warning("skipping damaged checkpoint: %s", problem)
        if latest is None:
            logger.info(
                "job %r: no completed checkpoint to restore; starting from scratch", job_name
            )
        else:
            logger.info("job %r: restoring checkpoint %s", job_name, latest.location)
        return latest
    checkpoint = await storage.load_checkpoint(restore)
    problems = await storage.validate(checkpoint.location, deep=True)
    if problems:
        raise CorruptCheckpointError(
            checkpoint.location, "; ".join(str(problem) for problem in problems)
        )
    logger.info("job %r: restoring %s", job_name, checkpoint.location)
    return checkpoint


async def read_restored_state(
    storage: CheckpointStorage,
    checkpoint: CompletedCheckpoint,
    plan: JobPlan,
    *,
    allow_non_restored_state: bool,
) -> RestoredState:
    """Read every state file of ``checkpoint`` for the operators of ``plan``.

    :raises ValueError: if the max parallelism differs from the checkpoint's, or the
        checkpoint holds state of an operator uid the job does not have (unless
        ``allow_non_restored_state``)
    """
    metadata = checkpoint.metadata
    uids = {node.operator_uid for chain in plan.chains for node in chain.nodes}
    unclaimed = sorted(set(metadata.operators) - uids)
    if unclaimed:
        if not allow_non_restored_state:
            raise ValueError(
                f"{checkpoint.location} holds state of operator uid(s) {unclaimed} that this "
                f"job does not have; set the same .uid() on those operators, or pass "
                f"allow_non_restored_state=True to drop that state"
            )
        logger.warning("dropping state of operator uid(s) %s not in the job", unclaimed)
    restored = RestoredState(checkpoint_id=metadata.checkpoint_id)
    for uid, info in metadata.operators.items():
        if uid not in uids:
            continue
        if info.max_parallelism != plan.max_parallelism:
            raise ValueError(
                f"operator {uid!r} was checkpointed with max_parallelism {info.max_parallelism}"
                f" but the job has {plan.max_parallelism}; keyed state cannot move between "
                f"different numbers of key groups"
            )
        operator_blobs: list[Any] = [None] * info.parallelism
        keyed: dict[int, bytes] = {}
        has_keyed = False
        for handle in metadata.handles_for(uid):
            contents = await storage.read_state_file(checkpoint.location, handle)
            if contents.keyed:
                has_keyed = True
                keyed.update(contents.keyed)
            operator_blobs[handle.subtask_index] = contents.operator
        if has_keyed:
            restored.keyed[uid] = keyed
        if any(blob is not None for blob in operator_blobs):
            restored.operator[uid] = [
                _EMPTY_OPERATOR_STATE if blob is None else blob for blob in operator_blobs
            ]
    return restored
