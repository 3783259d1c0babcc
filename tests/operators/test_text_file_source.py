"""Tests of the text file source: lines, byte-offset positions, restore, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlet.operators.sources import text_file
from streamlet.operators.sources.base import DeliveryGuarantee
from streamlet.operators.sources.text_file import TextFileSource

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


async def _read_all(
    source: TextFileSource, position: Any = None, max_records: int = 1000
) -> tuple[list[str], Any]:
    [split] = source.create_splits(1)
    reader = source.create_reader(split, position)
    await reader.open()
    try:
        out: list[str] = []
        while (batch := await reader.read_batch(max_records)) is not None:
            assert batch
            out.extend(batch)
        return out, reader.position()
    finally:
        await reader.close()


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    return path


async def test_source_attributes(tmp_path: Path) -> None:
    source = TextFileSource(tmp_path / "x.txt")
    assert source.name == "Text File Source"
    assert source.bounded is True
    assert source.max_parallelism == 1
    assert source.delivery is DeliveryGuarantee.EXACTLY_ONCE
    assert source.create_splits(4) == [str(tmp_path / "x.txt")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"\n", [""]),
        (b"a\nb\n", ["a", "b"]),
        (b"a\nb", ["a", "b"]),
        (b"a\r\nb\r\nc", ["a", "b", "c"]),
        (b"a\n\nb\n", ["a", "", "b"]),
        (b"x\ry\n", ["x\ry"]),
        ("h\u00e9llo\nw\u20acrld\n".encode(), ["h\u00e9llo", "w\u20acrld"]),
    ],
)
async def test_lines(tmp_path: Path, data: bytes, expected: list[str]) -> None:
    source = TextFileSource(_write(tmp_path, data))
    lines, position = await _read_all(source)
    assert lines == expected
    assert position == len(data)


async def test_small_batches_and_positions(tmp_path: Path) -> None:
    data = b"one\r\ntwo\nthree\nfour"
    source = TextFileSource(_write(tmp_path, data))
    reader = source.create_reader(source.create_splits(1)[0], None)
    await reader.open()
    try:
        assert reader.position() == 0
        assert await reader.read_batch(1) == ["one"]
        assert reader.position() == 5
        assert await reader.read_batch(2) == ["two", "three"]
        assert reader.position() == 15
        assert await reader.read_batch(2) == ["four"]
        assert reader.position() == len(data)
        assert await reader.read_batch(2) is None
    finally:
        await reader.close()


async def test_restore_from_position_continues_exactly(tmp_path: Path) -> None:
    expected = [f"line {i} \u00e4\u20ac" for i in range(5000)]
    source = TextFileSource(_write(tmp_path, ("\n".join(expected) + "\n").encode()))
    [split] = source.create_splits(1)
    reader = source.create_reader(split, None)
    await reader.open()
    try:
        first = (await reader.read_batch(1234)) or []
        first += (await reader.read_batch(7)) or []
        checkpoint = reader.position()
        await reader.read_batch(100)  # read past the checkpoint, then "fail"
    finally:
        await reader.close()
    rest, _ = await _read_all(source, checkpoint, max_records=333)
    assert first + rest == expected


async def test_multibyte_characters_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_file, "_CHUNK_BYTES", 5)
    expected = ["\u20ac\u20ac\u20ac", "\U0001f600x", "", "ab\u00e9cd\u00e9"]
    data = "\r\n".join(expected).encode()
    lines, position = await _read_all(TextFileSource(_write(tmp_path, data)), max_records=2)
    assert lines == expected
    assert position == len(data)


async def test_long_line_longer_than_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_file, "_CHUNK_BYTES", 7)
    expected = ["short", "x" * 100, "y"]
    lines, _ = await _read_all(TextFileSource(_write(tmp_path, "\n".join(expected).encode())))
    assert lines == expected


async def test_missing_file_fails_at_open(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    source = TextFileSource(path)
    reader = source.create_reader(source.create_splits(1)[0], None)
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*nope\.txt'$") as info:
        await reader.open()
    assert info.value.filename == str(path)
    await reader.close()


async def test_position_past_end_of_file(tmp_path: Path) -> None:
    source = TextFileSource(_write(tmp_path, b"abc\n"))
    reader = source.create_reader(source.create_splits(1)[0], 10)
    with pytest.raises(ValueError, match=r"^position 10 is past the end of '.*' \(4 bytes\)"):
        await reader.open()
    await reader.close()


async def test_undecodable_bytes_name_the_offset(tmp_path: Path) -> None:
    source = TextFileSource(_write(tmp_path, b"ok\nbad \xff here\n"))
    reader = source.create_reader(source.create_splits(1)[0], None)
    await reader.open()
    try:
        assert await reader.read_batch(1) == ["ok"]
        with pytest.raises(ValueError, match=r"as 'utf-8' at byte offset 7: invalid start byte$"):
            await reader.read_batch(10)
    finally:
        await reader.close()


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^encoding must be a known text encoding, got 'nope'$"):
        TextFileSource(tmp_path, encoding="nope")
    with pytest.raises(ValueError, match=r"^encoding must be ASCII-compatible, got 'utf-16'$"):
        TextFileSource(tmp_path, encoding="utf-16")
    source = TextFileSource(tmp_path / "f")
    with pytest.raises(ValueError, match=r"must be a byte offset >= 0, got -1$"):
        source.create_reader(str(tmp_path / "f"), -1)
