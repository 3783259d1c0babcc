"""The interval join's operator through the keyed two-input harness, against brute force."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamlet import OutputTag, StreamRecord
from streamlet.operators.joins import (
    LEFT_BUFFER,
    RIGHT_BUFFER,
    IntervalJoinOperator,
    IntervalJoinSpec,
    ProcessJoinFunction,
)
from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP
from streamlet.testing import KeyedTwoInputOperatorTestHarness

pytestmark = pytest.mark.anyio

Event = tuple[str, int, int, int]  # (side "L"/"R", key, value, timestamp)


class Pair(ProcessJoinFunction):
    """Emits (left, right, left ts, right ts, ctx ts) per pair."""

    def process_element(self, left: Any, right: Any, ctx: ProcessJoinFunction.Context) -> Any:
        return [(left, right, ctx.get_left_timestamp(), ctx.get_right_timestamp())]


def key_of(record: tuple[int, int]) -> int:
    return record[0]


def harness(spec: IntervalJoinSpec, **settings: Any) -> KeyedTwoInputOperatorTestHarness:
    return KeyedTwoInputOperatorTestHarness(
        Pair(), key_of, key_of, kind="interval_join", args=(spec,), **settings
    )


def join_op(h: KeyedTwoInputOperatorTestHarness) -> IntervalJoinOperator:
    assert isinstance(h.operator, IntervalJoinOperator)
    return h.operator


def reference(events: list[Event], spec: IntervalJoinSpec) -> list[tuple[Any, int | None]]:
    """Every pair of equal keys with ts_right - ts_left within the bounds (each inclusive
    or not), and its max ts; from the spec's raw bounds, not the operator's."""

    def within(d: int) -> bool:
        above = d >= spec.lower if spec.lower_inclusive else d > spec.lower
        below = d <= spec.upper if spec.upper_inclusive else d < spec.upper
        return above and below

    lefts = [e for e in events if e[0] == "L"]
    rights = [e for e in events if e[0] == "R"]
    out: list[tuple[Any, int | None]] = []
    for _, k1, v1, t1 in lefts:
        for _, k2, v2, t2 in rights:
            if k1 == k2 and within(t2 - t1):
                out.append((((k1, v1), (k2, v2), t1, t2), max(t1, t2)))
    return sorted(out)


def random_events(seed: int, n: int = 120, keys: int = 3, span: int = 40) -> list[Event]:
    """Records of both sides, arriving out of order by up to 6 ms."""
    rng = random.Random(seed)
    events = [(rng.choice("LR"), rng.randrange(keys), i, rng.randrange(span)) for i in range(n)]
    events.sort(key=lambda e: e[3] + rng.randrange(7))
    return events


async def drive(
    h: KeyedTwoInputOperatorTestHarness, events: list[Event], watermark_every: int = 5
) -> None:
    """Feed ``events`` in order with the tightest valid watermarks (min pending ts - 1)
    every few records, on both inputs, then the final watermark."""
    for n, (side, key, value, ts) in enumerate(events):
        if side == "L":
            await h.process_element1((key, value), ts)
        else:
            await h.process_element2((key, value), ts)
        if n % watermark_every == watermark_every - 1 and n + 1 < len(events):
            watermark = min(e[3] for e in events[n + 1 :]) - 1
            await h.process_watermark1(watermark)
            await h.process_watermark2(watermark)
            check_buffers(h, watermark)


def check_buffers(h: KeyedTwoInputOperatorTestHarness, watermark: int) -> None:
    """No bucket outlives its cleanup time (Flink's: left until ts + upper, right until
    ts - lower, or ts itself when that offset is not positive)."""
    op = join_op(h)
    for name, offset in ((LEFT_BUFFER, op.upper_bound), (RIGHT_BUFFER, -op.lower_bound)):
        for group in h.keyed_state_backend._tables[name].tables:
            for buckets in group.values():
                assert buckets  # no empty dicts kept
                for ts in buckets:
                    assert ts + max(offset, 0) > watermark, (name, ts, watermark)


def output(h: KeyedTwoInputOperatorTestHarness) -> list[tuple[Any, int | None]]:
    return sorted((r.value, r.timestamp) for r in h.get_output() if type(r) is StreamRecord)


BOUNDS = [(-3, 2), (0, 0), (2, 5), (-6, -1), (-4, 4)]
INCLUSIVE = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("inclusive", INCLUSIVE)
@pytest.mark.parametrize("seed", range(3))
async def test_the_join_equals_brute_force_and_leaves_no_state(
    anyio_backend: str, bounds: tuple[int, int], inclusive: tuple[bool, bool], seed: int
) -> None:
    spec = IntervalJoinSpec(*bounds, *inclusive)
    events = random_events(seed * 31 + bounds[0])
    async with harness(spec) as h:
        await drive(h, events)
        assert output(h) == reference(events, spec)
        assert h.keyed_state_backend.state_size() > 0
        await h.process_watermark1(MAX_WATERMARK_TIMESTAMP)
        await h.process_watermark2(MAX_WATERMARK_TIMESTAMP)
        assert h.keyed_state_backend.state_size() == 0  # buffers and timers all gone
        assert join_op(h).num_late_records_dropped == 0


async def test_either_order_of_arrival_joins_and_the_result_has_the_later_timestamp(
    anyio_backend: str,
) -> None:
    spec = IntervalJoinSpec(-2, 2)
    async with harness(spec) as h:
        assert await h.process_element1((1, "a"), 10) == []
        assert await h.process_element2((1, "b"), 11) == [((1, "a"), (1, "b"), 10, 11)]
        assert await h.process_element2((1, "c"), 7) == []  # 3 ms before: outside
        assert await h.process_element2((2, "d"), 10) == []  # another key
        assert await h.process_element1((1, "e"), 9) == [
            ((1, "e"), (1, "b"), 9, 11),
            ((1, "e"), (1, "c"), 9, 7),
        ]
        stamps = [r.timestamp for r in h.get_output() if type(r) is StreamRecord]
        assert stamps == [11, 11, 9]


async def test_late_records_are_dropped_and_counted(anyio_backend: str) -> None:
    async with harness(IntervalJoinSpec(-5, 5)) as h:
        await h.process_element2((1, "r"), 12)
        await h.process_watermark1(10)
        await h.process_watermark2(10)
        assert await h.process_element1((1, "late"), 9) == []
        assert join_op(h).num_late_records_dropped == 1
        assert h.context.metric_group.snapshot() == {"numLateRecordsDropped": 1}
        assert await h.process_element1((1, "on time"), 10) == [((1, "on time"), (1, "r"), 10, 12)]
        assert await h.process_element2((1, "late"), 3) == []
        assert join_op(h).num_late_records_dropped == 2


async def test_late_records_can_go_to_a_side_output(anyio_backend: str) -> None:
    tag = OutputTag("late-left")
    spec = IntervalJoinSpec(-5, 5, left_late_tag=tag.tag_id)
    async with harness(spec) as h:
        await h.process_watermark1(10)
        await h.process_watermark2(10)
        await h.process_element1((1, "late"), 9)
        await h.process_element2((1, "late"), 9)
        assert h.get_side_output(tag) == [StreamRecord((1, "late"), 9)]
        assert join_op(h).num_late_records_dropped == 1  # the right one: no tag


async def test_records_without_timestamps_fail_naming_the_fix(anyio_backend: str) -> None:
    async with harness(IntervalJoinSpec(-1, 1)) as h:
        with pytest.raises(TypeError, match="assign_timestamps_and_watermarks"):
            await h.process_elements1([(1, "x")])
        with pytest.raises(TypeError, match="right input has no timestamp"):
            await h.process_elements2([(1, "x")])


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="lower <= upper"):
        IntervalJoinSpec(3, 2)
    with pytest.raises(TypeError, match="int of ms"):
        IntervalJoinSpec(1.5, 2)  # type: ignore[arg-type]
    assert IntervalJoinSpec(2, 2, False, False).effective_lower == 3  # joins nothing


async def test_side_outputs_and_keyed_state_of_the_function(anyio_backend: str) -> None:
    tag = OutputTag("odd")

    class Tagged(ProcessJoinFunction):
        def process_element(self, left: Any, right: Any, ctx: Any) -> Any:
            assert ctx.get_current_key() == left[0]
            if ctx.get_timestamp() % 2:
                yield tag, (left[1], right[1])
            else:
                yield left[1] + right[1]

    h = KeyedTwoInputOperatorTestHarness(
        Tagged(), key_of, key_of, kind="interval_join", args=(IntervalJoinSpec(0, 3),)
    )
    async with h:
        await h.process_element1((1, "a"), 4)
        await h.process_element2((1, "b"), 5)
        await h.process_element2((1, "c"), 6)
        assert h.extract_output_values() == ["ac"]
        assert h.get_side_output(tag) == [StreamRecord(("a", "b"), 5)]


async def test_an_async_function_joins_as_a_sync_one(anyio_backend: str) -> None:
    class AsyncPair(ProcessJoinFunction):
        async def process_element(self, left: Any, right: Any, ctx: Any) -> Any:  # type: ignore[override]
            return [(left[1], right[1], ctx.get_timestamp(), ctx.get_current_key())]

    spec = IntervalJoinSpec(-1, 1)
    h = KeyedTwoInputOperatorTestHarness(
        AsyncPair(), key_of, key_of, kind="interval_join", args=(spec,)
    )
    async with h:
        await h.process_element1((1, "a"), 4)
        await h.process_element1((2, "b"), 4)
        await h.process_element2((1, "c"), 5)
        await h.process_element2((2, "d"), 3)
        assert h.get_output() == [
            StreamRecord(("a", "c", 5, 1), 5),
            StreamRecord(("b", "d", 4, 2), 4),
        ]


@pytest.mark.parametrize("seed", range(3))
async def test_a_snapshot_restored_at_another_parallelism_joins_as_without(
    anyio_backend: str, seed: int
) -> None:
    spec = IntervalJoinSpec(-4, 3, lower_inclusive=False)
    events = random_events(seed, n=160, keys=8)
    cut = len(events) // 2
    first, rest = events[:cut], events[cut:]
    watermark = min(e[3] for e in rest) - 1
    async with harness(spec, max_parallelism=16) as before:
        await drive(before, first)
        await before.process_watermark1(watermark)
        await before.process_watermark2(watermark)
        snapshot = await before.snapshot()
        joined = output(before)
    for parallelism in (2, 3):
        parts = [
            harness(
                spec,
                max_parallelism=16,
                parallelism=parallelism,
                subtask_index=index,
                restore=snapshot,
            )
            for index in range(parallelism)
        ]
        results = list(joined)
        for h in parts:
            async with h:
                assert h.operator.current_watermark < watermark  # watermarks are not state
                await h.process_watermark1(watermark)
                await h.process_watermark2(watermark)
                await drive(h, [e for e in rest if h.owns_key(e[1])])
                results.extend(output(h))
                await h.process_watermark1(MAX_WATERMARK_TIMESTAMP)
                await h.process_watermark2(MAX_WATERMARK_TIMESTAMP)
                assert h.keyed_state_backend.state_size() == 0
        assert sorted(results) == reference(events, spec)


async def test_buckets_go_at_flinks_cleanup_time_also_for_records_at_the_watermark(
    anyio_backend: str,
) -> None:
    # upper = 0: a left bucket at t is cleaned up at watermark t (Flink's cleanup time), so
    # a right record at t that comes after watermark t (not late: t is not below it) misses
    # the old left record, but meets one that came after the cleanup.
    async with harness(IntervalJoinSpec(-2, 0)) as h:
        await h.process_element1((1, "old"), 5)
        await h.process_watermark1(5)
        await h.process_watermark2(5)
        assert await h.process_element2((1, "r1"), 5) == []
        await h.process_element1((1, "new"), 5)
        assert h.keyed_state_backend.state_size() == 2  # key 1 in both buffers
        assert await h.process_element2((1, "r2"), 5) == [((1, "new"), (1, "r2"), 5, 5)]
        await h.process_watermark1(6)
        await h.process_watermark2(6)
        assert h.keyed_state_backend.state_size() == 1  # right buckets stay until t - lower
        await h.process_watermark1(7)
        await h.process_watermark2(7)
        assert h.keyed_state_backend.state_size() == 0
        assert join_op(h).num_late_records_dropped == 0


def test_the_harness_asks_for_the_bounds() -> None:
    with pytest.raises(ValueError, match="IntervalJoinSpec"):
        KeyedTwoInputOperatorTestHarness(Pair(), key_of, key_of, kind="interval_join")


def buffers(h: KeyedTwoInputOperatorTestHarness) -> dict[str, list[Any]]:
    tables = h.keyed_state_backend._tables
    return {name: [dict(g) for g in tables[name].tables] for name in (LEFT_BUFFER, RIGHT_BUFFER)}


async def test_a_pending_snapshot_keeps_the_buffers_of_its_moment(anyio_backend: str) -> None:
    """Records after a snapshot's synchronous part (added to existing buckets, new buckets,
    buckets cleaned up) do not reach it: copy-on-write is respected on every path."""
    from streamlet.testing import HarnessSnapshot

    spec = IntervalJoinSpec(-3, 3)
    events = random_events(7, n=80, keys=3, span=30)
    # Key 99 has a record just before the cut only: after it, only its cleanup touches it.
    events.insert(40, ("L", 99, 999, max(e[3] for e in events[:40]) + 1))
    cut = 41
    async with harness(spec) as reference:
        await drive(reference, events[:cut])
        expected = buffers(reference)
    async with harness(spec) as h:
        await drive(h, events[:cut])
        pending = h.keyed_state_backend.snapshot_sync()
        await drive(h, events[cut:])
        await h.process_watermark1(MAX_WATERMARK_TIMESTAMP)
        await h.process_watermark2(MAX_WATERMARK_TIMESTAMP)
        assert h.keyed_state_backend.state_size() == 0
        snapshot = HarnessSnapshot(
            operator_uid=h.uid,
            subtask_index=0,
            parallelism=1,
            max_parallelism=h.max_parallelism,
            checkpoint_id=1,
            operator_state=h.operator_state_backend.snapshot_sync().serialize(),
            keyed_state=await pending.serialize_all(),
        )
    async with harness(spec, restore=snapshot) as restored:
        assert buffers(restored) == expected
        assert expected != buffers(h)
