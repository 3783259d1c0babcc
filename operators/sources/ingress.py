"""Ingress: the session buffer of sources whose input arrives on its own (socket, push).

A push source's input (an application's coroutines, a socket) does not wait for the job and
cannot be asked again. So its buffer lives in :meth:`Source.session`, which stays open for the
whole job across restarts, not in the reader, which lives for one attempt:

- :class:`IngressBuffer` is that buffer: bounded (a full buffer makes the producer wait, which
  is the backpressure), optionally backed by a
  :class:`~streamlet.operators.sources.wal.WriteAheadLog`.
- :class:`IngressReader` is a reader of it. When an attempt fails, the engine closes its
  reader and opens a new one on the same buffer: what the failed attempt already took is
  gone (at-most-once), what is still buffered goes to the new reader.
- With the write-ahead log, every record is logged and synced (group commit) before a reader
  can see it, and its sequence number is the position. A reader restored at position ``p``
  replays records ``p + 1 ...`` from the log, then continues with new input: exactly-once.

The socket source and :class:`~streamlet.operators.sources.push.PushSource` are built on these.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from streamlet.checkpoints.layout import safe_name
from streamlet.state.errors import StreamletInternalError

from .base import SourceReader, SourceSessionContext
from .wal import WriteAheadLog, WriteAheadLogError, encode_records

__all__ = [
    "IngressBuffer",
    "IngressReader",
    "open_ingress_wal",
]

T = TypeVar("T")
"""Type of the records in an ingress buffer."""

logger = logging.getLogger("streamlet.sources")

# How log directories were named before they used safe_name: not collision-free, so such
# a directory is never read (see open_ingress_wal), only reported.
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _old_log_name(uid: str) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", uid).strip(".") or "source"


#: A pending chunk this long is written to the log as it is; shorter ones are joined.
_OWN_FRAME_RECORDS = 1024


_Chunk = tuple[list[Any], int, bytes | None, bytes | None]
"""Records put together, their character count, their text (see ``put_chunk``), and their
encoding for the log (see :func:`~streamlet.operators.sources.wal.encode_records`)."""


def _join(chunks: list[_Chunk]) -> _Chunk:
    """One chunk holding the records of ``chunks`` in order."""
    if len(chunks) == 1:
        return chunks[0]
    records = list(itertools.chain.from_iterable(chunk[0] for chunk in chunks))
    chars = sum(chunk[1] for chunk in chunks)
    texts = [chunk[2] for chunk in chunks]
    text = b"".join(texts) if None not in texts else None  # type: ignore[arg-type]
    encs = [chunk[3] for chunk in chunks]
    encoded = b",".join(e for e in encs if e) if None not in encs else None
    return records, chars, text, encoded


class _Signal:
    """A reusable wake-up: waiters block until the next :meth:`fire`.

    The event is created lazily because a buffer may be built before any event loop runs
    (a :class:`PushSource` is usually constructed in plain code).
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


async def open_ingress_wal(ctx: SourceSessionContext, source_name: str) -> WriteAheadLog:
    """Open the write-ahead log of a push source's session in ``ctx.wal_dir``.

    :raises ValueError: if the job has no checkpoint directory (``ctx.wal_dir`` is None)
    :raises WriteAheadLogError: if the log cannot be opened
    """
    if ctx.wal_dir is None:
        raise ValueError(
            f"write_ahead_log needs a checkpoint directory, but job {ctx.job_name!r} has "
            f"none for source {source_name!r} (uid {ctx.source_uid!r}); set one with "
            f"env.get_checkpoint_config().set_checkpoint_storage_dir(...)"
        )
    # The same collision-free naming as checkpoint state files: distinct uids ("in/1" and
    # "in_1", ".", "..", "source") get distinct directories.
    name = safe_name(ctx.source_uid)
    old = _old_log_name(ctx.source_uid)
    if old != name and (ctx.wal_dir / old).is_dir() and not (ctx.wal_dir / name).exists():
        # Not read: under the old naming several uids shared this directory, so nothing
        # says whose records it holds. Replaying it could inject another source's input.
        logger.warning(
            "source %r (uid %r): found a write-ahead log under the old directory name %r, "
            "which other uids may share; it is not replayed. Its log is now %r",
            source_name,
            ctx.source_uid,
            str(ctx.wal_dir / old),
            str(ctx.wal_dir / name),
        )
    wal = WriteAheadLog(ctx.wal_dir, name)
    await wal.open()
    return wal


