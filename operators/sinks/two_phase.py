"""Two-phase-commit sinks: exactly-once output to an outside system (Flink's
``TwoPhaseCommitSinkFunction``, async-first).

A user subclasses :class:`TwoPhaseCommitSink` and implements five hooks; the engine drives
them through a :class:`TwoPhaseCommitSinkWriter` per subtask:

- records go into the *current* transaction (``begin_transaction``, ``write``);
- at checkpoint ``n`` the writer pre-commits the current transaction (``pre_commit``: flush,
  fsync), files it under ``n`` in its *pending* map, begins a new current one, and stores
  both in operator state (phase one);
- when checkpoint ``n`` completed, every pending transaction of a checkpoint ``<= n`` is
  committed, oldest first (phase two). Completion of ``n`` subsumes older checkpoints, so a
  missed or aborted notification only delays a commit: an aborted checkpoint does not
  discard data, the next completed one covers it (Flink's CheckpointListener contract).

Why this is exactly-once: a transaction becomes visible only after a checkpoint that holds
the source positions *after* its records completed, so a restore never replays a committed
record; and every pre-committed transaction is in that checkpoint's state, so a restore
commits what a crash kept from being committed (``commit`` must therefore be idempotent).

State layout (one even-split operator list state named :data:`TRANSACTIONS_STATE`), one
dict per transaction, written whole at every ``snapshot_state``::

    {"status": "pending", "checkpoint_id": 7, "transaction": <TXN>, "records": 120}
    {"status": "in_progress", "checkpoint_id": 7, "transaction": <TXN>}

``pending`` entries are the pre-committed transactions not committed yet (checkpoint ``7``
and any older one whose notification was missed); the single ``in_progress`` entry is the
transaction begun at checkpoint ``7``, whose records come after the barrier.

Restored state is untrusted input (whoever can write the checkpoint directory wrote it,
checksums included): before a restored writer commits or aborts anything, it checks the
shape of every entry and hands every transaction to
:meth:`TwoPhaseCommitSink.validate_restored_transaction`; one bad entry fails the restore
with :class:`RestoredTransactionError`, and nothing is committed or aborted. Sinks whose
transactions name files build that check from :func:`check_plain_name`.

Why even-split list state and not union state: on a restore at another parallelism every
entry must be handled by exactly one subtask. Even split hands each entry to exactly one new
subtask; union state would hand every entry to every subtask, so each transaction would be
committed (and aborted) by all of them at once, racing on the same outside resources.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import re
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streamlet.state.descriptors import ListStateDescriptor
from streamlet.state.errors import StateError, StreamletInternalError
from streamlet.state.operator_state import OperatorListState

from ..base import IN, OperatorContext
from .base import Sink, SinkWriter

__all__ = [
    "TRANSACTIONS_STATE",
    "TXN",
    "RestoredTransactionError",
    "TwoPhaseCommitSink",
    "TwoPhaseCommitSinkWriter",
    "TwoPhaseCommitStatistics",
    "check_plain_name",
]

logger = logging.getLogger("streamlet.sinks")

TXN = TypeVar("TXN")
"""Type of a transaction handle; it goes into operator state, so keep it JSON-able."""

#: Name of the operator list state holding a writer's transactions.
TRANSACTIONS_STATE = "two-phase-commit-transactions"

_PENDING = "pending"
_IN_PROGRESS = "in_progress"


class RestoredTransactionError(StateError):
    """A transaction in restored state failed validation; nothing was committed or aborted."""


def check_plain_name(value: object, what: str, pattern: re.Pattern[str] | None = None) -> str:
    """Return ``value`` if it is a plain file name, else raise saying why.

    For :meth:`TwoPhaseCommitSink.validate_restored_transaction`: a name read from a
    checkpoint is joined to the sink's directory only after this check, so it cannot reach
    outside it. A plain name is a non-empty str, not ``.`` or ``..``, without a path
    separator or NUL (so not absolute either), and, when ``pattern`` is given, one that
    ``pattern`` matches in full (the sink's own naming scheme). It names an entry directly
    inside the directory; whether that entry may be a symlink is the sink's decision.

    :param what: what the name is, for the message (``"the pending file name"``)
    :raises TypeError: if ``value`` is not a str
    :raises ValueError: if it is not a plain name or does not match ``pattern``
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r:.80}")
    if value in ("", ".", ".."):
        raise ValueError(f"{what} {value!r} is not a file name")
    if "/" in value or os.sep in value or (os.altsep and os.altsep in value) or "\0" in value:
        raise ValueError(f"{what} {value!r:.200} holds a path separator or NUL")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise ValueError(
            f"{what} {value!r:.200} does not follow this sink's naming ({pattern.pattern})"
        )
    return value


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user hook that may be sync or async."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class TwoPhaseCommitSink(Sink, Generic[IN, TXN]):
    """Base class of exactly-once sinks: subclass it and implement the transaction hooks.

    Every hook may be a plain method or ``async def``. The sink object is deep-copied for
    every writer (one per subtask and attempt), as Flink ships a copy of the function to
    every subtask: per-subtask attributes are private to the copy. Create clients in
    :meth:`open`, or give a shared client a ``__deepcopy__`` that returns itself.

    Without checkpointing there is no checkpoint to commit at, so the writer commits at the
    end of input instead (see ``commit_on_end_of_input``). That is not exactly-once: if the
    job fails nothing is committed, and without checkpoints there is no restore (a restart
    would start the input over, next to what an earlier attempt committed).

    RESUME CONTRACT. A restored writer first commits, with :meth:`recover_and_commit`, every
    pending transaction found in its share of the restored state: each was pre-committed at
    the restored checkpoint or an older one, and the restored checkpoint completed, so its
    records are covered. It then aborts every in-progress transaction found there with
    :meth:`recover_and_abort`: their records come after the restored checkpoint and will be
    replayed by the sources. Pending transactions of checkpoints newer than the restored one
    are in no restored state: the in-progress entry they started as is aborted instead.
    ``close()`` aborts only the current transaction; pending ones are left for a restore.

    Restored transactions come from disk and are untrusted: override
    :meth:`validate_restored_transaction` to check them before any of them is committed or
    aborted (a handle that names a path, a table or an amount must be checked there).

    :param commit_on_end_of_input: what ``end_input`` does with the current transaction:
        ``None`` (default) pre-commits and commits it when it holds records; ``True`` always
        does, even when empty; ``False`` never does (only checkpoints commit; ``close``
        aborts it). With checkpointing the engine's final checkpoint completes before the
        sink's input ends, so the current transaction is empty there and ``None`` commits
        nothing; without checkpointing it holds every record, and ``None`` commits them.
    :raises TypeError: if ``commit_on_end_of_input`` is not ``None`` or a bool
    """

    #: Display name of the sink operator.
    name: str = "Two-Phase Commit Sink"

    #: The writer's context; set by :meth:`open` on the writer's copy.
    ctx: OperatorContext

    #: See the ``commit_on_end_of_input`` parameter (a default for subclasses that do not
    #: call ``super().__init__``).
    commit_on_end_of_input: bool | None = None

    def __init__(self, *, commit_on_end_of_input: bool | None = None) -> None:
        if commit_on_end_of_input is not None and not isinstance(commit_on_end_of_input, bool):
            raise TypeError(
                f"commit_on_end_of_input must be None or a bool, got {commit_on_end_of_input!r}"
            )
        self.commit_on_end_of_input = commit_on_end_of_input

    def create_writer(self) -> TwoPhaseCommitSinkWriter[IN, TXN]:
        """Return a writer driving a deep copy of this sink.

        :raises TypeError: if the sink cannot be deep-copied
        """
        try:
            sink = copy.deepcopy(self)
        except Exception as exc:
            raise TypeError(
                f"sink {self!r} cannot be copied to every subtask ({type(exc).__name__}: "
                f"{exc}); create clients in open() instead of __init__"
            ) from exc
        return TwoPhaseCommitSinkWriter(sink)

    # --- per-subtask lifecycle ---

    async def open(self, ctx: OperatorContext) -> None:
        """Prepare this copy for subtask ``ctx.subtask_index``; called before any other hook."""
        self.ctx = ctx

    async def close(self) -> None:
        """Release this copy's resources; called last, after success and failure alike."""

    # --- the transaction hooks ---

    @abstractmethod
    def begin_transaction(self) -> TXN | Awaitable[TXN]:
        """Start a transaction and return its handle (JSON-able: it goes into state)."""

    @abstractmethod
    def write(self, transaction: TXN, records: list[IN]) -> Awaitable[None] | None:
        """Add ``records`` (in order) to ``transaction``; not visible before the commit."""

    @abstractmethod
    def pre_commit(self, transaction: TXN) -> Awaitable[None] | None:
        """Make ``transaction`` durable and ready to commit (flush, fsync).

        Called in ``snapshot_state``; no record is written to ``transaction`` afterwards.
        After it returns, :meth:`commit` must succeed even in another process.
        """

    @abstractmethod
    def commit(self, transaction: TXN) -> Awaitable[None] | None:
        """Make ``transaction`` visible.

        Must be idempotent: after a crash between a commit and the next checkpoint, a
        restore commits the transaction again.
        """

    @abstractmethod
    def abort(self, transaction: TXN) -> Awaitable[None] | None:
        """Discard ``transaction``; idempotent, and tolerant of a transaction that left no
        trace (never written to, or already aborted)."""

    def validate_restored_transaction(self, transaction: Any) -> None:
        """Check one transaction handle read from a checkpoint; raise if it is not one of ours.

        Called on every restored handle (pending and in-progress) before the first
        :meth:`recover_and_commit` or :meth:`recover_and_abort`: a checkpoint directory can
        be written by others, and a handle used as a path, a query or a size unchecked lets
        them act through the sink. Raise ``ValueError`` or ``TypeError`` saying what is
        wrong; the restore then fails with :class:`RestoredTransactionError` naming the
        operator and the value, and nothing is committed or aborted. Name checks can use
        :func:`check_plain_name`. The default accepts everything: a sink whose handles
        name outside resources should override it.
        """

    def recover_and_commit(self, transaction: TXN) -> Awaitable[None] | None:
        """Commit a pending ``transaction`` found in restored state (default: :meth:`commit`).

        It may have been committed already, and may come from another subtask (rescaling).
        """
        return self.commit(transaction)

    def recover_and_abort(self, transaction: TXN) -> Awaitable[None] | None:
        """Abort an in-progress ``transaction`` found in restored state (default:
        :meth:`abort`). It was begun by a writer of an earlier attempt, maybe of another
        subtask."""
        return self.abort(transaction)


