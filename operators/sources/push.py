"""The push source: a source an application feeds from its own coroutines.

Its buffer is an :class:`~streamlet.operators.sources.ingress.IngressBuffer` held by the source's
session, so it survives failovers inside the job; see :mod:`streamlet.operators.sources.ingress`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import anyio.lowlevel

from .base import DeliveryGuarantee, Source, SourceReader, SourceSessionContext
from .ingress import IngressBuffer, IngressReader, open_ingress_wal

__all__ = ["PushSource"]


class PushSource(Source[Any]):
    """A source the application feeds from its own coroutines.

    ``await source.push(record)`` waits while ``max_buffered`` records are buffered (so a
    slow job slows the application down instead of growing memory); ``push_nowait`` raises
    ``anyio.WouldBlock`` instead; ``source.end()`` (or ``await source.close()``) ends the
    stream, and the job finishes once everything pushed has been read. Pushing may start
    before the job does: records wait in the buffer, up to ``max_buffered``. Once the job
    has finished, a push raises ``anyio.BrokenResourceError``; after ``end()`` it raises
    ``anyio.ClosedResourceError``. One ``PushSource`` feeds one job.

    Non-parallel (one split), unbounded until ended. The buffer lives in the source's
    session, so a failover inside the job keeps it.

    Guarantee: without a write-ahead log, at-most-once: records handed to an attempt that
    then fails are lost; records still buffered are not. With ``write_ahead_log=True`` (the
    job needs a checkpoint directory), exactly-once: every record is logged and synced
    before the job sees it, and replayed after a restore. The log uses the state's
    type-faithful codec, so the job receives what was pushed (a tuple stays a tuple, a
    dataclass a dataclass, NaN stays NaN), before a restore and after it alike; what the
    codec cannot restore faithfully is refused at push time with a ``TypeError`` naming
    it. Do not mutate a record after pushing it: a replay gives the record as it was
    pushed. ``push`` returns once the record is buffered; it is durable after the next
    group commit, normally within one sync. A job that starts without restoring a
    checkpoint replays what its log holds beyond the last completed checkpoint (see
    :class:`IngressReader`).

    RESUME CONTRACT: see :class:`IngressReader`. With the log, the position is the sequence
    number of the last record read; a reader restored at ``p`` returns record ``p + 1``
    next. Without it the position is None and nothing is rewound.

    :param max_buffered: records buffered before ``push`` waits
    :param write_ahead_log: log records before the job sees them (exactly-once)
    :raises ValueError: if ``max_buffered < 1``
    """

    name = "Push Source"
    max_parallelism = 1
    bounded = False

    def __init__(self, max_buffered: int = 1024, *, write_ahead_log: bool = False) -> None:
        self.write_ahead_log = write_ahead_log
        self.delivery = (
            DeliveryGuarantee.EXACTLY_ONCE if write_ahead_log else DeliveryGuarantee.AT_MOST_ONCE
        )
        self._buffer: IngressBuffer[Any] = IngressBuffer(
            max_buffered,
            description=f"source {self.name!r}",
            write_ahead_log=write_ahead_log,
            json_records=True,
        )
        self._session_active = False

    # --- Application side ---

    async def push(self, record: Any) -> None:
        """Add ``record`` to the stream, waiting while the buffer is full.

        A cancellation point always, but a scheduling point only when the buffer is full
        (like ``asyncio.Queue.put``): records pushed in a row, without the producer
        waiting in between, reach the job together, as one batch.

        :raises anyio.ClosedResourceError: if the stream was ended
        :raises anyio.BrokenResourceError: if the job reading it has finished or failed
        :raises TypeError: if the write-ahead log is on and cannot log ``record`` faithfully
        """
        # Why not yield after every record: the job's reader, woken by the first record,
        # then ran before the next push, so every record went through the whole job as a
        # batch of its own. That cost ~80 us of loop time per record at parallelism 4
        # (80-90% of a core at 10,000 pushes/s), and after any hiccup (a checkpoint, a GC
        # pass) a producer catching up still handed over one record per loop turn: p99 of
        # 64 ms, and hundreds of ms in `make bench ARGS=latency`. max_buffered still
        # bounds how long a producer that never waits can keep the job from running.
        await anyio.lowlevel.checkpoint_if_cancelled()
        buffer = self._buffer
        try:
            buffer.put_nowait(record)
        except anyio.WouldBlock:
            await buffer.put(record)

    def push_nowait(self, record: Any) -> None:
        """Add ``record`` now. Raises like :meth:`push`, and ``anyio.WouldBlock`` if full."""
        self._buffer.put_nowait(record)

    async def push_many(self, records: Iterable[Any]) -> None:
        """Add ``records`` in order, waiting for room as needed. Raises like :meth:`push`."""
        await self._buffer.put_many(records)

    def end(self) -> None:
        """End the stream: the job reads what is buffered, then finishes. Idempotent."""
        self._buffer.end()

    async def close(self) -> None:
        """Async spelling of :meth:`end`."""
        self._buffer.end()
        await anyio.lowlevel.checkpoint()

    @property
    def buffered(self) -> int:
        """Records pushed and not yet read by the job."""
        return self._buffer.size

    # --- Source contract ---

    def create_splits(self, parallelism: int) -> list[Any]:
        """One split: the stream cannot be divided."""
        return ["push"]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Any]:
        """Return a reader of the session's buffer, resuming after ``position``."""
        return IngressReader(self._current_buffer, position)

    def _current_buffer(self) -> IngressBuffer[Any] | None:
        return self._buffer if self._session_active else None

    @contextlib.asynccontextmanager
    async def session(self, ctx: SourceSessionContext) -> AsyncIterator[None]:
        """Hold the buffer (and the write-ahead log and its committer) for the whole job.

        :raises ValueError: if ``write_ahead_log`` is on and the job has no checkpoint
            directory
        :raises RuntimeError: if this source already fed a job
        """
        wal = await open_ingress_wal(ctx, self.name) if self.write_ahead_log else None
        try:
            self._buffer.start(wal)
            self._session_active = True
            async with anyio.create_task_group() as tg:
                if wal is not None:
                    tg.start_soon(self._buffer.run_committer)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._session_active = False
            self._buffer.stop()
            if wal is not None:
                with anyio.CancelScope(shield=True):
                    await wal.close()