class IngressBuffer(Generic[T]):
    """A bounded buffer between a push source's producer and the current attempt's reader.

    The producer side (:meth:`put`, :meth:`put_nowait`, :meth:`put_many`, :meth:`put_chunk`,
    :meth:`end`, :meth:`fail`) may be used before the session starts; records wait in the
    buffer. :meth:`start` and :meth:`stop` bracket the session. Without a log, records
    are visible to the reader at once. With one, :meth:`run_committer` logs them in
    rounds: it writes everything put since the last round to the log, syncs it, and makes
    it visible. Puts made during a round's sync wait for the next round, so one sync covers
    all of them (group commit), and records put one at a time are still encoded many to a
    frame.

    :param max_buffered: records held (pending, being logged, or visible) before producers
        wait
    :param description: names the source in error messages
    :param write_ahead_log: log records before they become visible
    :param json_records: encode records for the log when they are put, one orjson call per
        put (so a record the log cannot hold faithfully is refused right there, naming it);
        readers get the records put, which equal what a replay decodes, types included
    :param max_buffered_chars: also wait once the held records total this many characters
        (records must then be ``str``, and ``json_records`` off); None for no such bound
    """

    def __init__(
        self,
        max_buffered: int,
        *,
        description: str,
        write_ahead_log: bool = False,
        json_records: bool = False,
        max_buffered_chars: int | None = None,
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered!r}")
        if max_buffered_chars is not None and max_buffered_chars < 1:
            raise ValueError(f"max_buffered_chars must be >= 1, got {max_buffered_chars!r}")
        self.max_buffered = max_buffered
        self.max_buffered_chars = max_buffered_chars
        self.description = description
        self.write_ahead_log = write_ahead_log
        self._json = json_records and write_ahead_log
        self._wal: WriteAheadLog | None = None
        # Records are held in *chunks* (the lists producers hand in, or one logged batch)
        # with their character count, so moving and taking them costs per chunk, not per
        # record. With the log a chunk goes _pending -> _unsynced -> _visible.
        # Invariant: _pending_count, _in_flight and _visible_count count the records in
        # _pending, _unsynced and _visible (the last minus _visible_offset).
        self._pending: list[_Chunk] = []
        self._pending_count = 0
        self._unsynced: deque[tuple[int, list[Any], int]] = deque()  # (last seq, records, chars)
        self._in_flight = 0
        self._visible: deque[tuple[list[Any], int]] = deque()
        self._visible_offset = 0  # records of _visible[0] already taken
        self._visible_count = 0
        # Invariant (with the log): the next record to take has _visible_first_seq.
        self._visible_first_seq = 0
        # Characters held, when max_buffered_chars is set; a chunk's are freed once it is
        # wholly taken, so the bound may be exceeded by one chunk.
        self._chars = 0
        # End of the log when the session started: where a reader without position begins.
        self._base_seq = 0
        self._ended = False
        self._error: Exception | None = None
        self._started = False
        self._stopped = False
        # Readers attach in turn; only the newest may read (one split, one attempt at a time).
        self._generation = 0
        self._readable = _Signal()
        self._writable = _Signal()
        self._committable = _Signal()

    # --- Producer side ---

    @property
    def size(self) -> int:
        """Records held now: waiting to be logged, being logged, or waiting for the reader."""
        return self._pending_count + self._in_flight + self._visible_count

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._ended

    def _full(self) -> bool:
        if self.max_buffered_chars is not None and self._chars >= self.max_buffered_chars:
            return True
        return self.size >= self.max_buffered

    def _check_can_put(self) -> None:
        if self._ended:
            raise anyio.ClosedResourceError(f"{self.description} was ended; it takes no records")
        if self._error is not None:
            raise anyio.BrokenResourceError(
                f"{self.description} failed: {self._error}"
            ) from self._error
        if self._stopped:
            raise anyio.BrokenResourceError(f"the job reading {self.description} has finished")

    def _accept(self, records: list[Any], text: bytes | None = None) -> None:
        chars = 0
        encoded = None
        if self._json:
            encoded = self._encode(records)
        elif self.max_buffered_chars is not None:
            chars = sum(map(len, records))
            self._chars += chars
        if self.write_ahead_log:
            self._pending.append((records, chars, text, encoded))
            self._pending_count += len(records)
            self._committable.fire()
        else:
            self._visible.append((records, chars))
            self._visible_count += len(records)
            self._readable.fire()

    def _encode(self, records: list[Any]) -> bytes:
        try:
            return encode_records(records)
        except TypeError as exc:
            raise TypeError(
                f"{self.description} has a write-ahead log, which must give the job exactly "
                f"the records pushed, but cannot log {exc}. Convert such records to types it "
                f"restores faithfully (those of keyed state's default serializer), or turn "
                f"write_ahead_log off (at-most-once)"
            ) from None

    def put_nowait(self, record: Any) -> None:
        """Add one record now.

        :raises anyio.WouldBlock: if the buffer is full
        :raises anyio.ClosedResourceError: if :meth:`end` was called
        :raises anyio.BrokenResourceError: if the session ended or failed
        :raises TypeError: if ``json_records`` and the log cannot hold the record faithfully
        """
        self._check_can_put()
        if self._full():
            raise anyio.WouldBlock
        self._accept([record])

    async def put(self, record: Any) -> None:
        """Add one record, waiting while the buffer is full. Raises like :meth:`put_nowait`."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._check_can_put()
            if not self._full():
                self._accept([record])
                await anyio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._writable.wait()

    async def put_many(self, records: Iterable[Any]) -> None:
        """Add records in order, each as soon as there is room. Raises like :meth:`put`.

        If cancelled or failing, a prefix of ``records`` may have been added.
        """
        items = list(records)
        await anyio.lowlevel.checkpoint_if_cancelled()
        i = 0
        while i < len(items):
            self._check_can_put()
            room = 0 if self._full() else self.max_buffered - self.size
            if room <= 0:
                await self._writable.wait()
                continue
            self._accept(items[i : i + room])
            i += room
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def put_chunk(self, records: list[Any], text: bytes | None = None) -> None:
        """Wait for any room, then add all ``records`` at once.

        For a producer that reads its input in chunks (a socket): the bound is exceeded by at
        most one chunk, and the chunk is never split, which keeps the hot path short.

        :param text: when ``records`` are lines and these are their exact UTF-8 bytes with a
            ``"\n"`` after each (what a socket received, often), the log stores them as
            they are instead of encoding the lines (see :meth:`WriteAheadLog.write`)
        """
        while True:
            self._check_can_put()
            if not self._full():
                self._accept(records, text)
                return
            await self._writable.wait()

    def end(self) -> None:
        """Mark the end of input: readers drain what is buffered, then see the end."""
        self._ended = True
        self._wake_all()

    def fail(self, error: Exception) -> None:
        """Fail the input: readers drain what is buffered, then get ``error`` raised."""
        if self._error is None:
            self._error = error
        self._wake_all()

    def _wake_all(self) -> None:
        self._readable.fire()
        self._writable.fire()
        self._committable.fire()

    # --- Session side ---

    def start(self, wal: WriteAheadLog | None) -> None:
        """Begin the session; ``wal`` is required exactly when ``write_ahead_log`` is on.

        :raises RuntimeError: if the buffer already served a session
        """
        if self._started:
            raise RuntimeError(
                f"{self.description} already served a job; a buffer feeds one job only"
            )
        if (wal is not None) != self.write_ahead_log:
            raise StreamletInternalError(
                f"{self.description}: write_ahead_log={self.write_ahead_log} but wal={wal!r}"
            )
        self._started = True
        self._wal = wal
        if wal is not None:
            # A reader without position (no checkpoint restored) replays what the log holds
            # beyond the last completed checkpoint: those records were logged, so their
            # producer counts them as delivered, but nothing downstream has safely taken
            # them (they would be lost for good if this start skipped them).
            self._base_seq = wal.checkpointed_seq

    def stop(self) -> None:
        """End the session: waiting producers and readers get ``BrokenResourceError``."""
        self._stopped = True
        self._wake_all()

    async def run_committer(self) -> None:
        """Log what producers put, in rounds, and publish it; run it in the session.

        A round writes every record put since the previous round to the log (encoded
        here, see :meth:`WriteAheadLog.write`), has the log's worker thread checksum,
        write and sync it (:meth:`WriteAheadLog.sync`), and makes the records visible.
        Producers and the job go on meanwhile. Returns once the input ended and all of it
        is visible, or when the buffer failed: an error in the log fails the buffer
        (readers see it) instead of the session's task group.
        """
        wal = self._wal
        assert wal is not None
        while True:
            while not self._pending:
                if self._ended or self._stopped or self._error is not None:
                    return
                await self._committable.wait()
            if self._stopped or self._error is not None:
                return
            if not self._write_pending(wal):
                return
            try:
                synced = await wal.sync()
            except WriteAheadLogError as exc:
                self.fail(exc)
                return
            self._publish(synced)

    def _write_pending(self, wal: WriteAheadLog) -> bool:
        """Write the pending chunks to the log; False if that failed (the buffer failed).

        A chunk of at least ``_OWN_FRAME_RECORDS`` records is written as it is (no copy);
        runs of smaller ones (single puts of a push source) are joined into one batch, so
        they share frames.
        """
        chunks, self._pending = self._pending, []
        self._pending_count = 0
        small: list[_Chunk] = []
        for chunk in chunks:
            if len(chunk[0]) < _OWN_FRAME_RECORDS:
                small.append(chunk)
                continue
            if small and not self._write_chunk(wal, _join(small)):
                return False
            small = []
            if not self._write_chunk(wal, chunk):
                return False
        return not small or self._write_chunk(wal, _join(small))

    def _write_chunk(self, wal: WriteAheadLog, chunk: _Chunk) -> bool:
        records, chars, text, encoded = chunk
        try:
            last = wal.write(records, text=text, encoded=encoded)
        except (WriteAheadLogError, TypeError, ValueError) as exc:
            # This chunk was not queued: fail the buffer, so the job fails with it.
            self.fail(exc)
            return False
        self._unsynced.append((last, records, chars))
        self._in_flight += len(records)
        return True

    def _publish(self, synced: int) -> None:
        """Make the logged records up to sequence ``synced`` visible to the reader."""
        unsynced = self._unsynced
        while unsynced and unsynced[0][0] <= synced:
            last, records, chars = unsynced.popleft()
            if not self._visible:
                self._visible_first_seq = last - len(records) + 1
            self._visible.append((records, chars))
            self._visible_count += len(records)
            self._in_flight -= len(records)
        self._readable.fire()

    # --- Reader side ---

    def attach(self, position: Any) -> tuple[int, int]:
        """Register a new reader at ``position``; older readers may no longer read.

        :return: ``(generation, cursor)``: the reader's token and its starting sequence
        :raises StreamletInternalError: if the session has not started
        :raises ValueError: if ``position`` is not a valid log position
        :raises WriteAheadLogError: if the log no longer holds the records after it
        """
        if not self._started or self._stopped:
            raise StreamletInternalError(
                f"a reader of {self.description} was opened outside the source's session"
            )
        self._generation += 1
        wal = self._wal
        if wal is None or position is None:
            return self._generation, self._base_seq
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError(
                f"position of {self.description} must be a write-ahead log sequence "
                f"number >= 0, got {position!r}"
            )
        if position > wal.last_seq:
            raise WriteAheadLogError(
                f"position {position} of {self.description} is past the end of its "
                f"write-ahead log {str(wal.path)!r} (last sequence {wal.last_seq}): the log "
                f"was deleted or belongs to another job"
            )
        if position < wal.last_seq and position + 1 < wal.first_seq:
            raise WriteAheadLogError(
                f"position {position} of {self.description} needs records its write-ahead "
                f"log {str(wal.path)!r} already truncated (oldest kept {wal.first_seq})"
            )
        return self._generation, position

    async def read(self, generation: int, cursor: int, max_records: int) -> list[Any] | None:
        """Return up to ``max_records`` records after ``cursor``, waiting for at least one.

        :return: the records, or None once the input ended and everything was read
        :raises anyio.BrokenResourceError: if a newer reader attached or the session ended
        :raises Exception: the error given to :meth:`fail`, once the buffer is drained
        """
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records!r}")
        while True:
            if generation != self._generation:
                raise anyio.BrokenResourceError(
                    f"this reader of {self.description} was replaced by a newer one"
                )
            if self._wal is None:
                records = self._take_visible(max_records)
            else:
                records = await self._read_logged(cursor, max_records)
            if records:
                return records
            if self._error is not None:
                raise self._error
            if self._ended and not self._pending_count and not self._in_flight:
                return None
            if self._stopped:
                raise anyio.BrokenResourceError(f"the session of {self.description} ended")
            await self._readable.wait()

    def _take_visible(self, max_records: int) -> list[Any]:
        visible = self._visible
        out: list[Any] = []
        while visible and len(out) < max_records:
            records, chars = visible[0]
            start = self._visible_offset
            end = min(len(records), start + max_records - len(out))
            if start == 0 and end == len(records) and not out:
                out = records  # a whole chunk: hand the list over without copying
            else:
                out.extend(records[start:end])
            if end == len(records):
                visible.popleft()
                self._visible_offset = 0
                self._chars -= chars
            else:
                self._visible_offset = end
        if out:
            self._visible_count -= len(out)
            self._writable.fire()
        return out

    async def _read_logged(self, cursor: int, max_records: int) -> list[Any]:
        visible = self._visible
        wal = self._wal
        assert wal is not None
        # Records at or before the cursor were taken by an earlier reader: drop them.
        stale = min(cursor - self._visible_first_seq + 1, self._visible_count)
        if stale > 0:
            self._take_visible(stale)
            self._visible_first_seq += stale
        if visible and self._visible_first_seq == cursor + 1:
            taken = self._take_visible(max_records)
            self._visible_first_seq += len(taken)
            return taken
        # The records right after the cursor are only in the log (a replay): read them there.
        log_end = self._visible_first_seq - 1 if visible else wal.last_seq
        if cursor < log_end:
            return await wal.read_from(cursor + 1, min(max_records, log_end - cursor))
        return []

    @property
    def wal(self) -> WriteAheadLog | None:
        """The session's write-ahead log, if any."""
        return self._wal