@dataclass(frozen=True, slots=True)
class TwoPhaseCommitStatistics:
    """Counters of one writer, returned by :meth:`TwoPhaseCommitSinkWriter.statistics`."""

    #: Records given to ``write``.
    records_written: int
    #: Records of the transactions this writer committed (restored ones included).
    records_committed: int
    #: Transactions begun.
    transactions_begun: int
    #: Transactions committed, restored ones included.
    transactions_committed: int
    #: Transactions aborted, restored ones included.
    transactions_aborted: int
    #: Pre-committed transactions waiting for their checkpoint's completion.
    transactions_pending: int
    #: Restored pending transactions committed at ``open``.
    recovered_committed: int
    #: Restored in-progress transactions aborted at ``open``.
    recovered_aborted: int


@dataclass(slots=True)
class _Transaction(Generic[TXN]):
    handle: TXN
    records: int = 0


class TwoPhaseCommitSinkWriter(SinkWriter, Generic[IN, TXN]):
    """Drives one subtask's copy of a :class:`TwoPhaseCommitSink` (see the module docstring).

    :param sink: the subtask's own copy of the sink
    """

    def __init__(self, sink: TwoPhaseCommitSink[IN, TXN]) -> None:
        self.sink = sink
        self._state: OperatorListState | None = None
        self._current: _Transaction[TXN] | None = None
        # Invariant: ids ascending (checkpoint ids only grow); each value was pre-committed.
        self._pending: dict[int, _Transaction[TXN]] = {}
        self._opened = False
        self._records_written = 0
        self._records_committed = 0
        self._begun = 0
        self._committed = 0
        self._aborted = 0
        self._recovered_committed = 0
        self._recovered_aborted = 0

    # --- lifecycle ---

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._state = ctx.operator_state.get_list_state(ListStateDescriptor(TRANSACTIONS_STATE))
        self._opened = True
        await self.sink.open(ctx)
        if ctx.restored:
            await self._recover(list(self._state.get()))
        self._state.clear()
        self._current = await self._begin()

    async def write_batch(self, records: list[Any]) -> None:
        if not records:
            return
        current = self._current
        if current is None:
            raise StreamletInternalError(
                f"{self.ctx.task_name_with_subtask} got records after its input ended"
            )
        await _call(self.sink.write, current.handle, records)
        current.records += len(records)
        self._records_written += len(records)

    async def snapshot_state(self, checkpoint_id: int) -> None:
        current = self._current
        if current is not None:
            await _call(self.sink.pre_commit, current.handle)
            self._pending[checkpoint_id] = current
            self._current = await self._begin()
        assert self._state is not None
        self._state.update(self._entries(checkpoint_id))

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        # Subsuming contract: completion of n covers every pending id <= n, oldest first.
        for pending_id in [cid for cid in self._pending if cid <= checkpoint_id]:
            transaction = self._pending[pending_id]
            await _call(self.sink.commit, transaction.handle)
            del self._pending[pending_id]
            self._committed += 1
            self._records_committed += transaction.records

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        # Aborted is not discarded: the next completed checkpoint commits these too.
        if checkpoint_id in self._pending:
            logger.debug(
                "%s: checkpoint %d aborted; its transaction stays pending",
                self.ctx.task_name_with_subtask,
                checkpoint_id,
            )

    async def end_input(self) -> list[Any]:
        # With checkpointing, the final checkpoint completed (and was notified) before the
        # input ended, so the current transaction is empty and the pending map too.
        # Without checkpointing, the current transaction holds every record. (Were records
        # left here with checkpointing on, committing them outside a checkpoint would be
        # the lesser evil: lost on success otherwise, duplicated only by a later restore.)
        current = self._current
        mode = self.sink.commit_on_end_of_input
        if current is not None and (mode is True or (mode is None and current.records)):
            await _call(self.sink.pre_commit, current.handle)
            await _call(self.sink.commit, current.handle)
            self._current = None
            self._committed += 1
            self._records_committed += current.records
        return []

    async def close(self) -> None:
        try:
            current, self._current = self._current, None
            if current is not None:
                # Not pre-committed: no checkpoint covers its records, the sources replay
                # them after a restore. Pending transactions stay for the restore.
                await _call(self.sink.abort, current.handle)
                self._aborted += 1
        finally:
            if self._opened:
                await self.sink.close()

    def statistics(self) -> TwoPhaseCommitStatistics:
        """Return this writer's counters."""
        return TwoPhaseCommitStatistics(
            records_written=self._records_written,
            records_committed=self._records_committed,
            transactions_begun=self._begun,
            transactions_committed=self._committed,
            transactions_aborted=self._aborted,
            transactions_pending=len(self._pending),
            recovered_committed=self._recovered_committed,
            recovered_aborted=self._recovered_aborted,
        )

    # --- helpers ---

    async def _begin(self) -> _Transaction[TXN]:
        handle = await _call(self.sink.begin_transaction)
        self._begun += 1
        return _Transaction(handle)

    def _entries(self, checkpoint_id: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {
                "status": _PENDING,
                "checkpoint_id": cid,
                "transaction": transaction.handle,
                "records": transaction.records,
            }
            for cid, transaction in self._pending.items()
        ]
        if self._current is not None:
            entries.append(
                {
                    "status": _IN_PROGRESS,
                    "checkpoint_id": checkpoint_id,
                    "transaction": self._current.handle,
                }
            )
        return entries

    async def _recover(self, entries: list[Any]) -> None:
        # Validate everything before acting on anything: one forged entry must not get a
        # commit or an abort of the entries before it.
        to_commit: list[tuple[int, Any, int]] = []
        to_abort: list[Any] = []
        for entry in entries:
            try:
                if not isinstance(entry, dict):
                    raise TypeError(f"an entry must be a dict, got {type(entry).__name__}")
                status = entry["status"]
                checkpoint_id = _count(entry["checkpoint_id"], "checkpoint_id")
                handle = entry["transaction"]
                if status == _PENDING:
                    to_commit.append((checkpoint_id, handle, _count(entry["records"], "records")))
                elif status == _IN_PROGRESS:
                    to_abort.append(handle)
                else:
                    raise ValueError(f"unknown status {status!r}")
            except (TypeError, KeyError, ValueError) as exc:
                raise RestoredTransactionError(
                    f"operator {self.ctx.operator_uid!r}: malformed two-phase-commit entry "
                    f"{entry!r:.300} in restored state: {exc}; nothing was committed or "
                    f"aborted (was the checkpoint written by this job?)"
                ) from exc
            try:
                self.sink.validate_restored_transaction(handle)
            except (TypeError, ValueError) as exc:
                raise RestoredTransactionError(
                    f"operator {self.ctx.operator_uid!r}: refusing restored {status} "
                    f"transaction {handle!r:.300} of checkpoint {checkpoint_id}: {exc}; nothing "
                    f"was committed or aborted (was the checkpoint written by this job?)"
                ) from exc
        # Oldest first: a lower id is never committed after a higher one. The sort is
        # stable, so entries of one old subtask keep their order.
        to_commit.sort(key=lambda item: item[0])
        for _, handle, records in to_commit:
            await _call(self.sink.recover_and_commit, handle)
            self._committed += 1
            self._recovered_committed += 1
            self._records_committed += records
        for handle in to_abort:
            await _call(self.sink.recover_and_abort, handle)
            self._aborted += 1
            self._recovered_aborted += 1


def _count(value: Any, what: str) -> int:
    """Return ``value`` if it is a non-negative int (a checkpoint id, a record count)."""
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r:.80}")
    return value
