"""Tests of the socket text stream source against a real TCP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from streamlet.operators.sources.base import DeliveryGuarantee, SourceReader, SourceSessionContext
from streamlet.operators.sources.socket import (
    SocketSourceError,
    SocketTextStreamSource,
    _LineSplitter,
)

pytestmark = pytest.mark.anyio

TIMEOUT_S = 10


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


class _Server:
    """A TCP server on 127.0.0.1 the test drives connection by connection."""

    def __init__(self, listener: anyio.abc.SocketListener) -> None:
        self.listener = listener
        self.port: int = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def accept(self) -> anyio.abc.SocketStream:
        with anyio.fail_after(TIMEOUT_S):
            return await self.listener.accept()


async def _listen(port: int = 0) -> anyio.abc.SocketListener:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    [listener] = multi.listeners
    assert isinstance(listener, anyio.abc.SocketListener)  # a TCP listener, typed generically
    return listener


@contextlib.asynccontextmanager
async def _server(port: int = 0) -> AsyncIterator[_Server]:
    async with await _listen(port) as listener:
        yield _Server(listener)


def _ctx(wal_dir: Path | None = None) -> SourceSessionContext:
    return SourceSessionContext(job_name="job", source_uid="socket-1", wal_dir=wal_dir)


@contextlib.asynccontextmanager
async def _reader(
    source: SocketTextStreamSource, position: Any = None
) -> AsyncIterator[SourceReader[str]]:
    [split] = source.create_splits(1)
    reader = source.create_reader(split, position)
    await reader.open()
    try:
        yield reader
    finally:
        await reader.close()


async def _read(reader: SourceReader[str], n: int, max_records: int = 100) -> list[str]:
    out: list[str] = []
    with anyio.fail_after(TIMEOUT_S):
        while len(out) < n:
            batch = await reader.read_batch(min(max_records, n - len(out)))
            assert batch, f"stream ended after {out!r}"
            out.extend(batch)
    return out


async def _drain(reader: SourceReader[str]) -> list[str]:
    out: list[str] = []
    with anyio.fail_after(TIMEOUT_S):
        while (batch := await reader.read_batch(100)) is not None:
            out.extend(batch)
    return out


async def _serve_once(server: _Server, *writes: bytes) -> None:
    async with await server.accept() as conn:
        for data in writes:
            await conn.send(data)


async def _lines_from(writes: list[bytes], **options: Any) -> list[str]:
    """Serve ``writes`` on one connection, close it, and return every line read."""
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource("127.0.0.1", server.port, **options)
        tg.start_soon(_serve_once, server, *writes)
        async with source.session(_ctx()), _reader(source) as reader:
            lines = await _drain(reader)
    return lines


# --- Line splitting over a real connection ---


async def test_source_attributes() -> None:
    source = SocketTextStreamSource("localhost", 9999)
    assert source.name == "Socket Stream"
    assert (source.bounded, source.max_parallelism) == (False, 1)
    assert source.delivery is DeliveryGuarantee.AT_MOST_ONCE
    assert source.create_splits(4) == ["localhost:9999"]
    wal = SocketTextStreamSource("localhost", 9999, write_ahead_log=True)
    assert wal.delivery is DeliveryGuarantee.EXACTLY_ONCE


async def test_lines_split_across_writes() -> None:
    writes = [b"hel", b"lo\nwor", b"ld\n", b"\n", b"again\n"]
    assert await _lines_from(writes) == ["hello", "world", "", "again"]


async def test_crlf_and_missing_final_delimiter() -> None:
    assert await _lines_from([b"a\r\nb\r", b"\nlast\r"]) == ["a", "b", "last"]


async def test_multibyte_character_split_across_writes() -> None:
    euro = "\u20ac".encode()
    writes = [b"x" + euro[:2], euro[2:] + b"\n\xf0\x9f", b"\x98\x80\n"]
    assert await _lines_from(writes) == ["x\u20ac", "\U0001f600"]


async def test_custom_multi_char_delimiter() -> None:
    writes = [b"a|", b"|b\r\n||c|", b"|tail"]
    assert await _lines_from(writes, delimiter="||") == ["a", "b\r\n", "c", "tail"]


async def test_over_long_partial_line_fails() -> None:
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource("127.0.0.1", server.port, max_line_length=8)
        tg.start_soon(_serve_once, server, b"ok\n12345", b"67890")
        async with source.session(_ctx()), _reader(source) as reader:
            assert await _read(reader, 1) == ["ok"]
            with anyio.fail_after(TIMEOUT_S), pytest.raises(SocketSourceError) as info:
                await reader.read_batch(10)
    assert str(info.value) == (
        f"line 2 of connection 1 to 127.0.0.1:{server.port} is longer than "
        f"max_line_length=8 bytes: 10 bytes without a delimiter"
    )


async def test_over_long_complete_line_fails_after_the_lines_before_it() -> None:
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource("127.0.0.1", server.port, max_line_length=4)
        tg.start_soon(_serve_once, server, b"a\nbcde\n123456\nz\n")
        async with source.session(_ctx()), _reader(source) as reader:
            assert await _read(reader, 2) == ["a", "bcde"]
            with anyio.fail_after(TIMEOUT_S), pytest.raises(SocketSourceError) as info:
                await reader.read_batch(10)
            # The error stays: a restarted attempt fails the same way.
            with pytest.raises(SocketSourceError):
                await reader.read_batch(10)
    assert "line 3 of connection 1" in str(info.value)
    assert str(info.value).endswith("max_line_length=4 bytes: 6 bytes without a delimiter")


async def test_undecodable_bytes_strict_names_line_and_offset() -> None:
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource("127.0.0.1", server.port)
        tg.start_soon(_serve_once, server, b"good\nba\xffd\nnever\n")
        async with source.session(_ctx()), _reader(source) as reader:
            assert await _read(reader, 1) == ["good"]
            with anyio.fail_after(TIMEOUT_S), pytest.raises(SocketSourceError) as info:
                await reader.read_batch(10)
    assert str(info.value) == (
        f"cannot decode line 2 of connection 1 to 127.0.0.1:{server.port} as 'utf-8' at "
        f"byte offset 7: invalid start byte (use errors='replace' to substitute U+FFFD)"
    )


async def test_undecodable_bytes_replace() -> None:
    lines = await _lines_from([b"good\nba\xffd\n\xe2\x82"], errors="replace")
    assert lines == ["good", "ba\ufffdd", "\ufffd"]


async def test_non_utf8_encoding_uses_per_line_decoding() -> None:
    lines = await _lines_from(["gr\u00fc\u00df\r\n".encode("cp1252"), b"x"], encoding="cp1252")
    assert lines == ["gr\u00fc\u00df", "x"]


# --- Connections: retries, refusal ---


async def test_reconnect_with_max_retry_then_end() -> None:
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port, max_retry=2, retry_delay_ms=1)
        async with source.session(_ctx()), _reader(source) as reader:
            await _serve_once(server, b"a\n")
            assert await _read(reader, 1) == ["a"]
            # The unfinished line is emitted when its connection closes, before reconnecting.
            await _serve_once(server, b"b\npartial")
            assert await _read(reader, 2) == ["b", "partial"]
            await _serve_once(server, b"c\n")
            # Two retries used: the third close ends the stream.
            assert await _drain(reader) == ["c"]


async def test_server_reopens_on_the_same_port() -> None:
    listener = await _listen()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    source = SocketTextStreamSource("127.0.0.1", port, max_retry=-1, retry_delay_ms=5)
    async with source.session(_ctx()), _reader(source) as reader:
        async with listener:
            await _serve_once(_Server(listener), b"before\n")
        assert await _read(reader, 1) == ["before"]
        # The server is gone: connections are refused, and the source keeps retrying.
        async with _server(port) as server:
            await _serve_once(server, b"after\n")
            assert await _read(reader, 1) == ["after"]


async def test_retries_exhausted_on_refusal_fail_the_source() -> None:
    listener = await _listen()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    source = SocketTextStreamSource("127.0.0.1", port, max_retry=1, retry_delay_ms=1)
    async with source.session(_ctx()), _reader(source) as reader:
        async with listener:
            await _serve_once(_Server(listener), b"only\n")
        # Retry 1 of 1 is refused: the lines read are delivered, then the error.
        assert await _read(reader, 1) == ["only"]
        with anyio.fail_after(TIMEOUT_S), pytest.raises(SocketSourceError) as info:
            await reader.read_batch(10)
    assert str(info.value).startswith(
        f"cannot connect to 127.0.0.1:{port} (attempt 2, max_retry=1): "
    )
    assert isinstance(info.value.__cause__, OSError)


async def test_connection_refused_without_retries() -> None:
    async with await _listen() as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    source = SocketTextStreamSource("127.0.0.1", port)
    async with source.session(_ctx()), _reader(source) as reader:
        with anyio.fail_after(TIMEOUT_S), pytest.raises(SocketSourceError, match="attempt 1"):
            await reader.read_batch(10)


# --- Failover inside the job ---


async def test_reader_replaced_mid_stream_keeps_connection_and_buffer() -> None:
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port)
        async with source.session(_ctx()):
            conn = await server.accept()
            async with conn:
                await conn.send(b"1\n2\n3\n4\n5\n")
                async with _reader(source) as first:
                    assert await _read(first, 2, max_records=2) == ["1", "2"]
                # Attempt 1 failed; lines 1 and 2 are lost (at-most-once), 3..5 are not.
                async with _reader(source, first.position()) as second:
                    assert await _read(second, 3) == ["3", "4", "5"]
                    await conn.send(b"6\n")  # the same connection is still open
                    assert await _read(second, 1) == ["6"]


@pytest.mark.parametrize(("max_buffered", "max_chars"), [(16, 1 << 30), (1 << 30, 10_000)])
async def test_backpressure_stops_reading_the_socket(max_buffered: int, max_chars: int) -> None:
    line = b"y" * 1023 + b"\n"
    total = 32 * 1024  # 32 MiB: more than the kernel buffers can hold
    chunk_lines = 256 * 1024 // len(line) + 1
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource(
            "127.0.0.1", server.port, max_buffered=max_buffered, max_buffered_chars=max_chars
        )
        sent = anyio.Event()

        async def serve() -> None:
            async with await server.accept() as conn:
                await conn.send(line * total)
            sent.set()

        tg.start_soon(serve)
        async with source.session(_ctx()), _reader(source) as reader:
            assert await _read(reader, 1) == ["y" * 1023]
            await anyio.wait_all_tasks_blocked()
            assert not sent.is_set()
            assert source._buffer is not None
            assert source._buffer.size <= min(max_buffered, max_chars // 1023 + 1) + chunk_lines
            lines = await _drain(reader)
            assert len(lines) == total - 1
            assert sent.is_set()


# --- Write-ahead log ---


async def test_wal_needs_a_checkpoint_directory() -> None:
    source = SocketTextStreamSource("127.0.0.1", 9, write_ahead_log=True)
    with pytest.raises(ValueError, match=r"^write_ahead_log needs a checkpoint directory"):
        async with source.session(_ctx(None)):
            pass


async def test_wal_replay_after_failover(tmp_path: Path) -> None:
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with source.session(_ctx(tmp_path)):
            conn = await server.accept()
            async with conn:
                await conn.send(b"l1\nl2\nl3\nl4\nl5\n")
                async with _reader(source) as first:
                    assert await _read(first, 2, max_records=2) == ["l1", "l2"]
                    checkpoint = first.position()
                    assert checkpoint == 2
                    assert await _read(first, 2, max_records=2) == ["l3", "l4"]
                # Attempt 1 failed after l4; the restore rewinds to the checkpoint.
                async with _reader(source, checkpoint) as second:
                    assert await _read(second, 3, max_records=1) == ["l3", "l4", "l5"]
                    await conn.send(b"l6\n")
                    assert await _read(second, 1) == ["l6"]
                    assert second.position() == 6
                    wal = source.wal
                    assert wal is not None
                    assert await wal.read_from(1, 10) == [f"l{i}" for i in range(1, 7)]


async def test_wal_replay_in_a_new_process_then_end(tmp_path: Path) -> None:
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with source.session(_ctx(tmp_path)):
            async with await server.accept() as conn:
                await conn.send(b"a\nb\nc\n")
                async with _reader(source) as reader:
                    assert await _read(reader, 1) == ["a"]
                    checkpoint = reader.position()
                    assert await _read(reader, 2) == ["b", "c"]
        # The process died; a new one restores from the checkpoint with a new connection.
        restored = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with anyio.create_task_group() as tg, restored.session(_ctx(tmp_path)):
            tg.start_soon(_serve_once, server, b"d\n")
            async with _reader(restored, checkpoint) as reader:
                assert await _drain(reader) == ["b", "c", "d"]


async def test_wal_fresh_start_replays_lines_no_checkpoint_covered(tmp_path: Path) -> None:
    """Lines logged before a crash that came before any checkpoint are not lost (issue 10)."""
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with source.session(_ctx(tmp_path)):
            async with await server.accept() as conn:
                await conn.send(b"a\nb\nc\n")
                async with _reader(source) as reader:
                    assert await _read(reader, 3) == ["a", "b", "c"]
                    await reader.notify_checkpoint_complete(1, 1)
        # The process died; the next one restores no checkpoint (none was found, say).
        fresh = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with anyio.create_task_group() as tg, fresh.session(_ctx(tmp_path)):
            tg.start_soon(_serve_once, server, b"d\n")
            async with _reader(fresh) as reader:
                assert await _drain(reader) == ["b", "c", "d"]


async def test_wal_truncation_on_checkpoint_complete(tmp_path: Path) -> None:
    async with _server() as server:
        source = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        async with source.session(_ctx(tmp_path)):
            wal = source.wal
            assert wal is not None
            wal.segment_bytes = 32
            async with await server.accept() as conn, _reader(source) as reader:
                for i in range(6):
                    await conn.send(f"line number {i}\n".encode())
                    assert await _read(reader, 1) == [f"line number {i}"]
                assert len(list(wal.path.glob("*.wal"))) == 6
                await reader.notify_checkpoint_complete(7, reader.position())
                assert len(list(wal.path.glob("*.wal"))) == 1
                assert wal.first_seq == 6


# --- Splitting, chunk by chunk ---


@pytest.mark.parametrize(
    ("delimiter", "data", "expected"),
    [
        ("\n", "a\r\n\u20acb\n\n\U0001f600\r\nend", ["a", "\u20acb", "", "\U0001f600", "end"]),
        ("||", "x||\u00e9|y|||z", ["x", "\u00e9|y", "|z"]),
        ("\u00a7", "one\u00a7two\u00a7", ["one", "two"]),
    ],
)
def test_splitter_every_chunking(delimiter: str, data: str, expected: list[str]) -> None:
    source = SocketTextStreamSource("h", 1, delimiter)
    raw = data.encode()
    for cut1, cut2 in itertools.combinations(range(len(raw) + 1), 2):
        splitter = _LineSplitter(source, 1)
        lines: list[str] = []
        for chunk in (raw[:cut1], raw[cut1:cut2], raw[cut2:]):
            got, error = splitter.feed(chunk)
            assert error is None
            _check_text(splitter, got)
            lines += got
        got, error = splitter.finish()
        assert error is None
        _check_text(splitter, got)
        assert lines + got == expected, (cut1, cut2)


def _split_every_way(
    source: SocketTextStreamSource, raw: bytes
) -> list[tuple[list[str], SocketSourceError | None]]:
    """Feed ``raw`` cut in three pieces every way; per chunking the lines and first error."""
    outcomes = []
    for cut1, cut2 in itertools.combinations(range(len(raw) + 1), 2):
        splitter = _LineSplitter(source, 1)
        lines: list[str] = []
        error = None
        for chunk in (raw[:cut1], raw[cut1:cut2], raw[cut2:]):
            got, error = splitter.feed(chunk)
            lines += got
            if error is not None:
                break
        else:
            got, error = splitter.finish()
            lines += got
        outcomes.append((lines, error))
    return outcomes


@pytest.mark.parametrize(
    ("delimiter", "ending"),
    [("\n", b"\n"), ("\n", b"\r\n"), ("\r\n", b"\r\n"), ("<END>", b"<END>")],
)
def test_max_line_length_excludes_the_delimiter_however_the_bytes_arrive(
    delimiter: str, ending: bytes
) -> None:
    # The limit counts line bytes only: not a delimiter split across reads, nor the "\r"
    # of CRLF input that the "\n" delimiter drops.
    source = SocketTextStreamSource("h", 1, delimiter, max_line_length=10)
    exact = b"0123456789" + ending
    for lines, error in _split_every_way(source, exact + exact):
        assert (lines, error) == (["0123456789", "0123456789"], None)
    # One byte more is refused, however it arrives, and the message counts line bytes.
    for lines, error in _split_every_way(source, b"ok" + ending + b"0123456789X" + ending):
        assert lines == ["ok"]
        assert error is not None
        assert str(error).endswith("max_line_length=10 bytes: 11 bytes without a delimiter")


async def test_max_line_length_over_a_connection_excludes_the_delimiter() -> None:
    # The splitter test above covers every chunking; this one goes through the session.
    writes = [b"0123456789\r", b"\n0123456789\r\n"]
    for delimiter in ("\r\n", "\n"):
        lines = await _lines_from(writes, delimiter=delimiter, max_line_length=10)
        assert lines == ["0123456789", "0123456789"]


def _check_text(splitter: _LineSplitter, lines: list[str]) -> None:
    """When the splitter offers the received bytes as the lines' text, they must be it."""
    if splitter.text is not None:
        assert splitter.text == "".join(f"{line}\n" for line in lines).encode()


