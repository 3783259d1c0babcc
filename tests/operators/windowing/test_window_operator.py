"""The window operator driven directly, as a subtask drives it (Flink's WindowOperatorTest).

A :class:`Rig` opens a :class:`WindowOperator` with an :class:`OperatorContext`, a
:class:`HeapKeyedStateBackend` of one subtask's key groups and a
:class:`ProcessingTimeService` on a :class:`ManualClock`, and feeds it records, watermarks
and processing time the way ``engine/runtime/subtask.py`` does: every assigner kind, lateness
and late firings, cleanup, the late side output, triggers, evictors, every window function
kind, window and global state, and a snapshot restored at another parallelism.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from streamlet.operators.base import OperatorContext
from streamlet.operators.processing_time import ManualClock, ProcessingTimeService
from streamlet.operators.records import TimestampedBatch
from streamlet.operators.windowing import (
    ContinuousEventTimeTrigger,
    CountEvictor,
    CountSlidingWindowAssigner,
    CountTrigger,
    CountTumblingWindowAssigner,
    EventTimeSessionWindows,
    GlobalWindows,
    ProcessingTimeSessionWindows,
    ProcessWindowFunction,
    PurgingTrigger,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeEvictor,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowFunction,
)
from streamlet.operators.windowing.operator import WindowOperator, WindowSpec
from streamlet.state import ValueStateDescriptor
from streamlet.state.descriptors import AggregateFunction
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import (
    assign_to_key_group,
    key_group_range_for_subtask,
    subtask_for_key_group,
)

pytestmark = pytest.mark.anyio

MAXP = 128


def key(record: Any) -> Any:
    return record[0]


class Rig:
    """One subtask's window operator, its keyed backend and its processing time."""

    def __init__(
        self,
        spec: WindowSpec,
        *,
        subtask: int = 0,
        parallelism: int = 1,
        restore: dict[int, bytes] | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        self.clock = clock or ManualClock(0)
        self.service = ProcessingTimeService(self.clock)
        self.backend = HeapKeyedStateBackend(
            "window", key_group_range_for_subtask(subtask, parallelism, MAXP), MAXP
        )
        if restore is not None:
            self.backend.restore(restore)
        self.op = WindowOperator(spec, key)
        self.subtask = subtask
        self.parallelism = parallelism
        #: (value, timestamp) of every result, in order
        self.out: list[tuple[Any, int | None]] = []
        self.late: list[tuple[Any, int | None]] = []

    async def open(self) -> Rig:
        ctx = OperatorContext(
            operator_name="window",
            operator_uid="window",
            subtask_index=self.subtask,
            parallelism=self.parallelism,
            max_parallelism=MAXP,
            job_name="test",
            attempt=0,
            operator_state=None,  # type: ignore[arg-type]
            keyed_backend=self.backend,
            restored=self.backend.is_restored(),
            processing_time=self.service,
        )
        await self.op.open(ctx)
        return self

    def _collect(self, batch: Any) -> list[Any]:
        if type(batch) is not TimestampedBatch:  # nothing to fire: a plain list
            batch = TimestampedBatch(list(batch), [None] * len(batch))
        self.out.extend(zip(batch.records, batch.timestamps, strict=True))
        side = self.op.side_outputs
        if side is not None:
            self.op.side_outputs = None
            (late,) = side.values()
            self.late.extend(zip(late.records, late.timestamps, strict=True))
        return list(batch.records)

    async def element(self, record: Any, timestamp: int | None = None) -> list[Any]:
        return self._collect(await self.op.process_batch(TimestampedBatch([record], [timestamp])))

    async def elements(self, records: list[Any]) -> list[Any]:
        return self._collect(await self.op.process_batch(list(records)))

    async def watermark(self, watermark: int) -> list[Any]:
        return self._collect(await self.op.process_watermark(watermark))

    async def processing_time(self, now: int) -> list[Any]:
        """Move the clock; the subtask wakes the operator only when its deadline is due."""
        self.clock.set_time(now)
        if self.service.take_due(now):
            return self._collect(await self.op.on_processing_time(now))
        return []

    def owns(self, k: Any) -> bool:
        return assign_to_key_group(k, MAXP) in self.backend.key_group_range

    async def snapshot(self) -> dict[int, bytes]:
        return await self.backend.snapshot_sync().serialize_all()

    def held(self) -> int:
        """(state, key) entries the backend holds: 0 once every window is cleaned up."""
        return self.backend.state_size()


class Collect(ProcessWindowFunction):
    """(key, window start, window end, sorted timestamps or values)."""

    def process(self, k: Any, context: Any, elements: Any) -> Any:
        window = context.window()
        yield (k, window.start, window.end, sorted(e[1] for e in elements))


class CountCollect(ProcessWindowFunction):
    def process(self, k: Any, context: Any, elements: Any) -> Any:
        yield (k, type(context.window()).__name__, [e[1] for e in elements])


def process(fn: Any = None, **kw: Any) -> WindowSpec:
    return WindowSpec(kind="process", function=fn or Collect(), **kw)


# --- assigners ---------------------------------------------------------------------------


async def test_tumbling_event_time_with_offset_and_negative_timestamps(anyio_backend: str) -> None:
    rig = await Rig(process(assigner=TumblingEventTimeWindows.of(10, offset=3))).open()
    for ts in (-8, -7, 2, 3, 12, 13):
        await rig.element(("a", ts), ts)
    assert await rig.watermark(-9) == []
    assert await rig.watermark(-8) == [("a", -17, -7, [-8])]
    assert await rig.watermark(1) == []
    assert await rig.watermark(2) == [("a", -7, 3, [-7, 2])]
    assert await rig.watermark(100) == [("a", 3, 13, [3, 12]), ("a", 13, 23, [13])]
    assert [ts for _, ts in rig.out] == [-8, 2, 12, 22]  # each result at max_timestamp()
    assert rig.held() == 0


async def test_sliding_event_time_with_offset_and_negative_timestamps(anyio_backend: str) -> None:
    rig = await Rig(process(assigner=SlidingEventTimeWindows.of(10, 5, offset=2))).open()
    for ts in (-4, 1, 6):
        await rig.element(("a", ts), ts)
    await rig.watermark(100)
    assert [value for value, _ in rig.out] == [
        ("a", -13, -3, [-4]),
        ("a", -8, 2, [-4, 1]),
        ("a", -3, 7, [1, 6]),
        ("a", 2, 12, [6]),
    ]
    assert rig.held() == 0


async def test_event_time_sessions_with_a_dynamic_gap(anyio_backend: str) -> None:
    # The gap is the record's third field: (a, 0, 5) makes [0, 5); (a, 4, 10) [4, 14),
    # which merges with it into [0, 14); (a, 20, 1) stays alone.
    assigner = EventTimeSessionWindows.with_dynamic_gap(lambda r: r[2])
    rig = await Rig(process(assigner=assigner)).open()
    for record in (("a", 0, 5), ("b", 2, 3), ("a", 4, 10), ("a", 20, 1)):
        await rig.element(record, record[1])
    await rig.watermark(12)
    assert [v for v, _ in rig.out] == [("b", 2, 5, [2])]
    await rig.watermark(100)
    assert [v for v, _ in rig.out][1:] == [("a", 0, 14, [0, 4]), ("a", 20, 21, [20])]
    assert rig.held() == 0


async def test_event_time_sessions_a_late_element_bridges_two(anyio_backend: str) -> None:
    spec = process(assigner=EventTimeSessionWindows.with_gap(10), allowed_lateness=100)
    rig = await Rig(spec).open()
    for ts in (0, 5, 25):
        await rig.element(("a", ts), ts)
    assert await rig.watermark(40) == [("a", 0, 15, [0, 5]), ("a", 25, 35, [25])]
    # 15 is late, within the lateness: [15, 25) touches both, one session, fired at once.
    assert await rig.element(("a", 15), 15) == [("a", 0, 35, [0, 5, 15, 25])]
    assert rig.out[-1][1] == 34
    assert await rig.watermark(133) == []
    assert rig.held() > 0
    assert await rig.watermark(134) == []  # cleanup of [0, 35) at 34 + 100: nothing fires
    assert rig.held() == 0


async def test_processing_time_assigners_with_offsets(anyio_backend: str) -> None:
    clock = ManualClock(1_003)
    tumbling = await Rig(
        process(assigner=TumblingProcessingTimeWindows.of(100, offset=5)), clock=clock
    ).open()
    sliding = await Rig(
        process(assigner=SlidingProcessingTimeWindows.of(100, 50, offset=5)), clock=clock
    ).open()
    for rig in (tumbling, sliding):
        await rig.element(("a", 1))  # at 1003: [905, 1005); sliding [955, 1055), [905, 1005)
    clock.set_time(1_004)
    for rig in (tumbling, sliding):
        await rig.element(("a", 2))
        assert await rig.processing_time(1_004) == [("a", 905, 1005, [1, 2])]  # max_timestamp
    assert await tumbling.processing_time(1_005) == []
    assert tumbling.out == [(("a", 905, 1005, [1, 2]), 1004)]
    assert sliding.out == [(("a", 905, 1005, [1, 2]), 1004)]
    clock.set_time(1_006)
    await sliding.element(("a", 3))  # [1005, 1105) and [955, 1055)
    assert await sliding.processing_time(1_054) == [("a", 955, 1055, [1, 2, 3])]
    assert await sliding.processing_time(2_000) == [("a", 1005, 1105, [3])]
    assert tumbling.held() == sliding.held() == 0


async def test_processing_time_sessions(anyio_backend: str) -> None:
    clock = ManualClock(0)
    rig = await Rig(process(assigner=ProcessingTimeSessionWindows.with_gap(10)), clock=clock).open()
    await rig.element(("a", 1))  # [0, 10)
    clock.set_time(8)
    await rig.element(("a", 2))  # [8, 18): merged into [0, 18)
    assert await rig.processing_time(10) == []  # [0, 10)'s timer went with the merge
    assert await rig.processing_time(17) == [("a", 0, 18, [1, 2])]
    assert rig.held() == 0


async def test_global_windows_with_count_trigger_and_count_windows(anyio_backend: str) -> None:
    rig = await Rig(
        process(CountCollect(), assigner=GlobalWindows.create(), trigger=CountTrigger.of(2))
    ).open()
    # A CountTrigger fires without purging: the global window keeps growing.
    await rig.elements([("a", 1), ("b", 2), ("a", 3), ("a", 4), ("a", 5), ("b", 6)])
    assert [v for v, _ in rig.out] == [
        ("a", "GlobalWindow", [1, 3]),
        ("a", "GlobalWindow", [1, 3, 4, 5]),
        ("b", "GlobalWindow", [2, 6]),
    ]

    tumbling = await Rig(process(CountCollect(), assigner=CountTumblingWindowAssigner.of(3))).open()
    await tumbling.elements([("a", i) for i in range(7)])
    assert [v[2] for v, _ in tumbling.out] == [[0, 1, 2], [3, 4, 5]]  # purged after firing
    sliding = await Rig(
        process(CountCollect(), assigner=CountSlidingWindowAssigner.of(3, 2))
    ).open()
    await sliding.elements([("a", i) for i in range(6)])
    assert [v[2] for v, _ in sliding.out] == [[0, 1], [1, 2, 3], [3, 4, 5]]  # last 3 per 2


# --- lateness --------------------------------------------------------------------------


async def test_allowed_lateness_late_firings_then_cleanup(anyio_backend: str) -> None:
    rig = await Rig(process(assigner=TumblingEventTimeWindows.of(10), allowed_lateness=20)).open()
    await rig.element(("a", 1), 1)
    await rig.element(("a", 3), 3)
    assert await rig.watermark(9) == [("a", 0, 10, [1, 3])]
    # Within the lateness: each late element fires the window again with all its elements.
    assert await rig.element(("a", 5), 5) == [("a", 0, 10, [1, 3, 5])]
    assert await rig.watermark(28) == []
    assert await rig.element(("a", 0), 0) == [("a", 0, 10, [0, 1, 3, 5])]
    assert rig.held() > 0
    assert await rig.watermark(29) == []  # cleanup at 9 + 20: cleared, not fired again
    assert rig.held() == 0  # contents, timers and their windows: nothing left
    # Now 7 is late for good: dropped and counted.
    assert await rig.element(("a", 7), 7) == []
    assert rig.op.num_late_records_dropped == 1
    assert rig.held() == 0


async def test_late_elements_go_to_the_side_output_else_are_counted(anyio_backend: str) -> None:
    spec = process(assigner=TumblingEventTimeWindows.of(10), late_tag="late")
    rig = await Rig(spec).open()
    await rig.element(("a", 1), 1)
    await rig.watermark(10)
    await rig.element(("a", 9), 9)  # its window ended at 9 <= watermark 10
    await rig.element(("a", 10), 10)  # on time: [10, 20) is open
    assert rig.late == [(("a", 9), 9)]
    assert rig.op.num_late_records_dropped == 0

    rig = await Rig(process(assigner=TumblingEventTimeWindows.of(10))).open()
    await rig.element(("a", 1), 1)
    await rig.watermark(10)
    await rig.elements([])
    await rig.element(("a", 9), 9)
    await rig.element(("a", 2), 2)
    assert rig.late == []
    assert rig.op.num_late_records_dropped == 2
    assert [v for v, _ in rig.out] == [("a", 0, 10, [1])]


async def test_sliding_element_late_for_only_some_windows_is_not_late(anyio_backend: str) -> None:
    spec = process(assigner=SlidingEventTimeWindows.of(10, 5), late_tag="late")
    rig = await Rig(spec).open()
    await rig.watermark(10)
    await rig.element(("a", 7), 7)  # [0, 10) is over; [5, 15) still open
    assert rig.late == []
    await rig.watermark(100)
    assert [v for v, _ in rig.out] == [("a", 5, 15, [7])]


# --- triggers ----------------------------------------------------------------------------


async def test_continuous_event_time_trigger_fires_every_interval(anyio_backend: str) -> None:
    spec = process(
        assigner=TumblingEventTimeWindows.of(100), trigger=ContinuousEventTimeTrigger.of(30)
    )
    rig = await Rig(spec).open()
    await rig.element(("a", 1), 1)
    await rig.element(("a", 40), 40)
    assert await rig.watermark(29) == []
    assert await rig.watermark(30) == [("a", 0, 100, [1, 40])]  # at multiples of 30
    assert await rig.watermark(59) == []
    assert await rig.watermark(60) == [("a", 0, 100, [1, 40])]
    await rig.element(("a", 70), 70)
    assert await rig.watermark(98) == [("a", 0, 100, [1, 40, 70])]  # at 90
    assert await rig.watermark(99) == [("a", 0, 100, [1, 40, 70])]  # the window's end
    assert rig.held() == 0


async def test_purging_trigger_purges_on_fire(anyio_backend: str) -> None:
    spec = process(
        CountCollect(),
        assigner=GlobalWindows.create(),
        trigger=PurgingTrigger.of(CountTrigger.of(2)),
    )
    rig = await Rig(spec).open()
    await rig.elements([("a", i) for i in range(5)])
    assert [v[2] for v, _ in rig.out] == [[0, 1], [2, 3]]


# --- evictors ----------------------------------------------------------------------------


async def test_count_evictor_before_and_after(anyio_backend: str) -> None:
    for after, expected in ((False, [[0, 1], [1, 2, 3]]), (True, [[0, 1], [0, 1, 2, 3]])):
        spec = process(
            CountCollect(),
            assigner=GlobalWindows.create(),
            trigger=CountTrigger.of(2),
            evictor=CountEvictor.of(3, do_evict_after=after),
        )
        rig = await Rig(spec).open()
        await rig.elements([("a", i) for i in range(4)])
        assert [v[2] for v, _ in rig.out] == expected, after
        # After firing at 4 elements, the window keeps 3 either way: 1, 2, 3.
        await rig.elements([("a", 4), ("a", 5)])
        assert rig.out[-1][0][2] == ([3, 4, 5] if not after else [1, 2, 3, 4, 5])


async def test_time_evictor_before_and_after(anyio_backend: str) -> None:
    for after in (False, True):
        spec = process(
            assigner=TumblingEventTimeWindows.of(100),
            trigger=ContinuousEventTimeTrigger.of(50),
            evictor=TimeEvictor.of(20, do_evict_after=after),
        )
        rig = await Rig(spec).open()
        for ts in (1, 10, 30, 35):
            await rig.element(("a", ts), ts)
        first = await rig.watermark(50)
        # TimeEvictor keeps elements within 20 ms of the newest (35): 30 and 35.
        assert first == [("a", 0, 100, [1, 10, 30, 35] if after else [30, 35])], after
        await rig.element(("a", 60), 60)
        assert await rig.watermark(99) == [("a", 0, 100, [60] if not after else [30, 35, 60])]


# --- window functions --------------------------------------------------------------------


class Count(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, acc_a: int, acc_b: int) -> int:
        return acc_a + acc_b


class Apply(WindowFunction):
    def apply(self, k: Any, window: TimeWindow, inputs: Any) -> Any:
        return [(k, window.start, list(inputs))]


class Process(ProcessWindowFunction):
    def process(self, k: Any, context: Any, elements: Any) -> Any:
        yield (k, context.window().start, list(elements))


def total(a: Any, b: Any) -> Any:
    return (a[0], a[1] + b[1])


@pytest.mark.parametrize(
    ("kind", "function", "window_function", "expected"),
    [
        ("reduce", total, None, [("a", 6), ("b", 5)]),
        ("reduce", total, Apply(), [("a", 0, [("a", 6)]), ("b", 0, [("b", 5)])]),
        ("reduce", total, Process(), [("a", 0, [("a", 6)]), ("b", 0, [("b", 5)])]),
        ("aggregate", Count(), None, [3, 1]),
        ("aggregate", Count(), Apply(), [("a", 0, [3]), ("b", 0, [1])]),
        ("aggregate", Count(), Process(), [("a", 0, [3]), ("b", 0, [1])]),
        ("apply", Apply(), None, [("a", 0, [("a", 1), ("a", 2), ("a", 3)]), ("b", 0, [("b", 5)])]),
    ],
)
async def test_reduce_aggregate_apply_with_and_without_a_window_function(
    anyio_backend: str, kind: str, function: Any, window_function: Any, expected: list[Any]
) -> None:
    spec = WindowSpec(
        assigner=TumblingEventTimeWindows.of(10),
        kind=kind,
        function=function,
        window_function=window_function,
    )
    rig = await Rig(spec).open()
    for record in (("a", 1), ("b", 5), ("a", 2), ("a", 3)):
        await rig.element(record, record[1])
    if kind in ("reduce", "aggregate"):
        # Incremental: one accumulator per (key, window), not the elements.
        rig.backend.set_current_key("a")
        contents = rig.op._contents.value()
        assert contents == {TimeWindow(0, 10): ("a", 6) if kind == "reduce" else 3}
    await rig.watermark(9)
    assert sorted(v for v, _ in rig.out) == sorted(expected)
    assert {ts for _, ts in rig.out} == {9}
    assert rig.held() == 0


class Stateful(ProcessWindowFunction):
    """Counts firings per window (``window_state``) and per key (``global_state``)."""

    def __init__(self) -> None:
        self.cleared: list[Any] = []

    def process(self, k: Any, context: Any, elements: Any) -> Any:
        per_window = context.window_state().get_state(ValueStateDescriptor("fired"))
        per_key = context.global_state().get_state(ValueStateDescriptor("fired"))
        per_window.update((per_window.value() or 0) + 1)
        per_key.update((per_key.value() or 0) + 1)
        yield (k, context.window().start, per_window.value(), per_key.value())

    def clear(self, context: Any) -> None:
        state = context.window_state().get_state(ValueStateDescriptor("fired"))
        self.cleared.append((context.window(), state.value()))
        state.clear()


async def test_window_state_is_per_window_global_state_per_key_and_clear_runs(
    anyio_backend: str,
) -> None:
    function = Stateful()
    spec = process(function, assigner=TumblingEventTimeWindows.of(10), allowed_lateness=10)
    rig = await Rig(spec).open()
    await rig.element(("a", 1), 1)
    await rig.element(("a", 11), 11)
    await rig.watermark(9)
    await rig.element(("a", 2), 2)  # a late firing of [0, 10)
    await rig.watermark(19)
    assert [v for v, _ in rig.out] == [("a", 0, 1, 1), ("a", 0, 2, 2), ("a", 10, 1, 3)]
    # clear(context) ran at [0, 10)'s cleanup (9 + 10), with the window's state still there.
    assert function.cleared == [(TimeWindow(0, 10), 2)]
    await rig.watermark(29)
    assert function.cleared == [(TimeWindow(0, 10), 2), (TimeWindow(10, 20), 1)]
    # The window state went with the windows; the global state stays (per key).
    await rig.element(("a", 21), 21)
    await rig.watermark(29 + 10)
    assert rig.out[-1][0] == ("a", 20, 1, 4)
    rig.backend.set_current_key("a")
    assert rig.backend.keys("_window/user/fired") == []
    assert rig.backend.get_state(ValueStateDescriptor("fired")).value() == 4


# --- snapshot and restore at another parallelism -----------------------------------------


KEYS = [f"k{i}" for i in range(24)]


def hashable(result: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*result[:-1], tuple(result[-1]))


def owner(k: str, parallelism: int) -> int:
    return subtask_for_key_group(assign_to_key_group(k, MAXP), parallelism, MAXP)


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 1), (1, 2)])
async def test_snapshot_mid_window_restores_at_another_parallelism(
    anyio_backend: str, before: int, after: int
) -> None:
    def spec() -> WindowSpec:
        return process(assigner=TumblingEventTimeWindows.of(100), allowed_lateness=0)

    rigs = [await Rig(spec(), subtask=i, parallelism=before).open() for i in range(before)]
    expected: Counter[Any] = Counter()
    for k in KEYS:
        rig = next(r for r in rigs if r.owns(k))
        for ts in (5, 150):
            await rig.element((k, ts), ts)
    for rig in rigs:
        await rig.watermark(99)  # [0, 100) fires before the snapshot, never after it
    fired_before = Counter(hashable(v) for rig in rigs for v, _ in rig.out)
    assert fired_before == Counter((k, 0, 100, (5,)) for k in KEYS)
    chunks: dict[int, bytes] = {}
    for rig in rigs:
        chunks.update(await rig.snapshot())
    for k in KEYS:  # after the snapshot: in no restored window
        await next(r for r in rigs if r.owns(k)).element((k, 160), 160)

    restored = [
        await Rig(spec(), subtask=i, parallelism=after, restore=chunks).open() for i in range(after)
    ]
    for k in KEYS:
        rig = next(r for r in restored if r.owns(k))
        await rig.element((k, 170), 170)
        expected[(k, 100, 200, (150, 170))] += 1
    for rig in restored:
        await rig.watermark(10_000)
        for (k, *_), _ in rig.out:
            assert owner(k, after) == rig.subtask
        assert rig.held() == 0
    assert Counter(hashable(v) for rig in restored for v, _ in rig.out) == expected
