"""Restore: pick a checkpoint or savepoint and read it back into per-operator state.

Keyed state comes back as key-group blobs (each new subtask then loads the key groups it
owns, whatever the old parallelism), operator state as one blob per old subtask (the state
backend redistributes it: even split, union or broadcast), and source positions ride in the
sources' operator state. Nothing is decoded here; the backends decode what they own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streamlet.checkpoints.channel_state import CHANNEL_STATE_KEY, parse_channel_state
from streamlet.checkpoints.completed import CompletedCheckpoint
from streamlet.checkpoints.errors import CheckpointError, CorruptCheckpointError
from streamlet.checkpoints.latest import scan_latest
from streamlet.checkpoints.storage import CheckpointStorage
from streamlet.graph.plan import JobPlan
from streamlet.runtime.channel_state import check_decodable
from streamlet.runtime.deploy import RestoredState
from streamlet.state.operator_state import OperatorStateBackend

__all__ = [
    "NonRestoredStateError",
    "clean_incomplete_checkpoints",
    "find_restore_point",
    "read_restored_state",
]

logger = logging.getLogger("streamlet.job.recovery")

_EMPTY_OPERATOR_STATE = OperatorStateBackend("empty").snapshot_sync().serialize()


class NonRestoredStateError(ValueError):
    """A checkpoint holds state of operator uids the job does not have (Flink refuses such
    a restore unless told to drop that state).

    The message names the API's parameter; :meth:`with_option` words it for another way
    of saying so (the command line's ``-n``).

    :param location: the checkpoint or savepoint
    :param unclaimed: the operator uids nobody in the job claims
    """

    def __init__(self, location: str, unclaimed: list[str]) -> None:
        self.location = location
        self.unclaimed = unclaimed
        super().__init__(self.with_option("allow_non_restored_state=True"))

    def with_option(self, option: str) -> str:
        """The message, telling to pass ``option`` to drop the state."""
        return (
            f"{self.location} holds state of operator uid(s) {self.unclaimed} that this job "
            f"does not have; set the same .uid() on those operators, or pass {option} to "
            f"drop that state"
        )


async def find_restore_point(
    storage: CheckpointStorage,
    restore: str,
    job_name: str,
    *,
    exactly_once_sinks: Sequence[str] = (),
) -> CompletedCheckpoint | None:
    """Resolve ``restore`` (``"latest"`` or a path) to a completed checkpoint or savepoint.

    ``"latest"`` is the newest completed checkpoint *or savepoint* of the job (the
    ``_latest`` pointer names a savepoint newer than every checkpoint). Its policy for
    damage (a corrupt, truncated or unreadable ``_metadata`` or state file, or a
    ``_metadata`` lost after the checkpoint completed) is the same for every kind of damage:

    - nothing ever completed: start from empty state (logged);
    - the newest completed point is valid: restore it (a directory without ``_metadata``
      that never completed, left by a crash, is not damage);
    - it is damaged and the job has an exactly-once (two-phase-commit) sink: refuse. That
      sink may have committed the output of the damaged checkpoint; restoring an older one
      would commit it again (Flink fails such a restore too);
    - it is damaged and no exactly-once sink can have committed past an older valid point:
      fall back to that one, with an ERROR naming each damaged checkpoint and file;
    - nothing valid is left: refuse; never start from scratch silently (pass
      ``restore=None`` to start over on purpose).

    An explicit path must be valid.

    :param exactly_once_sinks: names of the job's two-phase-commit sinks
    :raises CorruptCheckpointError: if the restore is refused, or an explicit path is
        damaged or incomplete
    :raises CheckpointStorageError: if it cannot be read
    """
    if restore == "latest":
        return await _find_latest(storage, job_name, exactly_once_sinks)
    checkpoint = await storage.load_checkpoint(restore)
    problems = await storage.validate(checkpoint.location, deep=True)
    if problems:
        raise CorruptCheckpointError(
            checkpoint.location, "; ".join(str(problem) for problem in problems)
        )
    logger.info("job %r: restoring %s", job_name, checkpoint.location)
    return checkpoint


async def _find_latest(
    storage: CheckpointStorage, job_name: str, exactly_once_sinks: Sequence[str]
) -> CompletedCheckpoint | None:
    scan = await scan_latest(storage, deep=True)
    latest = scan.point
    if not scan.damaged:
        if latest is None:
            logger.info(
                "job %r: no completed checkpoint to restore; starting from scratch", job_name
            )
        else:
            logger.info("job %r: restoring %s %s", job_name, latest.kind.value, latest.location)
        return latest
    for problem in scan.damaged:
        which = "the newest" if problem.checkpoint_id is None else problem.checkpoint_id
        logger.error("job %r: damaged checkpoint %s: %s", job_name, which, problem)
    first = scan.damaged[0]
    others = [f"{problem.path}: {problem.detail}" for problem in scan.damaged[1:]]
    damage = f" (also damaged: {'; '.join(others)})" if others else ""
    if exactly_once_sinks:
        raise CorruptCheckpointError(
            first.path,
            f"{first.detail}; refusing restore='latest': the exactly-once sink(s) "
            f"{sorted(exactly_once_sinks)} may have committed output of the damaged "
            f"checkpoint, and restoring "
            + ("none" if latest is None else f"the older {latest.location}")
            + f" would commit it again{damage}; repair it, or restore an explicit "
            "checkpoint or savepoint path after removing the output committed since it",
            checkpoint_id=first.checkpoint_id,
        )
    if latest is None:
        raise CorruptCheckpointError(
            first.path,
            f"{first.detail}; refusing restore='latest': no valid checkpoint is left and "
            f"starting from empty state would lose the job's state{damage}; start "
            f"without restore (restore=None, no --restore) to start over on purpose",
            checkpoint_id=first.checkpoint_id,
        )
    logger.error(
        "job %r: falling back past the damaged checkpoint(s) to %s (no exactly-once sink "
        "can have committed past it; at-least-once sinks see its records again)",
        job_name,
        latest.location,
    )
    return latest


async def clean_incomplete_checkpoints(storage: CheckpointStorage, job_name: str) -> None:
    """Remove checkpoint directories a crash or cancel left without ``_metadata``.

    Only those newer than every completed checkpoint (by the ``_latest`` pointer and the
    directories with ``_metadata``): an older one without ``_metadata`` completed once and
    lost it, so it is kept as evidence for the restore policy. Failures are logged only.
    """
    try:
        pointer = await storage.read_latest_pointer()
        completed = await storage.list_completed()
        newest = max([*completed, 0 if pointer is None else pointer[0]])
        removed = await storage.discard_incomplete(newest)
    except CheckpointError as exc:
        logger.warning("job %r: could not clean incomplete checkpoints: %s", job_name, exc)
        return
    if removed:
        logger.info("job %r: removed incomplete checkpoint(s) %s", job_name, removed)


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
            raise NonRestoredStateError(str(checkpoint.location), unclaimed)
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
        changes: dict[int, list[bytes]] = {}
        for handle in metadata.handles_for(uid):
            contents = await storage.read_state_file(checkpoint.location, handle)
            raw = contents.extra.get(CHANNEL_STATE_KEY) if contents.extra else None
            if raw is not None:
                where = f"{checkpoint.location}/{handle.file_name}"
                entries = parse_channel_state(raw, where)
                check_decodable(entries, where)
                restored.channel_state.extend(entries)
            if contents.keyed:
                has_keyed = True
                keyed.update(contents.keyed)
            operator_blobs[handle.subtask_index] = contents.operator
            # An incremental checkpoint's keyed state: a base, then changes, in order.
            for position, piece in enumerate(handle.pieces):
                part = await storage.read_piece(checkpoint.location, handle, piece)
                if position == 0:
                    has_keyed = True
                    keyed.update(part.keyed)
                else:
                    for kg, blob in part.keyed.items():
                        changes.setdefault(kg, []).append(blob)
        if has_keyed:
            restored.keyed[uid] = keyed
        if changes:
            restored.keyed_changes[uid] = changes
        if any(blob is not None for blob in operator_blobs):
            restored.operator[uid] = [
                _EMPTY_OPERATOR_STATE if blob is None else blob for blob in operator_blobs
            ]
    return restored
