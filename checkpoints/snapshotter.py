"""The asynchronous part of a subtask's snapshot: serialize, encode, write, report.

Flink splits a snapshot into a short synchronous part (freeze a view of the state, while the
subtask is stopped at the barrier) and an asynchronous part (serialize and write while records
keep flowing). The synchronous part lives in the state layer; this module runs the second
half for one subtask, over duck-typed frozen views so ``checkpoints`` needs nothing from
``operators``:

- a keyed view has ``key_groups()`` and ``serialize_key_group(kg) -> bytes``, and may have
  ``serialize_key_group_steps(kg)``, an iterator doing one bounded piece of that work per
  step (the heap backend's view has it, so that one large key group is no long stall either);
- an operator-state view has ``serialize() -> bytes``;
- ``extra`` is a small JSON-able dict (source positions, ...).

Serialization goes key group by key group (and step by step inside a large one) and yields
to the event loop about every two milliseconds, so a large state never stalls the other
subtasks (issue 12 allows a loop step 5 ms of CPU; a yield every millisecond made a large
checkpoint's asynchronous part half again as long, and records meanwhile pay copy-on-write).
Failures never escape: they come back as a :class:`SnapshotResult` with a decline reason,
which the subtask sends to the coordinator. Cancelling the snapshot (the checkpoint was
aborted, the job is cancelled) removes the files it already wrote, then re-raises the
cancellation.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import anyio.to_thread

from .errors import CheckpointFailureReason, CheckpointStorageError
from .metadata import StateHandle, StatePiece
from .state_file import EncodedStateFile

__all__ = [
    "KeyedStateSnapshot",
    "OperatorSnapshot",
    "OperatorStateSnapshot",
    "SnapshotResult",
    "StateFileWriter",
    "write_subtask_snapshot",
]

_log = logging.getLogger("streamlet.checkpoints")
#: Work between two yields of the asynchronous part (plus one serialization step at most).
_YIELD_EVERY_S = 0.002
#: State files smaller than this are encoded on the loop (a fraction of a millisecond): a
#: worker thread would cost more in GIL hand-overs than the encoding itself.
_ENCODE_INLINE_BYTES = 1 << 20


class KeyedStateSnapshot(Protocol):
    """A frozen view of keyed state, serializable one key group at a time."""

    def key_groups(self) -> Iterable[int]:
        """The key groups that hold state."""
        ...

    def serialize_key_group(self, key_group: int) -> bytes:
        """Serialize one key group's state (after its steps, if any: then at once)."""
        ...

    # Optional: ``serialize_key_group_steps(key_group) -> Iterator[None]``, one bounded
    # piece of ``serialize_key_group``'s work per step (see the module docstring).


class OperatorStateSnapshot(Protocol):
    """A frozen view of operator (non-keyed) state."""

    def serialize(self) -> bytes:
        """Serialize the whole operator state."""
        ...


class StateFileWriter(Protocol):
    """The part of the storage contract a snapshot needs."""

    async def write_state_file(
        self,
        checkpoint_id: int,
        operator_uid: str,
        subtask_index: int,
        data: bytes | EncodedStateFile,
    ) -> StateHandle:
        """Write one state file (this module passes an :class:`EncodedStateFile`); return
        its handle."""
        ...

    async def delete_state_file(self, checkpoint_id: int, handle: StateHandle) -> None:
        """Remove one state file."""
        ...

    # Optional, for incremental checkpoints: ``write_piece(checkpoint_id, operator_uid,
    # subtask_index, data) -> StatePiece`` (see CheckpointStorage.write_piece).


@dataclass(slots=True)
class OperatorSnapshot:
    """What the synchronous part produced for one operator of the chain.

    :param operator_uid: the operator's uid (the key of its state in every checkpoint)
    :param keyed: frozen keyed state, if the operator is keyed
    :param operator_state: frozen operator state, if any
    :param extra: small JSON-able data the engine reads back on restore
    :param shared_base: for an incremental checkpoint, the shared pieces this snapshot's
        keyed state extends (empty: it is a new base); its key groups go into a new piece
        in the job's ``shared/`` directory, and the handle references ``shared_base`` and
        that piece. ``None`` writes them into the state file (full, self-contained).
    """

    operator_uid: str
    keyed: KeyedStateSnapshot | None = None
    operator_state: OperatorStateSnapshot | None = None
    extra: Mapping[str, Any] | None = None
    shared_base: tuple[StatePiece, ...] | None = None
    #: Called with the checkpoint id once it completed (the keyed backend's
    #: ``notify_checkpoint_complete``: the base of its next incremental snapshot).
    confirm: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """The outcome of one subtask's asynchronous snapshot part.

    On success ``failure`` is ``None`` and the subtask acknowledges with ``handles``;
    otherwise it declines with ``failure`` and ``detail``.
    """

    checkpoint_id: int
    handles: tuple[StateHandle, ...] = ()
    async_duration_ms: float = 0.0
    state_size: int = 0
    failure: CheckpointFailureReason | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        """True if every state file was written."""
        return self.failure is None


