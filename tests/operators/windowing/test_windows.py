"""TimeWindow, CountWindow, GlobalWindow: their arithmetic, and that the state codec gives
them back as the same classes (as values and as dict keys)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP
from streamlet.operators.windowing import GLOBAL_WINDOW, CountWindow, GlobalWindow, TimeWindow
from streamlet.state.serde import decode_table, encode_table


def test_max_timestamp_is_the_last_millisecond_inside() -> None:
    assert TimeWindow(0, 5000).max_timestamp() == 4999
    assert TimeWindow(-10, -5).max_timestamp() == -6
    assert CountWindow(3).max_timestamp() == MAX_WATERMARK_TIMESTAMP
    assert GLOBAL_WINDOW.max_timestamp() == MAX_WATERMARK_TIMESTAMP
    assert GlobalWindow() == GLOBAL_WINDOW


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (TimeWindow(0, 5), TimeWindow(5, 9), True),  # touching windows intersect
        (TimeWindow(5, 9), TimeWindow(0, 5), True),
        (TimeWindow(0, 5), TimeWindow(6, 9), False),
        (TimeWindow(0, 10), TimeWindow(3, 4), True),  # containment
        (TimeWindow(3, 4), TimeWindow(0, 10), True),
        (TimeWindow(0, 5), TimeWindow(2, 7), True),
        (TimeWindow(-5, -1), TimeWindow(0, 3), False),
    ],
)
def test_intersects_counts_touching(a: TimeWindow, b: TimeWindow, expected: bool) -> None:
    assert a.intersects(b) is expected


def test_cover_spans_both() -> None:
    assert TimeWindow(0, 5).cover(TimeWindow(3, 9)) == TimeWindow(0, 9)
    assert TimeWindow(7, 9).cover(TimeWindow(0, 2)) == TimeWindow(0, 9)
    assert TimeWindow(0, 10).cover(TimeWindow(3, 4)) == TimeWindow(0, 10)


@pytest.mark.parametrize(
    ("timestamp", "offset", "size", "start"),
    [
        # Flink's TimeWindowTest cases: offset 0, positive and negative offsets.
        (1, 0, 7, 0),
        (6, 0, 7, 0),
        (7, 0, 7, 7),
        (8, 0, 7, 7),
        (1, 3, 7, -4),
        (2, 3, 7, -4),
        (3, 3, 7, 3),
        (9, 3, 7, 3),
        (10, 3, 7, 10),
        (1, -1, 7, -1),
        (5, -1, 7, -1),
        (6, -1, 7, 6),
        (13, -1, 7, 13),
        # Negative timestamps start at or before themselves, never after.
        (-1, 0, 7, -7),
        (-7, 0, 7, -7),
        (-8, 0, 7, -14),
        (-1, 3, 7, -4),
        (-5, 3, 7, -11),
        (-2, -1, 7, -8),
    ],
)
def test_window_start_with_offset(timestamp: int, offset: int, size: int, start: int) -> None:
    got = TimeWindow.get_window_start_with_offset(timestamp, offset, size)
    assert got == start
    assert got <= timestamp < got + size


def test_window_start_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="window_size"):
        TimeWindow.get_window_start_with_offset(5, 0, 0)


def _round_trip(table: dict[Any, Any]) -> dict[Any, Any]:
    mode, payload = encode_table(table, None)
    return decode_table(mode, payload, None)


def test_windows_round_trip_through_the_state_codec_as_keys_and_values() -> None:
    # The shapes the window operator keeps: window -> contents, window -> state window.
    table: dict[Any, Any] = {
        TimeWindow(0, 5): TimeWindow(-3, 2),
        TimeWindow(-(2**62), 7): [1, 2],
        CountWindow(0): {"n": 1},
        GLOBAL_WINDOW: GLOBAL_WINDOW,
        "mapping": {TimeWindow(0, 9): TimeWindow(0, 5), TimeWindow(10, 12): TimeWindow(10, 12)},
        (1, TimeWindow(0, 5)): [CountWindow(4)],
    }
    back = _round_trip(table)
    assert back == table
    assert [type(k) for k in back] == [type(k) for k in table]
    assert type(back[TimeWindow(0, 5)]) is TimeWindow
    assert all(type(k) is TimeWindow for k in back["mapping"])
    assert all(type(v) is TimeWindow for v in back["mapping"].values())
    assert type(back[(1, TimeWindow(0, 5))][0]) is CountWindow
    assert type(next(iter(_round_trip({GLOBAL_WINDOW: 1})))) is GlobalWindow
