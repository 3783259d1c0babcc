"""Golden test of the write-ahead log's on-disk format (issue 10).

``fixtures/wal/golden/`` was written by this version of the log and is checked in, so a
change of the segment or frame format, or of the record codec, is a decision (a new frame
kind, a new fixture) and not an accident: old logs must stay readable as they were.

It holds one segment with, in order: a codec frame (records 1-4, typed values), a text
frame (records 5-6, a socket's lines), and a plain JSON frame of the format before the
codec (record 7, appended by hand because nothing writes that kind any more). Regenerate
it only when the format changes on purpose, importing this module so that ``Point`` is
referenced by its real module name::

    python -c "from tests.operators.test_wal_golden import regenerate; regenerate('DIR')"
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import shutil
import struct
import zlib
from pathlib import Path

import anyio
import pytest

from streamlet.operators.sources.wal import WriteAheadLog

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "fixtures" / "wal" / "golden"
SEGMENT = "00000000000000000001.wal"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str


CODEC_RECORDS = [
    (1, "a"),
    Point(3, "p"),
    {"when": datetime.datetime(2024, 5, 6, 7, 8, 9), 2: {1, 2}},
    float("nan"),
]
TEXT_LINES = ["line one", "\u20ac two"]
PLAIN_RECORD = {"old": [1, 2]}


PLAIN_PAYLOAD = b'[{"old":[1,2]}]'  # what the old log's orjson.dumps([PLAIN_RECORD]) wrote


def _plain_frame(first: int, payload: bytes, count: int) -> bytes:
    """A frame of the pre-codec format: kind bits 0b00, the payload a plain JSON array."""
    checked = struct.pack("<IQI", len(payload), first, count)
    return struct.pack("<I", zlib.crc32(payload, zlib.crc32(checked))) + checked + payload


async def _write(directory: Path) -> None:
    async with WriteAheadLog(directory, "golden") as wal:
        wal.write(CODEC_RECORDS)
        wal.write(TEXT_LINES, text="".join(f"{s}\n" for s in TEXT_LINES).encode())
        await wal.sync()


def _check_codec_and_text(records: list[object]) -> None:
    assert records[:3] == CODEC_RECORDS[:3]
    assert [type(r) for r in records[:3]] == [tuple, Point, dict]
    assert type(records[2]["when"]) is datetime.datetime  # type: ignore[index]
    assert math.isnan(records[3])  # type: ignore[arg-type]
    assert records[4:6] == TEXT_LINES


async def test_the_checked_in_segment_decodes(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "golden")  # open() may cut a torn tail: work on a copy
    async with WriteAheadLog(tmp_path, "golden") as wal:
        assert (wal.first_seq, wal.last_seq, wal.torn_tail_bytes) == (1, 7, 0)
        assert wal.checkpointed_seq == 2  # from the checked-in "checkpointed" file
        records = await wal.read_from(1, 10)
    _check_codec_and_text(records)
    assert records[6] == PLAIN_RECORD  # an old frame reads as it did before the codec


async def test_this_version_writes_the_checked_in_bytes(tmp_path: Path) -> None:
    await _write(tmp_path)
    written = (tmp_path / "golden" / SEGMENT).read_bytes()
    fixture = (FIXTURE / SEGMENT).read_bytes()
    assert fixture == written + _plain_frame(7, PLAIN_PAYLOAD, 1)


def regenerate(directory: str) -> None:  # pragma: no cover - run by hand
    """Write the fixture into ``directory/golden``."""
    anyio.run(_write, Path(directory))
    segment = Path(directory) / "golden" / SEGMENT
    segment.write_bytes(segment.read_bytes() + _plain_frame(7, PLAIN_PAYLOAD, 1))
    (Path(directory) / "golden" / "checkpointed").write_bytes(b"2\n")
