"""Helpers both storage implementations share: state handles and "latest valid" lookup."""

from __future__ import annotations

import io
import zlib
from typing import TYPE_CHECKING

from .errors import CorruptCheckpointError
from .metadata import StateHandle
from .state_file import read_state_header_from

if TYPE_CHECKING:
    from .completed import CompletedCheckpoint
    from .storage import CheckpointStorage

__all__ = ["handle_for", "load_latest_valid"]


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
