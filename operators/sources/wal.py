"""An append-only, crash-safe ingress write-ahead log with group commit.

A push source (a socket, an application's queue) cannot rewind its input. With this log the
source records every record it received *before* the job may see it, so after a restore the
records since the checkpointed position are replayed from disk: exactly-once inside the
engine, like Flink's write-ahead-log ingress for sources that cannot replay.

Design:

- Records get consecutive sequence numbers starting at 1. ``last_seq`` survives the process
  because the newest segment is never deleted and its file name holds its first sequence.
- The log is a directory of segment files ``<first_seq:020d>.wal``. A segment rolls over once
  it holds ``segment_bytes`` (default 4 MiB); :meth:`WriteAheadLog.truncate_before` deletes
  whole old segments only, so truncation is an ``unlink`` and never rewrites data.
- A segment is a sequence of *frames*. One frame holds up to ``max_frame_records`` records of
  one batch, encoded together as a single orjson array (one C call per frame, not per
  record), behind a 20-byte header::

      crc32 (u32) | payload length (u32) | first sequence (u64) | flags and count (u32)

  all little-endian. The crc covers the rest of the header and the payload. The last field's
  two top bits are the frame's kind, the other 30 its record count:

  - ``0b01`` *codec frame* (what :meth:`WriteAheadLog.write` writes): the array's items
    are the records in the state's type-faithful encoding (:mod:`streamlet.state.json_codec`), so a
    tuple, a dataclass, a datetime or NaN come back as they went in.
  - ``0b10`` *text frame*: lines of text, the payload their UTF-8 bytes, each line followed
    by ``\n``. A socket source hands in the bytes it received when they are exactly that,
    so its lines are logged without encoding them again (:meth:`WriteAheadLog.write`'s
    ``text``).
  - ``0b00`` *plain JSON frame*: written by versions before the codec frame; still read,
    as orjson decodes it (a tuple comes back as a list), because that is what its records
    looked like to the job then. Never written now.
  - ``0b11`` is invalid.
- Group commit, pipelined: :meth:`WriteAheadLog.write` only encodes a batch and queues it
  (in the event loop; orjson holds the GIL anyway). :meth:`WriteAheadLog.sync` hands
  everything queued to one worker thread, which computes the checksums and writes each
  segment's frames with one synchronous ``writev`` (``O_DSYNC``; where the platform lacks
  it, a ``writev`` and an ``fdatasync``), all outside the GIL. One sync runs at a time;
  batches written meanwhile share the next one. So encoding batch ``n + 1`` overlaps the
  disk work of batch ``n``, and the loop never waits for the disk (nor for the checksums:
  about 40 µs per 130 KB, the loop's busiest part of the log when a socket's bytes are
  logged as they are).
- Each time the worker gives the GIL up (a system call, ``zlib.crc32`` on more than 5 KiB)
  it must win it back from a busy event loop; busy subtasks hand it over when they yield
  (see ``streamlet.runtime.subtask``). Large frames keep those steps few: a socket chunk is one
  frame.
- ``checkpointed`` in the log's directory holds the sequence number of the last record a
  completed checkpoint covered (written atomically by :meth:`WriteAheadLog.mark_checkpointed`
  when a checkpoint completes). A job that starts without restoring a checkpoint replays
  the log from there (:attr:`WriteAheadLog.checkpointed_seq`), so records logged but never
  covered by a checkpoint are not lost when the process dies before its first checkpoint.
  Without the file (a new log, or one written before the file existed) that is the log's
  beginning.
- A crash can only tear the tail of the newest segment: a segment is synced before the
  first frame of the next one is written. :meth:`WriteAheadLog.open` verifies the newest
  segment frame by frame and cuts the file at the first incomplete or corrupt frame. So
  after a crash the log holds every acknowledged record (``sync`` returned), possibly
  followed by some that were written but never acknowledged; those were never shown to a
  reader, so keeping them loses nothing and duplicates nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import re
import reprlib
import struct
import zlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import orjson

from streamlet.checkpoints.file_blob_store import fsync_directory
from streamlet.state.errors import StreamletError, StreamletInternalError
from streamlet.state.json_codec import UnserializableValueError, from_json, is_plain_list, to_json

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "WriteAheadLog",
    "WriteAheadLogError",
    "encode_records",
]

DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024

_HEADER = struct.Struct("<IIQI")
_CRC = struct.Struct("<I")
_CHECKED = struct.Struct("<IQI")  # the header without its crc: what the crc covers
# Frame kinds, in the top bits of the record count (see the module docstring).
_TEXT_FRAME = 0x8000_0000  # lines of UTF-8 text
_CODEC_FRAME = 0x4000_0000  # a JSON array of records in state.json_codec's encoding
_KIND_MASK = _TEXT_FRAME | _CODEC_FRAME
_COUNT_MASK = ~_KIND_MASK & 0xFFFF_FFFF
_MAX_PAYLOAD = 0xFFFF_FFFF
_SEGMENT_NAME = re.compile(r"^(\d{20})\.wal$")
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})
_CHECKPOINTED_FILE = "checkpointed"
_CHECKPOINTED_TEXT = re.compile(rb"^(\d{1,20})\n$")


class WriteAheadLogError(StreamletError):
    """The write-ahead log could not be read or written, or is corrupt, or lacks a record."""


def _plain_batch(batch: list[Any]) -> bool:
    """Whether ``to_json`` leaves every record of ``batch`` as it is, decided per batch.

    True for plain scalars (see :func:`streamlet.state.json_codec.is_plain_list`) and for str-keyed
    dicts of them (the usual event record), with a few C-level passes over the whole batch
    instead of a Python-level walk per record. False means: ask ``to_json``.
    """
    types = set(map(type, batch))
    if types != {dict}:
        return types <= _PLAIN_SCALARS and is_plain_list(batch)
    if not set(map(type, itertools.chain.from_iterable(batch))) <= {str}:
        return False
    if 1 in set(map(len, batch)):
        return False  # {"$...": v} must be escaped so that it is not read as a tag
    return is_plain_list(list(itertools.chain.from_iterable(map(dict.values, batch))))


def encode_records(records: Sequence[Any]) -> bytes:
    """Encode ``records`` for :meth:`WriteAheadLog.write`'s ``encoded``: one orjson call.

    :raises TypeError: naming the first record that cannot be logged faithfully, its type
        and why (nothing else is encoded then)
    """
    batch = records if type(records) is list else list(records)
    try:
        if _plain_batch(batch):  # then to_json(batch) is batch itself: skip its walk
            return orjson.dumps(batch)[1:-1]
        return orjson.dumps(to_json(batch))[1:-1]
    except (UnserializableValueError, orjson.JSONEncodeError):
        pass
    # The slow path, only to name the culprit.
    for i, record in enumerate(records):
        try:
            orjson.dumps(to_json(record))
        except (UnserializableValueError, orjson.JSONEncodeError) as exc:
            # The codec's advice is for state descriptors; the caller gives its own.
            reason = str(exc).split("; pass another serializer")[0]
            where = f"record {i} of the batch, " if len(records) > 1 else ""
            raise TypeError(
                f"{where}{reprlib.repr(record)} of type {type(record).__qualname__} ({reason})"
            ) from None
    raise StreamletInternalError("a batch failed to encode but none of its records did")


@dataclass(slots=True)
class _Segment:
    """In-memory index of one segment file: where each frame starts."""

    first_seq: int
    path: Path
    # Invariant: frame_seqs[i] is the first sequence of the frame at offsets[i]; both ascend.
    frame_seqs: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    size: int = 0
    next_seq: int = 0


def _segment_path(directory: Path, first_seq: int) -> Path:
    return directory / f"{first_seq:020d}.wal"


_sync_data = getattr(os, "fdatasync", os.fsync)
#: Segments are opened for synchronous data writes where the platform can: a ``writev``
#: then returns once its data is durable, one system call where write + ``fdatasync`` are
#: two, and the worker thread wins the GIL back once instead of twice.
_O_DSYNC: int = getattr(os, "O_DSYNC", 0)


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order, resuming after short writes.

    ``writev`` hands the kernel every frame without joining them into one copy first.
    """
    if not hasattr(os, "writev"):  # pragma: no cover - Windows
        view = memoryview(b"".join(parts))
        while view:
            view = view[os.write(fd, view) :]
        return
    pending = [memoryview(part) for part in parts if part]
    i = 0
    while i < len(pending):
        written = os.writev(fd, pending[i : i + _IOV_MAX])
        while written:
            size = len(pending[i])
            if written >= size:
                written -= size
                i += 1
            else:
                pending[i] = pending[i][written:]
                written = 0


