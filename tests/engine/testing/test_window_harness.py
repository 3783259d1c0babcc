"""The window operator harness: windows fire on watermarks, and survive snapshot/restore."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet import (
    EventTimeSessionWindows,
    OutputTag,
    ProcessWindowFunction,
    StreamRecord,
    TumblingEventTimeWindows,
    Watermark,
)
from streamlet.testing import WindowOperatorTestHarness

pytestmark = pytest.mark.anyio


class Elements(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        yield (key, context.window().start, sorted(elements))


def _harness(**kwargs: Any) -> WindowOperatorTestHarness:
    return WindowOperatorTestHarness(
        TumblingEventTimeWindows.of(10), Elements(), key_selector=lambda v: v % 3, **kwargs
    )


async def test_windows_fire_when_the_watermark_passes_their_end(anyio_backend: str) -> None:
    async with _harness() as harness:
        for value, ts in [(0, 1), (3, 4), (1, 12), (6, 9)]:
            await harness.process_element(value, timestamp=ts)
        assert await harness.process_watermark(8) == []
        assert await harness.process_watermark(9) == [(0, 0, [0, 3, 6])]
        assert await harness.process_watermark(19) == [(1, 10, [1])]
        assert harness.get_output() == [
            Watermark(8),
            StreamRecord((0, 0, [0, 3, 6]), 9),
            Watermark(9),
            StreamRecord((1, 10, [1]), 19),
            Watermark(19),
        ]


async def test_late_data_goes_to_its_side_output(anyio_backend: str) -> None:
    late = OutputTag("late")
    async with _harness(late_data=late) as harness:
        await harness.process_watermark(20)
        await harness.process_element(3, timestamp=5)  # its window [0, 10) has ended
        assert harness.get_side_output(late) == [StreamRecord(3, 5)]
        assert await harness.process_watermark(30) == []


@pytest.mark.parametrize("parallelism", [1, 2, 3])
async def test_open_windows_survive_snapshot_and_restore_at_any_parallelism(
    anyio_backend: str, parallelism: int
) -> None:
    async with (
        _harness(parallelism=2, subtask_index=0) as first,
        _harness(parallelism=2, subtask_index=1) as second,
    ):
        for value in range(30):
            harness = first if first.owns_key(value % 3) else second
            await harness.process_element(value, timestamp=value)
        assert await first.process_watermark(9) + await second.process_watermark(9) != []
        snapshots = [await first.snapshot(), await second.snapshot()]
    fired: list[Any] = []
    for index in range(parallelism):
        restored = _harness(parallelism=parallelism, subtask_index=index, restore=snapshots)
        async with restored:
            mine = await restored.process_watermark(100)
            assert all(restored.owns_key(key) for key, _, _ in mine)  # on the owner
            fired += mine
    # Windows [10, 20) and [20, 30) of every key fire once, with exactly their elements.
    expected = [
        (key, start, [v for v in range(start, start + 10) if v % 3 == key])
        for key in range(3)
        for start in (10, 20)
    ]
    assert sorted(fired) == sorted(expected)


async def test_sessions_merge_in_the_harness(anyio_backend: str) -> None:
    harness = WindowOperatorTestHarness(
        EventTimeSessionWindows.with_gap(10), Elements(), key_selector=lambda v: "k"
    )
    async with harness:
        await harness.process_element(1, timestamp=0)  # [0, 10)
        await harness.process_element(3, timestamp=18)  # [18, 28)
        await harness.process_element(2, timestamp=9)  # [9, 19) touches both: [0, 28)
        assert await harness.process_watermark(100) == [("k", 0, [1, 2, 3])]
