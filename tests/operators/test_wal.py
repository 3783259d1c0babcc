"""Tests of the ingress write-ahead log: append, replay, truncation, crash recovery."""

from __future__ import annotations

import contextlib
import enum
import math
import struct
from pathlib import Path

import anyio
import orjson
import pytest

from streamlet.operators.sources.wal import WriteAheadLog, WriteAheadLogError, encode_records

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _segments(wal: WriteAheadLog) -> list[str]:
    return sorted(p.name for p in wal.path.iterdir())


async def test_append_batch_numbers_records_from_one(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert (wal.first_seq, wal.last_seq) == (1, 0)
        assert await wal.append_batch(["a", "b", "c"]) == 3
        assert await wal.append_batch([]) == 3
        assert await wal.append_batch([{"k": 1}, [1, 2]]) == 5
        assert await wal.read_from(1, 100) == ["a", "b", "c", {"k": 1}, [1, 2]]
        assert await wal.read_from(2, 2) == ["b", "c"]
        assert await wal.read_from(4, 1) == [{"k": 1}]
        assert await wal.read_from(6, 10) == []


async def test_sequence_numbers_survive_reopen(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        await wal.append_batch(["a", "b"])
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.last_seq == 2
        assert await wal.append_batch(["c"]) == 3
        assert await wal.read_from(1, 10) == ["a", "b", "c"]
        assert wal.torn_tail_bytes == 0


async def test_frames_split_large_batches(tmp_path: Path) -> None:
    records = [f"line {i}" for i in range(2500)]
    async with WriteAheadLog(tmp_path, "src", max_frame_records=1000) as wal:
        assert await wal.append_batch(records) == 2500
        assert await wal.read_from(999, 3) == ["line 998", "line 999", "line 1000"]
        assert await wal.read_from(1, 5000) == records


async def test_segments_roll_over_and_truncate_whole_segments(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src", segment_bytes=100) as wal:
        for i in range(5):
            await wal.append_batch([f"{i}-{'x' * 90}", f"{i}-y"])
        assert len(_segments(wal)) == 5
        assert _segments(wal)[1] == f"{3:020d}.wal"
        # Record 4 lives in the second segment: only the first one can go.
        assert await wal.truncate_before(4) == 1
        assert wal.first_seq == 3
        assert await wal.read_from(3, 2) == [f"1-{'x' * 90}", "1-y"]
        with pytest.raises(WriteAheadLogError, match=r"record 2 of write-ahead log .* truncated"):
            await wal.read_from(2, 1)
        # Truncating past the end keeps the newest segment, so last_seq survives.
        assert await wal.truncate_before(1000) == 3
        assert _segments(wal) == [f"{9:020d}.wal"]
    async with WriteAheadLog(tmp_path, "src", segment_bytes=100) as wal:
        assert (wal.first_seq, wal.last_seq) == (9, 10)
        assert await wal.append_batch(["z"]) == 11


def _frame_counts(segment: Path) -> list[int]:
    """The record-count field of every frame of ``segment``, flags included."""
    data = segment.read_bytes()
    counts, offset = [], 0
    while offset < len(data):
        _crc, length, _first, count = struct.unpack_from("<IIQI", data, offset)
        counts.append(count)
        offset += 20 + length
    return counts


async def test_text_frames_hold_lines_as_received_and_mix_with_json_frames(
    tmp_path: Path,
) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        wal.write(["a", "\u20ac", ""], text="a\n\u20ac\n\n".encode())
        wal.write(["x\r", {"k": 1}])
        wal.write(["last"], text=b"last\n")
        assert await wal.sync() == 6
        expected = ["a", "\u20ac", "", "x\r", {"k": 1}, "last"]
        assert await wal.read_from(1, 10) == expected
        assert await wal.read_from(2, 4) == expected[1:5]
        [segment] = _segments(wal)
        text, codec = 0x8000_0000, 0x4000_0000
        assert _frame_counts(wal.path / segment) == [3 | text, 2 | codec, 1 | text]
    async with WriteAheadLog(tmp_path, "src") as wal:  # the scan on open knows text frames
        assert (wal.last_seq, wal.torn_tail_bytes) == (6, 0)
        assert await wal.append_batch(["next"]) == 7
        assert await wal.read_from(5, 10) == [{"k": 1}, "last", "next"]


async def test_text_must_end_with_a_newline_and_agree_with_its_header(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        with pytest.raises(ValueError, match=r"^text must end with a newline"):
            wal.write(["a"], text=b"a")
        assert wal.written_seq == 0
        # A writer that lied about its text (two lines for three records) is caught on read.
        wal.write(["a", "b", "c"], text=b"a\nb\n")
        await wal.sync()
        with pytest.raises(WriteAheadLogError, match=r"with 2 lines where its header says 3$"):
            await wal.read_from(1, 3)


async def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        await wal.append_batch(["a", "b"])
        await wal.append_batch(["c"])
        segment = wal.path / _segments(wal)[0]
    intact = segment.stat().st_size
    # A crash in the middle of the next batch's write leaves half a frame behind.
    payload = orjson.dumps(["d", "e"])
    with open(segment, "ab") as f:
        f.write(struct.pack("<IIQI", 0, len(payload), 4, 2) + payload[:3])
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.torn_tail_bytes == 20 + 3
        assert segment.stat().st_size == intact
        assert wal.last_seq == 3
        assert await wal.append_batch(["d"]) == 4
        assert await wal.read_from(1, 10) == ["a", "b", "c", "d"]


async def test_corrupt_tail_frame_is_cut_on_open(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        await wal.append_batch(["a"])
        await wal.append_batch(["b"])
        segment = wal.path / _segments(wal)[0]
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # flip a payload byte of the last frame: its crc no longer matches
    segment.write_bytes(bytes(data))
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.last_seq == 1
        assert wal.torn_tail_bytes > 0
        assert await wal.read_from(1, 10) == ["a"]


async def test_corruption_in_an_old_segment_is_an_error(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src", segment_bytes=10) as wal:
        await wal.append_batch(["a" * 20])
        await wal.append_batch(["b" * 20])
        first = wal.path / _segments(wal)[0]
    with open(first, "r+b") as f:
        f.truncate(25)  # the header is whole, the payload is cut
    with pytest.raises(WriteAheadLogError, match=r"is corrupt: it has an invalid frame header"):
        await WriteAheadLog(tmp_path, "src", segment_bytes=10).open()


async def test_corrupt_frame_detected_on_read(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src", segment_bytes=10) as wal:
        await wal.append_batch(["a" * 20])
        await wal.append_batch(["b" * 20])
        first = wal.path / _segments(wal)[0]
        data = bytearray(first.read_bytes())
        data[-3] ^= 0xFF
        first.write_bytes(bytes(data))
        with pytest.raises(WriteAheadLogError, match=r"has a corrupt frame at byte 0$"):
            await wal.read_from(1, 1)


async def test_iter_from_follows_the_log(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        await wal.append_batch(list(range(10)))
        async with contextlib.aclosing(wal.iter_from(4, batch_size=3)) as it:
            assert [x async for x in it] == [3, 4, 5, 6, 7, 8, 9]


async def test_a_record_the_codec_cannot_restore_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        with pytest.raises(
            TypeError, match=r"^write-ahead log records must be values it can log faithfully: "
        ):
            await wal.append_batch(["ok", object()])
        with pytest.raises(TypeError, match=r"surrogates"):
            await wal.append_batch(["\ud800"])
        assert wal.last_seq == 0
        assert await wal.append_batch([{1, 2}]) == 1
        assert await wal.read_from(1, 1) == [{1, 2}]


async def test_concurrent_appends_are_serialized(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(wal.append_batch, [i] * 5)
        assert wal.last_seq == 100
        records = await wal.read_from(1, 100)
        # Each batch is contiguous.
        assert all(records[i] == records[i - i % 5] for i in range(100))
        assert sorted(set(records)) == list(range(20))


async def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^name must be a plain directory name, got 'a/b'$"):
        WriteAheadLog(tmp_path, "a/b")
    with pytest.raises(ValueError, match=r"^segment_bytes must be >= 1, got 0$"):
        WriteAheadLog(tmp_path, "x", segment_bytes=0)
    async with WriteAheadLog(tmp_path, "src") as wal:
        with pytest.raises(ValueError, match=r"^seq must be >= 1, got 0$"):
            await wal.read_from(0, 1)
        with pytest.raises(ValueError, match=r"^limit must be >= 1, got 0$"):
            await wal.read_from(1, 0)
    with pytest.raises(RuntimeError, match=r"is not open$"):
        await wal.append_batch(["a"])


async def test_write_is_durable_only_after_sync(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src", segment_bytes=30) as wal:
        assert wal.write(["a" * 20]) == 1
        assert wal.write(["b" * 20, "c"]) == 3
        assert (wal.written_seq, wal.last_seq) == (3, 0)
        assert await wal.read_from(1, 10) == []
        # Nothing is synced yet, so nothing may be truncated.
        assert await wal.truncate_before(100) == 0
        assert await wal.sync() == 3
        assert await wal.read_from(1, 10) == ["a" * 20, "b" * 20, "c"]
        assert len(_segments(wal)) == 2
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.last_seq == 3
        assert await wal.read_from(2, 10) == ["b" * 20, "c"]


async def test_concurrent_syncs_share_one_flush(tmp_path: Path) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        flushes = 0
        flush = wal._flush

        def counting_flush(queue: list) -> None:
            nonlocal flushes
            flushes += 1
            flush(queue)

        wal._flush = counting_flush  # type: ignore[method-assign]
        wal.write(["a"])
        wal.write(["b"])
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(wal.sync)
        assert flushes == 1
        assert wal.last_seq == 2


async def test_checkpointed_position_survives_and_defaults_to_the_log_beginning(
    tmp_path: Path,
) -> None:
    async with WriteAheadLog(tmp_path, "src", segment_bytes=20) as wal:
        assert wal.checkpointed_seq == 0  # a new log: nothing was ever checkpointed
        await wal.append_batch(["a"])
        await wal.append_batch(["b"])
        await wal.append_batch(["c"])
        with pytest.raises(ValueError, match=r"^seq must be in 0\.\.3, got 4$"):
            await wal.mark_checkpointed(4)
        await wal.mark_checkpointed(2)
        await wal.truncate_before(3)
        assert (wal.first_seq, wal.checkpointed_seq) == (3, 2)
        # A late notification of an older checkpoint cannot point before what is gone.
        await wal.mark_checkpointed(1)
        assert wal.checkpointed_seq == 2
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.checkpointed_seq == 2
    (tmp_path / "src" / "checkpointed").unlink()  # a log written before the file existed
    async with WriteAheadLog(tmp_path, "src") as wal:
        assert wal.checkpointed_seq == wal.first_seq - 1 == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x\n", r"is corrupt: expected a sequence number and a newline, got b'x\\n'"),
        (b"99\n", r"is inconsistent: its 'checkpointed' file says records up to 99 were"),
    ],
)
async def test_a_damaged_checkpointed_file_is_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    async with WriteAheadLog(tmp_path, "src") as wal:
        await wal.append_batch(["a"])
    (tmp_path / "src" / "checkpointed").write_bytes(content)
    with pytest.raises(WriteAheadLogError, match=message):
        await WriteAheadLog(tmp_path, "src").open()


class _Level(enum.IntEnum):
    HIGH = 1


async def test_encoded_batches_round_trip_faithfully_or_are_refused(tmp_path: Path) -> None:
    """The per-batch fast path for flat dicts must not skip what to_json escapes or refuses."""
    batches: list[list[object]] = [
        [{"user": "u1", "n": 1}, {"user": "u2", "n": 2.5}],  # the fast path
        [{"$tuple": [1]}],  # a user dict that looks like a tag
        [{"a": float("nan"), "b": 1}, {"x": (1, 2), "y": None}],
        ["s", 1, None, True, 2**64 - 1, 2**64],
    ]
    async with WriteAheadLog(tmp_path, "src") as wal:
        for batch in batches:
            wal.write(batch, encoded=encode_records(batch))
        await wal.sync()
        got = await wal.read_from(1, 100)
    flat = [r for batch in batches for r in batch]
    assert got[:3] == flat[:3] and got[5:] == flat[5:]
    assert type(got[2]) is dict and math.isnan(got[3]["a"]) and got[4]["x"] == (1, 2)
    assert type(got[-1]) is int
    with pytest.raises(TypeError, match=r"^record 1 of the batch, \{'a': <_Level\.HIGH: 1>"):
        encode_records([{"a": 1, "b": 2}, {"a": _Level.HIGH, "b": 1}])