class _Yielder:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = clock()

    async def maybe_yield(self) -> None:
        now = self._clock()
        if now - self._last >= _YIELD_EVERY_S:
            await anyio.lowlevel.checkpoint()
            self._last = self._clock()


async def write_subtask_snapshot(
    storage: StateFileWriter,
    checkpoint_id: int,
    subtask_index: int,
    parallelism: int,
    max_parallelism: int,
    operators: Iterable[OperatorSnapshot],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> SnapshotResult:
    """Serialize and write one state file per operator of a subtask's chain.

    Never raises for a failed snapshot (only cancellation propagates): a serialization error
    becomes ``CHECKPOINT_ASYNC_EXCEPTION``, a storage error ``STORAGE_FAILURE``, each with a
    detail naming the operator. Files already written are removed on failure and on
    cancellation.

    :param storage: where to write (any :class:`~streamlet.checkpoints.storage.CheckpointStorage`)
    :param parallelism: the chain's parallelism, recorded in each file
    :param max_parallelism: the number of key groups, recorded in each file
    :param operators: one entry per operator with state (or extra data) to keep
    :param clock: monotonic seconds, for ``async_duration_ms`` and yielding
    """
    start = clock()
    yielder = _Yielder(clock)
    written: list[StateHandle] = []
    new_bytes = 0
    failure: CheckpointFailureReason | None = None
    detail: str | None = None
    try:
        await anyio.lowlevel.checkpoint()
        for op in operators:
            where = f"operator {op.operator_uid!r} subtask {subtask_index}"
            try:
                keyed = await _serialize_keyed(op, yielder)
                pieces: tuple[StatePiece, ...] = ()
                if op.shared_base is not None:
                    pieces = op.shared_base
                    if keyed:
                        piece = await _encode(
                            op, subtask_index, parallelism, max_parallelism, keyed, keyed_only=True
                        )
                        write_piece = storage.write_piece  # type: ignore[attr-defined]
                        pieces += (
                            await write_piece(checkpoint_id, op.operator_uid, subtask_index, piece),
                        )
                        new_bytes += len(piece.data)
                    keyed = {}
                data = await _encode(op, subtask_index, parallelism, max_parallelism, keyed)
                handle = await storage.write_state_file(
                    checkpoint_id, op.operator_uid, subtask_index, data
                )
                new_bytes += handle.size
                written.append(replace(handle, pieces=pieces) if pieces else handle)
            except CheckpointStorageError as exc:
                failure = CheckpointFailureReason.STORAGE_FAILURE
                detail = f"{where}: {exc.path}: {exc.detail}"
                break
            except Exception as exc:
                failure = CheckpointFailureReason.CHECKPOINT_ASYNC_EXCEPTION
                detail = f"{where}: {exc}"
                break
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _cleanup(storage, checkpoint_id, written)
        raise
    duration_ms = (clock() - start) * 1000.0
    if failure is not None:
        await _cleanup(storage, checkpoint_id, written)
        return SnapshotResult(checkpoint_id, (), duration_ms, 0, failure=failure, detail=detail)
    return SnapshotResult(checkpoint_id, tuple(written), duration_ms, new_bytes)


async def _serialize_keyed(op: OperatorSnapshot, yielder: _Yielder) -> dict[int, bytes]:
    keyed: dict[int, bytes] = {}
    view = op.keyed
    if view is not None:
        steps_of = getattr(view, "serialize_key_group_steps", None)
        for kg in view.key_groups():
            if steps_of is not None:
                for _ in steps_of(kg):
                    await yielder.maybe_yield()
            keyed[kg] = view.serialize_key_group(kg)
            await yielder.maybe_yield()
    return keyed


async def _encode(
    op: OperatorSnapshot,
    subtask_index: int,
    parallelism: int,
    max_parallelism: int,
    keyed: dict[int, bytes],
    *,
    keyed_only: bool = False,
) -> EncodedStateFile:
    """Encode a state file; ``keyed_only``: a shared piece, without operator state or extra."""
    blob = None
    if op.operator_state is not None and not keyed_only:
        blob = op.operator_state.serialize()
    encode = functools.partial(
        EncodedStateFile.encode,
        op.operator_uid,
        subtask_index,
        parallelism,
        max_parallelism,
        keyed=keyed,
        operator=blob,
        extra=None if keyed_only else op.extra,
    )
    size = sum(map(len, keyed.values())) + (len(blob) if blob else 0)
    if size < _ENCODE_INLINE_BYTES:
        return encode()
    # Joining and checksumming megabytes of immutable bytes (the file's CRC-32 included,
    # which the handle needs): a worker thread does it, so the event loop (and record
    # processing) does not wait for it.
    return await anyio.to_thread.run_sync(encode)


async def _cleanup(
    storage: StateFileWriter, checkpoint_id: int, written: list[StateHandle]
) -> None:
    delete = getattr(storage, "delete_state_file", None)
    if delete is None:
        return
    for handle in written:
        try:
            await delete(checkpoint_id, handle)
        except Exception as exc:  # best effort: the coordinator discards the directory too
            _log.warning(
                "could not remove %s of checkpoint %d: %s", handle.file_name, checkpoint_id, exc
            )