@pytest.mark.parametrize(
    ("options", "data", "verbatim"),
    [
        ({}, b"plain\n\xe2\x82\xac\n\n", True),
        ({"encoding": "ascii"}, b"a\nb\n", True),
        ({"errors": "replace"}, b"ok\n", True),
        ({}, b"a\r\nb\n", False),  # the \r is dropped from the line
        ({"errors": "replace"}, b"bad \xff\n", False),  # U+FFFD is not what was received
        ({"encoding": "latin-1"}, b"caf\xe9\n", False),  # not UTF-8
        ({"delimiter": "||"}, b"a||b||", False),
    ],
)
def test_splitter_offers_the_received_bytes_only_when_they_are_the_lines_text(
    options: dict[str, Any], data: bytes, verbatim: bool
) -> None:
    splitter = _LineSplitter(SocketTextStreamSource("h", 1, **options), 1)
    lines, error = splitter.feed(data)
    assert error is None and lines
    assert splitter.text == (data if verbatim else None)
    _check_text(splitter, lines)
    assert splitter.feed(b"partial") == ([], None)
    assert splitter.text is None


async def test_wal_logs_lines_received_as_text_or_not_and_replays_them_all(
    tmp_path: Path,
) -> None:
    writes = [b"one\ntwo\n", b"cr\r\nlf\n", "\u20ac\n".encode(), b"last"]
    lines = ["one", "two", "cr", "lf", "\u20ac", "last"]
    async with _server() as server, anyio.create_task_group() as tg:
        source = SocketTextStreamSource("127.0.0.1", server.port, write_ahead_log=True)
        tg.start_soon(_serve_once, server, *writes)
        async with source.session(_ctx(tmp_path)), _reader(source) as reader:
            assert await _drain(reader) == lines
            wal = source.wal
            assert wal is not None
            assert await wal.read_from(1, 100) == lines
            assert await wal.read_from(4, 2) == ["lf", "\u20ac"]


