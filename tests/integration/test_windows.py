"""Windows end to end: assigners, triggers, lateness, window functions, merging sessions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import anyio
import pytest

from streamlet import (
    AggregateFunction,
    CountEvictor,
    CountTrigger,
    EventTimeSessionWindows,
    GlobalWindows,
    ManualClock,
    OutputTag,
    ProcessFunction,
    ProcessingTimeTrigger,
    ProcessWindowFunction,
    PushSource,
    SlidingEventTimeWindows,
    StreamExecutionEnvironment,
    Time,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
    WindowFunction,
)
from streamlet.testing import TestingSource

pytestmark = pytest.mark.anyio


def _env(parallelism: int = 2) -> StreamExecutionEnvironment:
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


class Punctuated(WatermarkGenerator):
    """A watermark ``ts - 1`` after every event: watermarks move record by record."""

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(event_timestamp - 1))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


def _timed(records: list[tuple[str, int]], *, punctuated: bool = False) -> Any:
    strategy = (
        WatermarkStrategy.for_generator(Punctuated)
        if punctuated
        else WatermarkStrategy.for_monotonous_timestamps()
    )
    return strategy.with_timestamp_assigner(lambda r, _ts: r[1])


class Collect(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        window = context.window()
        yield (key, window.start, window.end, sorted(e[1] for e in elements))


async def test_tumbling_event_time_windows_count_per_key(anyio_backend: str) -> None:
    records = [(f"k{i % 3}", i * 100) for i in range(30)]  # ts 0..2900
    env = _env()
    out: list[Any] = []
    (
        env.from_source(TestingSource(records, batch_size=4), _timed(records), "src")
        .set_parallelism(1)
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .process(Collect())
        .add_sink(out.append)
    )
    await env.execute("tumbling")
    expected = defaultdict(list)
    for key, ts in records:
        expected[(key, ts // 1000 * 1000)].append(ts)
    assert sorted(out) == sorted(
        (key, start, start + 1000, sorted(tss)) for (key, start), tss in expected.items()
    )


class Sum(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, acc_a: int, acc_b: int) -> int:
        return acc_a + acc_b


class WithWindow(WindowFunction):
    def apply(self, key: Any, window: TimeWindow, inputs: Any) -> Any:
        return [(key, window.start, window.end, *inputs)]


async def test_sliding_windows_aggregate_with_a_window_function(anyio_backend: str) -> None:
    records = [("a", ts) for ts in (0, 400, 900, 1500, 2600)]
    env = _env(1)
    out: list[Any] = []
    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(_timed(records))
        .key_by(lambda r: r[0])
        .window(SlidingEventTimeWindows.of(Time.seconds(2), Time.seconds(1)))
        .aggregate(Sum(), WithWindow())
        .add_sink(out.append)
    )
    await env.execute("sliding")
    counts = {(start, end): n for _, start, end, n in out}
    assert counts == {(-1000, 1000): 3, (0, 2000): 4, (1000, 3000): 2, (2000, 4000): 1}


async def test_window_results_carry_the_window_end_as_timestamp(anyio_backend: str) -> None:
    records = [("a", ts) for ts in (5, 15, 16, 25)]
    env = _env(1)
    stamps: list[Any] = []

    class ReadTimestamp(ProcessFunction):
        def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
            yield (ctx.timestamp(), value)

    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(_timed(records))
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(10))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .process(ReadTimestamp())
        .add_sink(stamps.append)
    )
    await env.execute("reduce")
    assert sorted(stamps) == [(9, ("a", 5)), (19, ("a", 31)), (29, ("a", 25))]


async def test_sessions_merge_and_a_late_element_bridges_two(anyio_backend: str) -> None:
    # Gap 10: sessions [0,15) (0 and 5) and [25,35) (25) fire once the watermark passes
    # them; then 15 comes, late but within the allowed lateness, and its window [15,25)
    # touches both: one session [0,35), fired at once (the watermark is past its end).
    records = [("a", 0), ("a", 5), ("a", 25), ("a", 100), ("a", 15)]
    env = _env(1)
    out: list[Any] = []
    (
        env.from_source(TestingSource(records, batch_size=1), _timed(records, punctuated=True))
        .key_by(lambda r: r[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(10)))
        .allowed_lateness(1000)
        .process(Collect())
        .add_sink(out.append)
    )
    await env.execute("sessions")
    assert out == [
        ("a", 0, 15, [0, 5]),
        ("a", 25, 35, [25]),
        ("a", 0, 35, [0, 5, 15, 25]),
        ("a", 100, 110, [100]),
    ]


async def test_late_elements_go_to_the_side_output(anyio_backend: str) -> None:
    records = [("a", 0), ("a", 50), ("a", 5), ("a", 60)]
    env = _env(1)
    out: list[Any] = []
    late_out: list[Any] = []
    late = OutputTag("late")
    windows = (
        env.from_source(TestingSource(records, batch_size=1), _timed(records, punctuated=True))
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(10))
        .side_output_late_data(late)
        .process(Collect())
    )
    windows.add_sink(out.append)
    windows.get_side_output(late).add_sink(late_out.append)
    await env.execute("late")
    assert late_out == [("a", 5)]
    assert sorted(out) == [("a", 0, 10, [0]), ("a", 50, 60, [50]), ("a", 60, 70, [60])]


async def test_count_windows_tumbling_and_sliding(anyio_backend: str) -> None:
    env = _env(1)
    tumbling: list[Any] = []
    sliding: list[Any] = []
    stream = env.from_collection(list(range(7))).key_by(lambda v: "k")
    stream.count_window(3).reduce(lambda a, b: a + b).add_sink(tumbling.append)
    env.from_collection(list(range(6))).key_by(lambda v: "k").count_window(3, 2).reduce(
        lambda a, b: a + b
    ).add_sink(sliding.append)
    await env.execute("counts")
    assert tumbling == [0 + 1 + 2, 3 + 4 + 5]  # the last partial window never fires
    assert sliding == [0 + 1, 1 + 2 + 3, 3 + 4 + 5]


async def test_window_all_runs_in_one_subtask(anyio_backend: str) -> None:
    records = [(f"k{i % 5}", i) for i in range(40)]
    env = _env(4)
    out: list[Any] = []

    class Total:
        def process(self, context: Any, elements: Any) -> Any:
            yield (context.window().start, len(list(elements)))

    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(_timed(records))
        .window_all(TumblingEventTimeWindows.of(10))
        .process(Total())
        .add_sink(out.append)
    )
    await env.execute("all")
    assert sorted(out) == [(0, 10), (10, 10), (20, 10), (30, 10)]


async def test_global_windows_with_a_count_trigger_and_evictor(anyio_backend: str) -> None:
    env = _env(1)
    out: list[Any] = []
    (
        env.from_collection(list(range(10)))
        .key_by(lambda v: v % 2)
        .window(GlobalWindows.create())
        .trigger(CountTrigger.of(2))
        .evictor(CountEvictor.of(3))
        .reduce(lambda a, b: a + b)
        .add_sink(out.append)
    )
    await env.execute("global")
    # Evens fire after 0,2 (0+2) and after 4,6 with the last three kept (2+4+6); 8 waits
    # for a second element that never comes (a global window never ends). Odds alike.
    assert sorted(out) == [2, 4, 12, 15]


class SeenTrigger(ProcessingTimeTrigger):
    """ProcessingTimeTrigger that notes each element it sees (so a test knows the window
    operator has it before moving the clock)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_element(self, element: Any, timestamp: Any, window: Any, ctx: Any) -> Any:
        self.seen.append(element)
        return super().on_element(element, timestamp, window, ctx)

    def __deepcopy__(self, memo: Any) -> SeenTrigger:
        return self  # one subtask: the test reads the same list


