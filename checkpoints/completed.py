"""Completed checkpoints and their retention (Flink's ``CompletedCheckpointStore``).

The store is a bounded LIFO of completed *checkpoints*: adding one beyond
``max_retained`` hands back the oldest ones for the caller to discard. Savepoints are never in
it, so retention can never delete one. A checkpoint that is being restored from can be pinned
with :meth:`CompletedCheckpointStore.retain`: it is not handed back for discarding while
pinned, and :meth:`~CompletedCheckpointStore.release` hands it back once it is both unpinned and
no longer retained.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .events import CheckpointKind
from .metadata import CheckpointMetadata

__all__ = ["CompletedCheckpoint", "CompletedCheckpointStore"]


@dataclass(frozen=True, slots=True)
class CompletedCheckpoint:
    """A checkpoint or savepoint whose ``_metadata`` is written: it can be restored.

    :param metadata: what ``_metadata`` says
    :param location: where it is stored (a directory path, or a ``memory://`` location);
        Flink's "external pointer"
    """

    metadata: CheckpointMetadata
    location: str

    @property
    def checkpoint_id(self) -> int:
        """The checkpoint id."""
        return self.metadata.checkpoint_id

    @property
    def kind(self) -> CheckpointKind:
        """Checkpoint or savepoint."""
        return self.metadata.kind

    @property
    def trigger_timestamp_ms(self) -> int:
        """Wall-clock time it was triggered."""
        return self.metadata.trigger_timestamp_ms

    @property
    def completion_timestamp_ms(self) -> int:
        """Wall-clock time its ``_metadata`` was written."""
        return self.metadata.completion_timestamp_ms

    @property
    def state_size(self) -> int:
        """Total bytes of its state files."""
        return self.metadata.state_size


class CompletedCheckpointStore:
    """A bounded LIFO queue of completed checkpoints: retention.

    :param max_retained: how many completed checkpoints to keep (at least 1)
    :raises ValueError: if ``max_retained < 1``
    """

    def __init__(self, max_retained: int = 1) -> None:
        if max_retained < 1:
            raise ValueError(f"max retained checkpoints must be >= 1, got {max_retained}")
        self.max_retained = max_retained
        # Invariant: ascending checkpoint ids; the last one is the latest.
        self._retained: deque[CompletedCheckpoint] = deque()
        self._pins: dict[int, int] = {}
        # Dropped by retention while pinned: discarded on release.
        self._lingering: dict[int, CompletedCheckpoint] = {}

    def add(self, checkpoint: CompletedCheckpoint) -> list[CompletedCheckpoint]:
        """Add the newest completed checkpoint; return the ones retention now drops.

        The caller discards the returned checkpoints' files. A pinned checkpoint is not
        returned until it is released.

        :raises ValueError: if ``checkpoint`` is a savepoint, or not newer than the latest
        """
        if checkpoint.kind is not CheckpointKind.CHECKPOINT:
            raise ValueError(
                f"savepoints are not kept in the completed checkpoint store, "
                f"got savepoint {checkpoint.checkpoint_id}"
            )
        latest = self.latest()
        if latest is not None and checkpoint.checkpoint_id <= latest.checkpoint_id:
            raise ValueError(
                f"completed checkpoints must be added in increasing id order, got "
                f"{checkpoint.checkpoint_id} after {latest.checkpoint_id}"
            )
        self._retained.append(checkpoint)
        dropped: list[CompletedCheckpoint] = []
        while len(self._retained) > self.max_retained:
            old = self._retained.popleft()
            if self._pins.get(old.checkpoint_id):
                self._lingering[old.checkpoint_id] = old
            else:
                dropped.append(old)
        return dropped

    def latest(self) -> CompletedCheckpoint | None:
        """Return the newest completed checkpoint, or ``None``."""
        return self._retained[-1] if self._retained else None

    def all(self) -> list[CompletedCheckpoint]:
        """Return the retained checkpoints, oldest first."""
        return list(self._retained)

    def get(self, checkpoint_id: int) -> CompletedCheckpoint | None:
        """Return a retained (or pinned) checkpoint by id, or ``None``."""
        for cp in self._retained:
            if cp.checkpoint_id == checkpoint_id:
                return cp
        return self._lingering.get(checkpoint_id)

    def retain(self, checkpoint_id: int) -> None:
        """Pin a checkpoint (a restore reads it): retention will not hand it back meanwhile.

        Pins nest: each ``retain`` needs one ``release``.

        :raises KeyError: if the checkpoint is not in the store
        """
        if self.get(checkpoint_id) is None:
            raise KeyError(f"checkpoint {checkpoint_id} is not in the completed store")
        self._pins[checkpoint_id] = self._pins.get(checkpoint_id, 0) + 1

    def release(self, checkpoint_id: int) -> list[CompletedCheckpoint]:
        """Unpin a checkpoint; return it for discarding if retention already dropped it.

        :raises KeyError: if the checkpoint is not pinned
        """
        count = self._pins.get(checkpoint_id, 0)
        if count == 0:
            raise KeyError(f"checkpoint {checkpoint_id} is not retained")
        if count > 1:
            self._pins[checkpoint_id] = count - 1
            return []
        del self._pins[checkpoint_id]
        old = self._lingering.pop(checkpoint_id, None)
        return [] if old is None else [old]

    def in_use(self, checkpoint_id: int) -> bool:
        """True if the checkpoint is pinned."""
        return self._pins.get(checkpoint_id, 0) > 0

    def __len__(self) -> int:
        return len(self._retained)
