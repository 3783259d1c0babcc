"""Flink's ``socketTextStream``: lines read from a TCP server, as a client.

The connection belongs to the source's *session*, which lasts for the whole job across
restarts, not to a reader, which lasts for one attempt. A task of the session connects,
reads, cuts the bytes into lines and puts them into an
:class:`~streamlet.operators.sources.push.IngressBuffer`; the attempt's reader takes them from
there. So a failure inside the job neither drops the connection nor loses a line still buffered,
and a full buffer stops the reading, which the server feels as TCP backpressure.

Lines are cut on the delimiter's *bytes* and each run of whole lines is decoded at once, so
a multi-byte character split across two reads is never a problem. For the encodings where
cutting decoded text gives the same lines (UTF-8, ASCII, Latin-1) a whole chunk is decoded
with one call and split as text, which is what makes this fast.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc

from streamlet.state.errors import StreamletError

from .base import DeliveryGuarantee, Source, SourceReader, SourceSessionContext
from .ingress import IngressBuffer, IngressReader, open_ingress_wal
from .wal import WriteAheadLog

__all__ = [
    "SocketSourceError",
    "SocketTextStreamSource",
]

_RECEIVE_BYTES = 256 * 1024
# Encodings whose decoded text splits on the delimiter exactly where the bytes do.
_TEXT_SPLIT_CODECS = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1"})


class SocketSourceError(StreamletError):
    """The socket source cannot go on: no connection, an over-long line, undecodable bytes."""


class _LineSplitter:
    """Cut one connection's bytes into decoded lines.

    ``feed`` and ``finish`` return ``(lines, error)``: the lines complete before a bad one
    are still delivered, then the error ends the stream. After each call, :attr:`text` is
    the received bytes of those lines when they are exactly their UTF-8 text with a
    ``"\n"`` after each (UTF-8 or ASCII input, ``"\n"`` delimiters, no ``"\r"``, nothing
    replaced), else None: the write-ahead log then stores those bytes as they are.
    """

    def __init__(self, source: SocketTextStreamSource, connection: int) -> None:
        self._delimiter = delimiter = source.delimiter.encode(source.encoding)
        self._overlapping = any(delimiter[:k] == delimiter[-k:] for k in range(1, len(delimiter)))
        self._text_delimiter = source.delimiter
        self._strip_cr = strip_cr = source.delimiter == "\n"
        # The bytes that end a line: a "\r" before a "\n" delimiter is dropped with it, so
        # neither counts against max_line_length.
        self._ending = b"\r" + delimiter if strip_cr else delimiter
        self._max = source.max_line_length
        self._encoding = source.encoding
        self._errors = source.errors
        codec = codecs.lookup(source.encoding).name
        self._text_split = codec in _TEXT_SPLIT_CODECS
        self._verbatim = codec in ("utf-8", "ascii") and source.delimiter == "\n"
        self.text: bytes | None = None
        self._where = f"{source.host}:{source.port}"
        self._connection = connection
        self._buffer = bytearray()
        self._offset = 0  # stream offset of _buffer[0]
        self._lines = 0  # lines completed on this connection

    def feed(self, chunk: bytes) -> tuple[list[str], SocketSourceError | None]:
        """Take the next bytes; return the lines they complete."""
        self.text = None
        buffer = self._buffer
        if buffer:
            search_from = max(0, len(buffer) - len(self._delimiter) + 1)
            buffer += chunk
            end = self._cut(buffer, search_from)
            if not end:
                return [], self._check_partial()
            region = bytes(buffer[:end])
            del buffer[:end]
        else:
            end = self._cut(chunk, 0)
            if not end:
                buffer += chunk
                return [], self._check_partial()
            region = chunk[:end] if end < len(chunk) else chunk
            buffer += chunk[end:]
        lines, error = self._decode(region)
        return lines, error or self._check_partial()

    def _cut(self, data: bytes | bytearray, search_from: int) -> int:
        """Return where the whole lines in ``data`` end (0: none), scanning left to right.

        For a delimiter that can overlap itself (``"||"`` in ``"|||"``) the last occurrence
        is not always where a left-to-right split cuts, so split instead.
        """
        if self._overlapping:
            return len(data) - len(data.split(self._delimiter)[-1])
        found = data.rfind(self._delimiter, search_from)
        return found + len(self._delimiter) if found >= 0 else 0

    def finish(self) -> tuple[list[str], SocketSourceError | None]:
        """The server closed the connection: the bytes after the last delimiter are a line."""
        self.text = None
        if not self._buffer:
            return [], None
        data = bytes(self._buffer)
        self._buffer.clear()
        lines, error = self._decode(data + self._delimiter)
        return lines, error

    def _check_partial(self) -> SocketSourceError | None:
        buffer = self._buffer
        if len(buffer) <= self._max:
            return None
        # The unfinished line may end with the start of its line ending (a delimiter split
        # across reads, or the "\r" of a CRLF): those bytes are not line bytes yet.
        ending = self._ending
        length = len(buffer)
        for k in range(len(ending) - 1, 0, -1):
            if buffer.endswith(ending[:k]):
                length -= k
                break
        if length > self._max:
            return self._too_long(length, self._lines + 1)
        return None

    def _too_long(self, seen: int, line: int) -> SocketSourceError:
        return SocketSourceError(
            f"line {line} of connection {self._connection} to {self._where} is longer than "
            f"max_line_length={self._max} bytes: {seen} bytes without a delimiter"
        )

    def _decode(self, region: bytes) -> tuple[list[str], SocketSourceError | None]:
        """Decode ``region`` (whole lines, ending with the delimiter) into lines."""
        delimiter = self._delimiter
        base = self._offset
        self._offset += len(region)
        if len(region) > self._max + len(delimiter):
            # Rare: only a long region can hold an over-long line; find the first one.
            parts = region.split(delimiter)[:-1]
            strip_cr = self._strip_cr
            for i, part in enumerate(parts):
                length = len(part) - 1 if strip_cr and part.endswith(b"\r") else len(part)
                if length > self._max:
                    good = delimiter.join(parts[:i]) + delimiter if i else b""
                    lines, error = self._decode_lines(good, base) if good else ([], None)
                    return lines, error or self._too_long(length, self._lines + 1)
        return self._decode_lines(region, base)

    def _decode_lines(self, region: bytes, base: int) -> tuple[list[str], SocketSourceError | None]:
        delimiter = self._delimiter
        if self._text_split:
            try:
                text = region.decode(self._encoding, self._errors)
            except UnicodeDecodeError as exc:
                return self._decode_failed(region, base, exc)
            if self._strip_cr and "\r" in text:
                text = text.replace("\r\n", "\n")
            elif self._verbatim and (self._errors == "strict" or "\ufffd" not in text):
                self.text = region
            lines = text.split(self._text_delimiter)
            lines.pop()  # the region ends with the delimiter: the last piece is empty
        else:
            lines = []
            start = 0
            for part in region.split(delimiter)[:-1]:
                raw = part[:-1] if self._strip_cr and part.endswith(b"\r") else part
                try:
                    lines.append(raw.decode(self._encoding, self._errors))
                except UnicodeDecodeError as exc:
                    exc.start += start
                    error = self._decode_error(region, base, exc)
                    self._lines += len(lines)
                    return lines, error
                start += len(part) + len(delimiter)
        self._lines += len(lines)
        return lines, None

    def _decode_failed(
        self, region: bytes, base: int, exc: UnicodeDecodeError
    ) -> tuple[list[str], SocketSourceError]:
        # Deliver the whole lines before the bad one, then fail.
        good_end = self._cut(region[: exc.start], 0)
        error = self._decode_error(region, base, exc)
        if not good_end:
            return [], error
        lines, _ = self._decode_lines(region[:good_end], base)
        return lines, error

    def _decode_error(self, region: bytes, base: int, exc: UnicodeDecodeError) -> SocketSourceError:
        line = self._lines + region.count(self._delimiter, 0, exc.start) + 1
        return SocketSourceError(
            f"cannot decode line {line} of connection {self._connection} to {self._where} "
            f"as {self._encoding!r} at byte offset {base + exc.start}: {exc.reason} "
            f"(use errors='replace' to substitute U+FFFD)"
        )


class SocketTextStreamSource(Source[str]):
    """Read lines of text from a TCP server (Flink's ``socketTextStream``).

    Connects as a client to ``host:port`` when the job starts and emits one record per line.
    Non-parallel and unbounded: the stream ends when the server closes the connection and
    no retries are left.

    Lines: cut at ``delimiter`` (any non-empty string); with the default ``"\\n"`` a
    trailing ``"\\r"`` is removed as well, so ``"\\r\\n"`` line endings work. When the
    server closes the connection, the bytes after the last delimiter are emitted as a last
    line; this also happens before a reconnect (Flink instead glues them to the next
    connection's first line), because a closed connection ends what was written on it. A
    connection that breaks (reset) drops its unfinished line. A line longer than
    ``max_line_length`` bytes fails the job (:class:`SocketSourceError` naming the server,
    the limit and the length seen), so memory stays bounded. Bytes that do not decode fail
    the job naming the server, the line and the byte offset when ``errors="strict"``; with
    ``errors="replace"`` they become U+FFFD.

    Reconnects (Flink's ``maxNumRetries`` and ``delayBetweenRetries``): after the
    connection closes or fails to connect, try again up to ``max_retry`` times in total,
    ``retry_delay_ms`` apart; ``-1`` retries forever, ``0`` ends with the first connection.
    If the last attempt could not even connect, the job fails with
    :class:`SocketSourceError`; otherwise the stream just ends.

    Guarantee: at-most-once. The connection and the line buffer (up to ``max_buffered``
    lines or ``max_buffered_chars`` characters, plus at most one received chunk of 256 KiB)
    live in the session; when the buffer is full the source stops reading, so the server
    feels TCP backpressure: a failover inside the job keeps
    the connection, lines still buffered go to the next attempt, and lines already handed
    to the failed attempt are lost. With ``write_ahead_log=True`` (the job needs a
    checkpoint directory) it is exactly-once: every line is logged and synced before the
    job sees it (group commit: the lines received while the previous sync ran share the
    next ``fdatasync``), and replayed after a restore.

    RESUME CONTRACT: with the write-ahead log, :meth:`SourceReader.position` is the log
    sequence number of the last line returned; a reader restored at ``p`` replays lines
    ``p + 1 ...`` from the log and then continues with new input, and a completed
    checkpoint truncates the log up to its position. A start without a restored checkpoint
    (position None) replays the lines logged after the last completed checkpoint (all of
    them if none completed), so lines an earlier process logged but never checkpointed are
    not lost; see :class:`~streamlet.operators.sources.ingress.IngressReader`. Without the log the
    position is None: nothing can be rewound.

    :param host: server host name or address
    :param port: server port, 0..65535
    :param delimiter: the line delimiter, a non-empty string
    :param max_retry: reconnect attempts after a close or a failed connect; -1 = forever
    :param retry_delay_ms: wait between attempts, in milliseconds (Flink: 500)
    :param max_line_length: longest accepted line, in bytes, delimiter excluded
    :param encoding: an ASCII-compatible text encoding
    :param errors: ``"strict"`` or ``"replace"``: what undecodable bytes do
    :param write_ahead_log: log lines before the job sees them (exactly-once)
    :param max_buffered: lines buffered before the source stops reading the socket. With
        the write-ahead log, lines wait in the buffer for the sync that covers them (a few
        milliseconds), so it must hold about two rounds of input: at 65,536 lines a fast
        socket kept stalling on it, losing a third of the throughput
    :param max_buffered_chars: characters buffered before the source stops reading it
    :raises ValueError: if a parameter is out of range (the message names it and the value)
    """

    name = "Socket Stream"
    max_parallelism = 1
    bounded = False

    def __init__(
        self,
        host: str,
        port: int,
        delimiter: str = "\n",
        max_retry: int = 0,
        *,
        retry_delay_ms: int = 500,
        max_line_length: int = 1_048_576,
        encoding: str = "utf-8",
        errors: str = "strict",
        write_ahead_log: bool = False,
        max_buffered: int = 262_144,
        max_buffered_chars: int = 16 * 1024 * 1024,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port!r}")
        if not isinstance(delimiter, str) or not delimiter:
            raise ValueError(f"delimiter must be a non-empty string, got {delimiter!r}")
        if not isinstance(max_retry, int) or max_retry < -1:
            raise ValueError(f"max_retry must be >= -1, got {max_retry!r}")
        if retry_delay_ms < 0:
            raise ValueError(f"retry_delay_ms must be >= 0, got {retry_delay_ms!r}")
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be >= 1, got {max_line_length!r}")
        if errors not in ("strict", "replace"):
            raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered!r}")
        if max_buffered_chars < 1:
            raise ValueError(f"max_buffered_chars must be >= 1, got {max_buffered_chars!r}")
        _check_encoding(encoding, delimiter)
        self.host = host
        self.port = port
        self.delimiter = delimiter
        self.max_retry = max_retry
        self.retry_delay_ms = retry_delay_ms
        self.max_line_length = max_line_length
        self.encoding = encoding
        self.errors = errors
        self.write_ahead_log = write_ahead_log
        self.max_buffered = max_buffered
        self.max_buffered_chars = max_buffered_chars
        self.delivery = (
            DeliveryGuarantee.EXACTLY_ONCE if write_ahead_log else DeliveryGuarantee.AT_MOST_ONCE
        )
        self._buffer: IngressBuffer[str] | None = None

    def __repr__(self) -> str:
        return (
            f"SocketTextStreamSource({self.host!r}, {self.port}, {self.delimiter!r}, "
            f"max_retry={self.max_retry}, write_ahead_log={self.write_ahead_log})"
        )

    # --- Source contract ---

    def create_splits(self, parallelism: int) -> list[Any]:
        """One split: one connection."""
        return [f"{self.host}:{self.port}"]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[str]:
        """Return a reader of the session's line buffer, resuming after ``position``."""
        return IngressReader(lambda: self._buffer, position)

    @contextlib.asynccontextmanager
    async def session(self, ctx: SourceSessionContext) -> AsyncIterator[None]:
        """Own the connection for the whole job: connect, read and buffer lines.

        Errors of the connection (refused after the last retry, over-long line,
        undecodable bytes) do not escape here; they surface from the reader's
        ``read_batch`` so the job fails naming this source.

        :raises ValueError: if ``write_ahead_log`` is on and the job has no checkpoint
            directory
        :raises RuntimeError: if a session of this source is already running
        """
        if self._buffer is not None:
            raise RuntimeError(f"{self!r} already has a running session (one job at a time)")
        wal = await open_ingress_wal(ctx, self.name) if self.write_ahead_log else None
        buffer: IngressBuffer[str] = IngressBuffer(
            self.max_buffered,
            description=f"source {self.name!r} ({self.host}:{self.port})",
            write_ahead_log=self.write_ahead_log,
            max_buffered_chars=self.max_buffered_chars,
        )
        try:
            buffer.start(wal)
            self._buffer = buffer
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._run, buffer)
                if wal is not None:
                    tg.start_soon(buffer.run_committer)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._buffer = None
            buffer.stop()
            if wal is not None:
                with anyio.CancelScope(shield=True):
                    await wal.close()

    # --- The connection task ---

    async def _run(self, buffer: IngressBuffer[str]) -> None:
        try:
            await self._connect_and_read(buffer)
        except Exception as exc:
            buffer.fail(exc)
        else:
            buffer.end()

    async def _connect_and_read(self, buffer: IngressBuffer[str]) -> None:
        retries = 0
        connection = 0
        while True:
            connection += 1
            refused: OSError | None = None
            try:
                stream = await anyio.connect_tcp(self.host, self.port)
            except OSError as exc:
                refused = exc
            else:
                async with stream:
                    await self._read_connection(stream, buffer, connection)
            if self.max_retry != -1 and retries >= self.max_retry:
                break
            retries += 1
            await anyio.sleep(self.retry_delay_ms / 1000)
        if refused is not None:
            raise SocketSourceError(
                f"cannot connect to {self.host}:{self.port} "
                f"(attempt {connection}, max_retry={self.max_retry}): {refused}"
            ) from refused

    async def _read_connection(
        self, stream: anyio.abc.ByteReceiveStream, buffer: IngressBuffer[str], connection: int
    ) -> None:
        splitter = _LineSplitter(self, connection)
        closed = False
        while not closed:
            try:
                chunk = await stream.receive(_RECEIVE_BYTES)
            except anyio.EndOfStream:
                closed = True
                lines, error = splitter.finish()
            except (anyio.BrokenResourceError, OSError):
                return  # a broken connection: its unfinished line is incomplete, drop it
            else:
                lines, error = splitter.feed(chunk)
            if lines:
                await buffer.put_chunk(lines, splitter.text)
            if error is not None:
                raise error

    @property
    def wal(self) -> WriteAheadLog | None:
        """The running session's write-ahead log, if any (for inspection and tests)."""
        return self._buffer.wal if self._buffer is not None else None


def _check_encoding(encoding: str, delimiter: str) -> None:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"encoding must be a known text encoding, got {encoding!r}") from None
    if "\n".encode(info.name) != b"\n" or "A".encode(info.name) != b"A":
        raise ValueError(f"encoding must be ASCII-compatible, got {encoding!r}")
    try:
        delimiter.encode(info.name)
    except UnicodeEncodeError:
        raise ValueError(f"delimiter {delimiter!r} cannot be encoded as {encoding!r}") from None