def _open_for_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | _O_DSYNC
    return os.open(path, flags, 0o644)


class WriteAheadLog:
    """An append-only log of records in ``directory / name``.

    Use it as ``async with WriteAheadLog(directory, name) as wal:`` (or call :meth:`open` and
    :meth:`close`). One process, one writer: two logs open on the same directory corrupt it.
    Records go in as anything the state's type-faithful codec encodes
    (:func:`streamlet.state.json_codec.to_json`) and come back equal and of the same types.

    :param directory: parent directory; created if missing
    :param name: the log's own sub-directory, e.g. the source's uid
    :param segment_bytes: size after which the next batch starts a new segment file
    :param max_frame_records: most records encoded into one frame (one batch of a socket
        source fits; one orjson call per batch is about twice as fast as four)
    :raises ValueError: if ``name`` is empty or contains a path separator, or a size is < 1
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        max_frame_records: int = 4096,
    ) -> None:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"name must be a plain directory name, got {name!r}")
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be >= 1, got {segment_bytes!r}")
        if not 1 <= max_frame_records <= _COUNT_MASK:
            raise ValueError(f"max_frame_records must be >= 1, got {max_frame_records!r}")
        self.path = Path(directory) / name
        self.segment_bytes = segment_bytes
        self.max_frame_records = max_frame_records
        #: Bytes cut from the newest segment by :meth:`open` (a torn tail from a crash).
        self.torn_tail_bytes = 0
        self._segments: list[_Segment] = []
        # Invariant: _last_seq (synced) <= _written_seq (in the page cache).
        self._last_seq = 0
        self._written_seq = 0
        # Frames encoded by write() and not yet handed to a flush, per segment.
        # Each frame is two buffers: its header (without the crc until the flush) and its
        # payload.
        self._queue: list[tuple[_Segment, list[bytes]]] = []
        # The open segment file; only the flushing worker thread and close() touch it.
        self._fd: int | None = None
        self._fd_segment: _Segment | None = None
        self._syncing: anyio.Event | None = None
        self._broken: BaseException | None = None
        self._opened = False
        # None: no checkpoint ever covered a record of this log (see checkpointed_seq).
        self._checkpointed: int | None = None
        self._marking: anyio.Lock | None = None

    # --- Lifecycle ---

    async def open(self) -> None:
        """Create or recover the log: index every segment and cut a torn tail.

        :raises WriteAheadLogError: if a segment other than the newest is corrupt, or the
            directory cannot be read
        """
        if self._opened:
            raise RuntimeError(f"write-ahead log {str(self.path)!r} is already open")
        try:
            segments, torn = await anyio.to_thread.run_sync(self._recover_sync)
            checkpointed = await anyio.to_thread.run_sync(self._read_checkpointed_sync)
        except OSError as exc:
            raise WriteAheadLogError(
                f"cannot open write-ahead log {str(self.path)!r}: {exc}"
            ) from exc
        self._segments = segments
        self.torn_tail_bytes = torn
        self._last_seq = self._written_seq = segments[-1].next_seq - 1 if segments else 0
        if checkpointed is not None:
            first = segments[0].first_seq if segments else self._last_seq + 1
            if checkpointed > self._last_seq or checkpointed < first - 1:
                raise WriteAheadLogError(
                    f"write-ahead log {str(self.path)!r} is inconsistent: its "
                    f"{_CHECKPOINTED_FILE!r} file says records up to {checkpointed} were "
                    f"checkpointed, but the log holds {first}..{self._last_seq}; delete the "
                    f"log directory to start without it"
                )
        self._checkpointed = checkpointed
        self._opened = True

    async def close(self) -> None:
        """Close the segment files. Idempotent; never raises for an I/O error.

        Records written but not synced may or may not survive; they were never
        acknowledged.
        """
        self._opened = False
        self._close_fds()

    async def __aenter__(self) -> WriteAheadLog:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    # --- Positions ---

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest synced record; 0 for a log that never held one."""
        return self._last_seq

    @property
    def written_seq(self) -> int:
        """Sequence number of the newest record written, synced or not."""
        return self._written_seq

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest record still kept (``last_seq + 1`` if none)."""
        if not self._segments:
            return self._last_seq + 1
        return self._segments[0].first_seq

    @property
    def checkpointed_seq(self) -> int:
        """Sequence number of the last record a completed checkpoint covered.

        Where a job that restores no checkpoint resumes: the records after it were logged
        but no completed checkpoint holds them, so they were never safely processed. For a
        log that never saw a completed checkpoint it is ``first_seq - 1``: all of it.
        """
        if self._checkpointed is None:
            return self.first_seq - 1
        return self._checkpointed

    async def mark_checkpointed(self, seq: int) -> None:
        """Record durably that a completed checkpoint covered the records up to ``seq``.

        Atomic (temporary file, fsync, rename, fsync of the directory): after a crash the
        file holds the old or the new number, never a torn one.

        :raises ValueError: if ``seq`` is negative or past ``last_seq``
        :raises WriteAheadLogError: if the file cannot be written
        """
        self._check_open()
        if not 0 <= seq <= self._last_seq:
            raise ValueError(f"seq must be in 0..{self._last_seq}, got {seq!r}")
        # Records before first_seq are gone, so a later start cannot replay them anyway
        # (a late notification of an older checkpoint must not point before them).
        seq = max(seq, self.first_seq - 1)
        if self._marking is None:
            self._marking = anyio.Lock()
        async with self._marking:
            if seq == self._checkpointed:
                return
            try:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._write_checkpointed_sync, seq)
            except OSError as exc:
                raise WriteAheadLogError(
                    f"cannot record the checkpointed position of write-ahead log "
                    f"{str(self.path)!r}: {exc}"
                ) from exc
            self._checkpointed = seq

    def _write_checkpointed_sync(self, seq: int) -> None:
        tmp = self.path / f".{_CHECKPOINTED_FILE}.tmp"
        with open(tmp, "wb") as f:
            f.write(b"%d\n" % seq)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / _CHECKPOINTED_FILE)
        fsync_directory(self.path)

    def _read_checkpointed_sync(self) -> int | None:
        path = self.path / _CHECKPOINTED_FILE
        try:
            with open(path, "rb") as f:
                data = f.read(64)
        except FileNotFoundError:
            return None
        match = _CHECKPOINTED_TEXT.match(data)
        if match is None:
            raise WriteAheadLogError(
                f"write-ahead log file {str(path)!r} is corrupt: expected a sequence number "
                f"and a newline, got {data[:40]!r}"
            )
        return int(match.group(1))

    # --- Writing ---

    def write(
        self,
        records: Sequence[Any],
        *,
        text: bytes | None = None,
        encoded: bytes | None = None,
    ) -> int:
        """Encode ``records`` and queue them for the next :meth:`sync`; do not wait.

        Only the encoding (one orjson call per frame) runs here. The checksums and the
        synchronous ``writev`` run in :meth:`sync`'s worker thread, outside the
        GIL, so the event loop can encode the next batch meanwhile. The records count as
        logged once a :meth:`sync` that started after this call returned.

        :param text: for records that are lines (``str`` without ``"\n"``): their UTF-8
            bytes with ``"\n"`` after each, which are then logged as they are, in one text
            frame, instead of being encoded. The caller vouches that ``text`` is exactly
            that; it is not checked beyond its last byte.
        :param encoded: the records already encoded: ``orjson.dumps(to_json(r))`` of each,
            joined by ``b","`` (:func:`encode_records` gives it). Logged as one codec
            frame as it is, however many records; the caller vouches it matches ``records``.
        :return: the sequence number of the batch's last record (``written_seq``)
        :raises TypeError: if a record cannot be logged faithfully (nothing is queued then)
        :raises ValueError: if ``text`` does not end with ``"\n"``
        :raises WriteAheadLogError: if an earlier write or sync failed
        """
        self._check_writable()
        if not records:
            return self._written_seq
        first = self._written_seq + 1
        if encoded is not None:
            frames = self._frame(b"[" + encoded + b"]", len(records), first, _CODEC_FRAME)
            seqs: Sequence[int] = (first,)
        elif text is None:
            frames = self._encode(records, first)
            seqs = range(first, first + len(records), self.max_frame_records)
        else:
            frames = self._text_frame(text, len(records), first)
            seqs = (first,)
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size >= self.segment_bytes:
            segment = _Segment(first, _segment_path(self.path, first), next_seq=first)
            self._segments.append(segment)
        for payload, seq in zip(frames[1::2], seqs, strict=True):
            segment.frame_seqs.append(seq)
            segment.offsets.append(segment.size)
            segment.size += _HEADER.size + len(payload)
        segment.next_seq = first + len(records)
        if self._queue and self._queue[-1][0] is segment:
            self._queue[-1][1].extend(frames)
        else:
            self._queue.append((segment, frames))
        self._written_seq = first + len(records) - 1
        return self._written_seq

    async def sync(self) -> int:
        """Write and sync everything queued so far (group commit); return ``last_seq``.

        One flush runs at a time, in a worker thread: checksums, then one synchronous
        ``writev`` per segment touched. A caller that finds one running waits
        for it and, if it started before the caller's write, for the next one, which
        covers every batch queued meanwhile. A cancelled sync still finishes.

        :raises WriteAheadLogError: if writing or syncing fails (the log then refuses
            further writes until it is reopened, which cuts the partial write)
        """
        target = self._written_seq
        while self._last_seq < target:
            self._check_writable()
            if self._syncing is not None:
                await self._syncing.wait()
                continue
            done = self._syncing = anyio.Event()
            upto = self._written_seq
            queue, self._queue = self._queue, []
            try:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._flush, queue)
            except OSError as exc:
                self._broken = exc
                raise WriteAheadLogError(
                    f"cannot write to write-ahead log {str(self.path)!r}: {exc}"
                ) from exc
            finally:
                self._syncing = None
                done.set()
            self._last_seq = max(self._last_seq, upto)
        return self._last_seq

    def _flush(self, queue: list[tuple[_Segment, list[bytes]]]) -> None:
        """Worker thread: checksum, write and sync the queued frames, in order."""
        retired: list[int] = []
        new_file = False
        dirty = False
        try:
            for segment, frames in queue:
                if self._fd_segment is not segment or self._fd is None:
                    if self._fd is not None:
                        # Sync the old segment before the new one gets a byte, so only
                        # the newest segment can ever have a torn tail.
                        retired.append(self._fd)
                        self._fd = None
                        if dirty and not _O_DSYNC:
                            _sync_data(retired[-1])
                    new_file = new_file or not segment.path.exists()
                    self._fd = _open_for_append(segment.path)
                    self._fd_segment = segment
                dirty = True
                for i in range(0, len(frames), 2):
                    checked, payload = frames[i], frames[i + 1]
                    frames[i] = _CRC.pack(zlib.crc32(payload, zlib.crc32(checked))) + checked
                _write_all(self._fd, frames)
            if self._fd is not None and dirty and not _O_DSYNC:
                _sync_data(self._fd)
            if new_file:
                fsync_directory(self.path)
        finally:
            for fd in retired:
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def append_batch(self, records: Sequence[Any]) -> int:
        """Append ``records`` and wait until they are durable: :meth:`write` + :meth:`sync`.

        Concurrent calls share syncs (group commit).

        :param records: records the codec can encode (:func:`streamlet.state.json_codec.to_json`)
        :return: the sequence number of the batch's last record
        :raises TypeError: if a record cannot be logged faithfully (nothing is written then)
        :raises WriteAheadLogError: if the write or the sync fails
        """
        last = self.write(records)
        await self.sync()
        return last

    def _encode(self, records: Sequence[Any], first: int) -> list[bytes]:
        """Return the frames of ``records``: header without crc, payload, header, ..."""
        frames: list[bytes] = []
        step = self.max_frame_records
        for i in range(0, len(records), step):
            chunk = records if step >= len(records) else records[i : i + step]
            try:
                batch = chunk if type(chunk) is list else list(chunk)
                # A plain batch is its own encoding: no walk per record.
                payload = orjson.dumps(batch if _plain_batch(batch) else to_json(batch))
            except (UnserializableValueError, orjson.JSONEncodeError) as exc:
                raise TypeError(
                    f"write-ahead log records must be values it can log faithfully: {exc}"
                ) from None
            frames += self._frame(payload, len(chunk), first + i, _CODEC_FRAME)
        return frames

    def _frame(self, payload: bytes, count: int, first: int, kind: int) -> list[bytes]:
        """Return one frame: its header without crc, then its payload."""
        if len(payload) > _MAX_PAYLOAD or count > _COUNT_MASK:
            raise WriteAheadLogError(
                f"a frame of {count} records and {len(payload)} bytes exceeds the frame "
                f"limits ({_COUNT_MASK} records, {_MAX_PAYLOAD} bytes)"
            )
        return [_CHECKED.pack(len(payload), first, count | kind), payload]

    def _text_frame(self, text: bytes, count: int, first: int) -> list[bytes]:
        """Return the text frame of ``count`` lines whose bytes are ``text``."""
        if not text.endswith(b"\n"):
            raise ValueError("text must end with a newline: one after each line")
        return self._frame(text, count, first, _TEXT_FRAME)

    def _close_fds(self) -> None:
        fd, self._fd, self._fd_segment = self._fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _check_writable(self) -> None:
        self._check_open()
        if self._broken is not None:
            raise WriteAheadLogError(
                f"write-ahead log {str(self.path)!r} failed earlier and must be reopened: "
                f"{self._broken}"
            )

    # --- Reading ---

    async def read_from(self, seq: int, limit: int) -> list[Any]:
        """Return up to ``limit`` records starting with sequence number ``seq``, in order.

        Only synced records are returned; an empty list means ``seq > last_seq``.

        :raises ValueError: if ``seq < 1`` or ``limit < 1``
        :raises WriteAheadLogError: if ``seq`` was already truncated away, or a frame is
            corrupt or missing
        """
        self._check_open()
        if seq < 1:
            raise ValueError(f"seq must be >= 1, got {seq!r}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        if seq > self._last_seq:
            return []
        if seq < self.first_seq:
            raise WriteAheadLogError(
                f"record {seq} of write-ahead log {str(self.path)!r} was truncated "
                f"(the oldest kept is {self.first_seq})"
            )
        end = min(self._last_seq, seq + limit - 1)
        plan: list[tuple[Path, list[int]]] = []
        index = bisect.bisect_right([s.first_seq for s in self._segments], seq) - 1
        for segment in self._segments[index:]:
            if segment.first_seq > end:
                break
            lo = max(bisect.bisect_right(segment.frame_seqs, seq) - 1, 0)
            hi = bisect.bisect_right(segment.frame_seqs, end)
            plan.append((segment.path, segment.offsets[lo:hi]))
        try:
            return await anyio.to_thread.run_sync(self._read_sync, plan, seq, end)
        except OSError as exc:
            raise WriteAheadLogError(
                f"cannot read records {seq}..{end} of write-ahead log {str(self.path)!r}: {exc}"
            ) from exc

    def _read_sync(self, plan: list[tuple[Path, list[int]]], seq: int, end: int) -> list[Any]:
        out: list[Any] = []
        for path, offsets in plan:
            with open(path, "rb") as f:
                for offset in offsets:
                    f.seek(offset)
                    first, records = _read_frame(f, path, offset)
                    lo = max(seq - first, 0)
                    hi = min(end - first + 1, len(records))
                    out.extend(records[lo:hi])
        return out

    async def iter_from(self, seq: int, *, batch_size: int = 1024) -> AsyncGenerator[Any]:
        """Yield the records from sequence ``seq`` up to the end of the log, in order.

        Follows appends made while iterating. Close it: ``async with aclosing(...)``.
        """
        while seq <= self._last_seq:
            batch = await self.read_from(seq, batch_size)
            seq += len(batch)
            for record in batch:
                yield record

    # --- Truncation ---

    async def truncate_before(self, seq: int) -> int:
        """Delete every segment whose records all precede sequence ``seq``.

        Whole segments only, and never the newest one, so some records before ``seq`` may
        stay and ``last_seq`` survives a restart.

        :return: how many segment files were deleted
        :raises WriteAheadLogError: if a segment file cannot be deleted
        """
        self._check_open()
        # Never past the synced end: a segment with records still queued must stay.
        seq = min(seq, self._last_seq + 1)
        victims: list[_Segment] = []
        while len(self._segments) > 1 and self._segments[1].first_seq <= seq:
            victims.append(self._segments.pop(0))
        if victims:
            try:
                await anyio.to_thread.run_sync(self._delete_sync, [v.path for v in victims])
            except OSError as exc:
                raise WriteAheadLogError(
                    f"cannot truncate write-ahead log {str(self.path)!r}: {exc}"
                ) from exc
        return len(victims)

    def _delete_sync(self, paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        fsync_directory(self.path)

    # --- Recovery ---

    def _recover_sync(self) -> tuple[list[_Segment], int]:
        self.path.mkdir(parents=True, exist_ok=True)
        firsts = sorted(
            int(m.group(1)) for p in self.path.iterdir() if (m := _SEGMENT_NAME.match(p.name))
        )
        segments: list[_Segment] = []
        torn = 0
        for i, first in enumerate(firsts):
            newest = i == len(firsts) - 1
            segment, cut = _scan_segment(_segment_path(self.path, first), first, newest)
            if segments and segments[-1].next_seq != first:
                raise WriteAheadLogError(
                    f"write-ahead log {str(self.path)!r} has a gap: segment "
                    f"{segment.path.name} starts at {first}, expected {segments[-1].next_seq}"
                )
            torn += cut
            segments.append(segment)
        return segments, torn

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError(f"write-ahead log {str(self.path)!r} is not open")


def _read_frame(f: BinaryIO, path: Path, offset: int) -> tuple[int, list[Any]]:
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise WriteAheadLogError(f"write-ahead log segment {str(path)!r} ends inside a frame")
    crc, length, first, count = _HEADER.unpack(header)
    payload = f.read(length)
    if len(payload) < length or zlib.crc32(payload, zlib.crc32(header[4:])) != crc:
        raise WriteAheadLogError(
            f"write-ahead log segment {str(path)!r} has a corrupt frame at byte {offset}"
        )
    kind, count = count & _KIND_MASK, count & _COUNT_MASK
    if kind != _TEXT_FRAME:
        try:
            if kind == _KIND_MASK:
                raise ValueError("its kind bits are 0b11, which no version writes")
            records = orjson.loads(payload)
            if type(records) is not list or len(records) != count:
                raise ValueError(f"it does not hold a list of {count} records")
            if kind == _CODEC_FRAME:
                records = from_json(records)
            # else a plain JSON frame of an older version: read as it was read then
        except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise WriteAheadLogError(
                f"write-ahead log segment {str(path)!r} has a frame at byte {offset} whose "
                f"records cannot be decoded: {exc}"
            ) from None
        return first, records
    try:
        lines = payload.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise WriteAheadLogError(
            f"write-ahead log segment {str(path)!r} has a text frame at byte {offset} that "
            f"is not UTF-8: {exc}"
        ) from None
    lines.pop()  # the text ends with a newline: the last piece is empty
    if len(lines) != count:
        raise WriteAheadLogError(
            f"write-ahead log segment {str(path)!r} has a text frame at byte {offset} with "
            f"{len(lines)} lines where its header says {count}"
        )
    return first, lines


def _scan_segment(path: Path, first_seq: int, newest: bool) -> tuple[_Segment, int]:
    """Index ``path``; in the newest segment verify every frame and cut a torn tail."""
    segment = _Segment(first_seq, path, next_seq=first_seq)
    with open(path, "r+b" if newest else "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        problem = ""
        while offset < size:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                problem = "an incomplete frame header"
                break
            crc, length, first, count = _HEADER.unpack(header)
            kind, count = count & _KIND_MASK, count & _COUNT_MASK
            end = offset + _HEADER.size + length
            invalid = kind == _KIND_MASK or count == 0
            if first != segment.next_seq or invalid or end > size:
                problem = f"an invalid frame header at byte {offset}"
                break
            if newest:
                payload = f.read(length)
                if zlib.crc32(payload, zlib.crc32(header[4:])) != crc:
                    problem = f"a frame with a bad checksum at byte {offset}"
                    break
            else:
                f.seek(end)
            segment.frame_seqs.append(first)
            segment.offsets.append(offset)
            segment.next_seq = first + count
            offset = end
        segment.size = offset
        if not problem:
            return segment, 0
        if not newest:
            raise WriteAheadLogError(
                f"write-ahead log segment {str(path)!r} is corrupt: it has {problem}"
            )
        # Only the newest segment can have been cut short by a crash: drop the unsynced tail.
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())
        return segment, size - offset
