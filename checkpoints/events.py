"""Events that travel through channels between records: barriers, markers, end of input.

A channel buffer is either a ``list`` of records or exactly one of these events. They are
FIFO with the records around them, which is what makes a barrier a consistent cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CancelCheckpointMarker",
    "CheckpointBarrier",
    "CheckpointKind",
    "EndOfPartition",
    "Event",
]


class CheckpointKind(Enum):
    """What a barrier asks for: a periodic checkpoint or a user-requested savepoint."""

    CHECKPOINT = "checkpoint"
    SAVEPOINT = "savepoint"


@dataclass(frozen=True, slots=True)
class CheckpointBarrier:
    """Marks the cut for checkpoint ``checkpoint_id`` in a channel.

    :param checkpoint_id: strictly increasing id of the checkpoint
    :param timestamp_ms: wall-clock time the coordinator triggered it
    :param kind: checkpoint or savepoint
    :param unaligned: the barrier overtook the records queued before it (an unaligned
        checkpoint); a subtask that reads it checkpoints unaligned at once
    """

    checkpoint_id: int
    timestamp_ms: int
    kind: CheckpointKind = CheckpointKind.CHECKPOINT
    unaligned: bool = False


@dataclass(frozen=True, slots=True)
class CancelCheckpointMarker:
    """Tells downstream subtasks that checkpoint ``checkpoint_id`` was aborted upstream."""

    checkpoint_id: int


@dataclass(frozen=True, slots=True)
class EndOfPartition:
    """The producer of this channel will send nothing more: its input is exhausted."""


Event = CheckpointBarrier | CancelCheckpointMarker | EndOfPartition