def test_argument_errors() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"port": 70000}, r"^port must be in 0\.\.65535, got 70000$"),
        ({"port": -1}, r"^port must be in 0\.\.65535, got -1$"),
        ({"host": ""}, r"^host must be a non-empty string, got ''$"),
        ({"delimiter": ""}, r"^delimiter must be a non-empty string, got ''$"),
        ({"max_retry": -2}, r"^max_retry must be >= -1, got -2$"),
        ({"retry_delay_ms": -1}, r"^retry_delay_ms must be >= 0, got -1$"),
        ({"max_line_length": 0}, r"^max_line_length must be >= 1, got 0$"),
        ({"errors": "ignore"}, r"^errors must be 'strict' or 'replace', got 'ignore'$"),
        ({"max_buffered": 0}, r"^max_buffered must be >= 1, got 0$"),
        ({"encoding": "nope"}, r"^encoding must be a known text encoding, got 'nope'$"),
        ({"encoding": "utf-16"}, r"^encoding must be ASCII-compatible, got 'utf-16'$"),
        (
            {"encoding": "ascii", "delimiter": "\u00a7"},
            r"^delimiter '\u00a7' cannot be encoded as 'ascii'$",
        ),
    ]
    for overrides, message in cases:
        kwargs: dict[str, Any] = {"host": "localhost", "port": 9999, **overrides}
        with pytest.raises(ValueError, match=message):
            SocketTextStreamSource(**kwargs)


async def test_job_delivers_the_lines_before_an_undecodable_one_then_fails() -> None:
    from streamlet import JobExecutionError, StreamExecutionEnvironment

    got: list[str] = []

    async def enrich(line: str) -> str:  # an awaiting step after the source
        await anyio.sleep(0)
        return line

    async with _server() as server, anyio.create_task_group() as tg:
        tg.start_soon(_serve_once, server, b"line0\nline1\n\xff\xfebad\nline3\n")
        env = StreamExecutionEnvironment.get_execution_environment()
        env.socket_text_stream("127.0.0.1", server.port).map(enrich).add_sink(got.append)
        with anyio.fail_after(TIMEOUT_S), pytest.raises(JobExecutionError) as info:
            await env.execute("socket")
    assert got == ["line0", "line1"]
    assert isinstance(info.value.__cause__, SocketSourceError)
    assert "cannot decode line 3" in str(info.value.__cause__)