async def _until(condition: Any) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0.001)


async def test_processing_time_windows_fire_with_the_injected_clock(anyio_backend: str) -> None:
    clock = ManualClock(1_000)
    env = _env(1).set_processing_time_clock(clock)
    out: list[Any] = []
    trigger = SeenTrigger()
    source = PushSource()
    (
        env.from_source(source)
        .key_by(lambda v: v[0])
        .window(TumblingProcessingTimeWindows.of(100))
        .trigger(trigger)
        .process(Collect())
        .add_sink(out.append)
    )
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("processing", task_group=tg)
        await source.push(("a", 1))
        await source.push(("a", 2))
        await _until(lambda: len(trigger.seen) == 2)  # in [1000, 1100)
        clock.set_time(1_050)
        await source.push(("b", 3))
        await _until(lambda: len(trigger.seen) == 3)
        assert out == []  # nothing is due before 1099
        clock.set_time(1_100)
        await _until(lambda: len(out) == 2)
        await source.push(("a", 4))  # in [1100, 1200): never fires, the job ends first
        await _until(lambda: len(trigger.seen) == 4)
        await source.close()
        await client.wait()
    assert sorted(out) == [("a", 1000, 1100, [1, 2]), ("b", 1000, 1100, [3])]


async def test_event_time_windows_without_timestamps_fail_with_flinks_hint(
    anyio_backend: str,
) -> None:
    from streamlet import JobExecutionError

    env = _env(1)
    (
        env.from_collection([("a", 1)])
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(10))
        .reduce(lambda a, b: a)
        .add_sink(lambda _: None)
    )
    with pytest.raises(JobExecutionError, match="assign_timestamps_and_watermarks") as info:
        await env.execute("no timestamps")
    assert "Window(Reduce)" in str(info.value)
