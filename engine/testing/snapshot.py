"""The snapshot an operator test harness takes, and how a restore combines several.

A :class:`HarnessSnapshot` holds exactly the bytes a checkpoint stores for one operator
subtask: its serialized operator state and its keyed state per key group. Restoring a list
of them (one per old subtask) is how a test rescales, as a restored job does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streamlet.state.operator_state import OperatorStateBackend
from streamlet.state.snapshot import pack_frames, unpack_frames

__all__ = ["HarnessSnapshot", "restore_inputs"]

_MAGIC = b"SLH1"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class HarnessSnapshot:
    """The state of one harness at one checkpoint, as a checkpoint stores it (bytes).

    :param operator_uid: uid the state belongs to
    :param subtask_index: index of the subtask that took it
    :param parallelism: parallelism of that subtask's operator
    :param max_parallelism: number of key groups
    :param checkpoint_id: id passed to ``snapshot_state``
    :param operator_state: the serialized operator state
    :param keyed_state: key group -> serialized key group (empty when not keyed or empty)
    """

    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    checkpoint_id: int
    operator_state: bytes
    keyed_state: dict[int, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Return the snapshot as one byte string (to keep as a test fixture file)."""
        groups = sorted(self.keyed_state)
        header = {
            "format": _FORMAT,
            "operator_uid": self.operator_uid,
            "subtask_index": self.subtask_index,
            "parallelism": self.parallelism,
            "max_parallelism": self.max_parallelism,
            "checkpoint_id": self.checkpoint_id,
            "key_groups": groups,
        }
        payloads = [self.operator_state, *(self.keyed_state[g] for g in groups)]
        return pack_frames(_MAGIC, header, payloads)

    @classmethod
    def from_bytes(cls, data: bytes) -> HarnessSnapshot:
        """Undo :meth:`to_bytes`.

        :raises ValueError: if ``data`` is not a harness snapshot of a known format
        """
        try:
            header, payloads = unpack_frames(_MAGIC, data)
            if header.get("format") != _FORMAT:
                raise ValueError(f"unknown harness snapshot format {header.get('format')!r}")
            groups = header["key_groups"]
            if len(payloads) != len(groups) + 1:
                raise ValueError(f"{len(payloads)} payloads for {len(groups)} key groups")
            return cls(
                operator_uid=header["operator_uid"],
                subtask_index=header["subtask_index"],
                parallelism=header["parallelism"],
                max_parallelism=header["max_parallelism"],
                checkpoint_id=header["checkpoint_id"],
                operator_state=payloads[0],
                keyed_state=dict(zip(groups, payloads[1:], strict=True)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a harness snapshot: {exc!r}") from exc


def restore_inputs(
    restore: HarnessSnapshot | Sequence[HarnessSnapshot],
    uid: str,
    max_parallelism: int,
    keyed_harness: bool,
) -> tuple[list[bytes], dict[int, bytes]]:
    """Return what a restore loads: (operator state per old subtask, keyed chunks).

    A missing old subtask counts as one with empty operator state.

    :param restore: one snapshot, or the snapshots of the old subtasks
    :param uid: the restoring harness's operator uid
    :param max_parallelism: the restoring harness's max parallelism
    :param keyed_harness: whether the restoring harness is keyed
    :raises TypeError: if ``restore`` is not a snapshot or a non-empty list of them
    :raises ValueError: if a snapshot does not fit the harness (see the messages)
    """
    snapshots: list[HarnessSnapshot] = []
    if isinstance(restore, HarnessSnapshot):
        snapshots = [restore]
    elif isinstance(restore, Sequence) and not isinstance(restore, str | bytes):
        snapshots = list(restore)
    if not snapshots or not all(isinstance(s, HarnessSnapshot) for s in snapshots):
        raise TypeError(
            f"restore must be a HarnessSnapshot or a non-empty list of them (one per old "
            f"subtask), got {restore!r}"
        )
    old_parallelism = snapshots[0].parallelism
    blobs: list[bytes | None] = [None] * old_parallelism
    keyed: dict[int, bytes] = {}
    for snap in snapshots:
        if snap.operator_uid != uid:
            raise ValueError(
                f"restore: the snapshot is of operator uid {snap.operator_uid!r} but the "
                f"harness has uid {uid!r}; pass uid={snap.operator_uid!r}"
            )
        if snap.max_parallelism != max_parallelism:
            raise ValueError(
                f"restore: the snapshot was taken with max_parallelism {snap.max_parallelism} "
                f"but the harness has {max_parallelism}; keyed state cannot move between "
                f"different numbers of key groups"
            )
        if snap.parallelism != old_parallelism:
            raise ValueError(
                f"restore: the snapshots come from different parallelisms "
                f"({old_parallelism} and {snap.parallelism}); pass those of one run"
            )
        if snap.keyed_state and not keyed_harness:
            raise ValueError(
                "restore: the snapshot holds keyed state; restore it into a "
                "KeyedOperatorTestHarness"
            )
        if not 0 <= snap.subtask_index < old_parallelism:
            raise ValueError(
                f"restore: a snapshot of subtask {snap.subtask_index} of {old_parallelism}"
            )
        if blobs[snap.subtask_index] is not None:
            raise ValueError(f"restore: two snapshots of old subtask {snap.subtask_index}")
        blobs[snap.subtask_index] = snap.operator_state
        keyed.update(snap.keyed_state)
    empty = OperatorStateBackend(uid).snapshot_sync().serialize()
    return [empty if blob is None else blob for blob in blobs], keyed