class IngressReader(SourceReader[T]):
    """Reads an :class:`IngressBuffer` for one attempt of the job.

    Resume contract: with a write-ahead log, :meth:`position` is the sequence number of the
    last record returned (records are numbered from 1, so position ``p`` resumes with record
    ``p + 1``); a reader built with ``p`` first replays from the log, then goes on with new
    input. ``None`` (a start that restores no checkpoint: ``restore=None``, or ``"latest"``
    with none completed yet) begins after the last record a completed checkpoint covered
    (:attr:`WriteAheadLog.checkpointed_seq`; the log's beginning if none did): the log is
    the source's durable input, and what no completed checkpoint covered was never safely
    processed, so it is replayed. A log directory of the same job and uid left by an
    earlier process is therefore picked up; delete it to discard its records. A job whose
    log directory is new starts with no replay. Without a log, :meth:`position` is None and
    a restore cannot rewind: records returned to a failed attempt are lost (at-most-once),
    buffered ones are not.

    :param get_buffer: returns the buffer of the running session, or None outside of it
    :param position: the restored position, or None
    """

    def __init__(
        self, get_buffer: Callable[[], IngressBuffer[T] | None], position: Any | None
    ) -> None:
        self._get_buffer = get_buffer
        self._restore = position
        self._buffer: IngressBuffer[T] | None = None
        self._generation = 0
        self._cursor = 0
        # None until open(): whether positions are log sequence numbers.
        self._logged: bool | None = None

    async def open(self) -> None:
        """Attach to the session's buffer (and check the restored position against the log).

        :raises StreamletInternalError: if the source's session is not running
        :raises WriteAheadLogError: if the log cannot serve the restored position
        """
        buffer = self._get_buffer()
        if buffer is None:
            raise StreamletInternalError(
                "a push source's reader was opened outside the source's session"
            )
        self._generation, self._cursor = buffer.attach(self._restore)
        self._logged = buffer.wal is not None
        self._buffer = buffer

    async def read_batch(self, max_records: int) -> list[T] | None:
        """Return up to ``max_records`` records, waiting for at least one (None at the end)."""
        if self._buffer is None:
            raise StreamletInternalError("read_batch() called before open()")
        records = await self._buffer.read(self._generation, self._cursor, max_records)
        if records:
            self._cursor += len(records)
        return records

    def position(self) -> int | None:
        """Sequence number of the last record returned, or None without a write-ahead log."""
        if self._logged is None:
            return self._restore
        return self._cursor if self._logged else None

    async def notify_checkpoint_complete(self, checkpoint_id: int, position: Any) -> None:
        """Record that the log is checkpointed up to ``position``, then truncate before it.

        The mark comes first: a fresh start resumes from it, and it must never point before
        a truncated record.
        """
        buffer = self._buffer
        if buffer is None or buffer.wal is None or not isinstance(position, int):
            return
        await buffer.wal.mark_checkpointed(position)
        await buffer.wal.truncate_before(position + 1)

    async def close(self) -> None:
        """Detach. The buffer and its connection or producer stay with the session."""
        self._buffer = None
