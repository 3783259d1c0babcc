"""Joins in jobs: interval joins, window joins and co-groups against brute force."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import anyio
import pytest

from streamlet import (
    CoGroupFunction,
    CountTrigger,
    DataStream,
    Duration,
    FlatJoinFunction,
    JoinFunction,
    ProcessFunction,
    ProcessJoinFunction,
    RuntimeContext,
    SlidingEventTimeWindows,
    StreamExecutionEnvironment,
    Time,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from streamlet.testing import TestingSource

pytestmark = pytest.mark.anyio

Record = tuple[int, str, int]  # (key, id, timestamp)
OUT_OF_ORDER = 5


def records(seed: int, name: str, n: int = 150, keys: int = 4) -> list[Record]:
    """n records of ``keys`` keys, timestamps rising with jitter of up to OUT_OF_ORDER ms."""
    rng = random.Random(f"{seed}-{name}")
    return [
        (rng.randrange(keys), f"{name}{i}", i + rng.randrange(OUT_OF_ORDER + 1)) for i in range(n)
    ]


def timed(env: StreamExecutionEnvironment, items: list[Any], batch_size: int = 7) -> DataStream:
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(OUT_OF_ORDER)
    ).with_timestamp_assigner(lambda r, _ts: r[2])
    return env.from_source(TestingSource(items, batch_size=batch_size), strategy)


class WithTimestamp(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        yield (value, ctx.timestamp())


async def collect(stream: DataStream) -> list[Any]:
    with anyio.fail_after(30):
        async with stream.process(WithTimestamp()).execute_and_collect() as results:
            return sorted([r async for r in results])


def key(r: Record) -> int:
    return r[0]


# --- interval join ---


class Pair(ProcessJoinFunction):
    def process_element(self, left: Record, right: Record, ctx: Any) -> Any:
        yield (left[1], right[1])


def interval_reference(
    lefts: list[Record], rights: list[Record], lo: int, hi: int
) -> list[tuple[Any, int]]:
    return sorted(
        ((a[1], b[1]), max(a[2], b[2]))
        for a in lefts
        for b in rights
        if a[0] == b[0] and lo <= b[2] - a[2] <= hi
    )


@pytest.mark.parametrize("parallelism", [1, 3])
@pytest.mark.parametrize("seed", range(2))
async def test_an_interval_join_in_a_job_equals_brute_force(
    anyio_backend: str, parallelism: int, seed: int
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_config().set_auto_watermark_interval(1)
    lefts, rights = records(seed, "l"), records(seed, "r")
    joined = (
        timed(env, lefts, 7)
        .key_by(key)
        .interval_join(timed(env, rights, 5).key_by(key))
        .between(Time.milliseconds(-3), Duration.of_millis(4))
        .upper_bound_exclusive()
        .process(Pair())
    )
    assert await collect(joined) == interval_reference(lefts, rights, -3, 3)


async def test_an_interval_join_of_records_without_timestamps_fails_naming_the_fix(
    anyio_backend: str,
) -> None:
    from streamlet import JobExecutionError

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    a = env.from_collection([(1, "a", 1)]).key_by(key)
    b = env.from_collection([(1, "b", 1)]).key_by(key)
    joined = a.interval_join(b).between(-1, 1).process(Pair())
    with pytest.raises(JobExecutionError, match="Interval Join") as info:
        async with joined.execute_and_collect() as out:
            _ = [r async for r in out]
    assert "assign_timestamps_and_watermarks" in str(info.value.__cause__)


def test_interval_join_refuses_what_flink_refuses() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    a = env.from_collection([1])
    b = env.from_collection([2])
    with pytest.raises(TypeError, match="two keyed streams"):
        a.interval_join(b.key_by(lambda x: x))
    with pytest.raises(TypeError, match="the right one is not keyed"):
        a.key_by(lambda x: x).interval_join(b)
    with pytest.raises(ValueError, match="lower <= upper"):
        a.key_by(lambda x: x).interval_join(b.key_by(lambda x: x)).between(5, 4)
    with pytest.raises(TypeError, match="Duration, Time"):
        a.key_by(lambda x: x).interval_join(b.key_by(lambda x: x)).between(1.5, 4)
    joined = a.key_by(lambda x: x).interval_join(b.key_by(lambda x: x)).between(0, 1)
    with pytest.raises(TypeError, match="needs an instance"):
        joined.process(Pair)
    with pytest.raises(TypeError, match="ProcessJoinFunction"):
        joined.process(42)
    with pytest.raises(TypeError, match="OutputTag"):
        joined.side_output_left_late_data("late")  # type: ignore[arg-type]


# --- window join and co-group ---


def window_of(ts: int, size: int, slide: int) -> list[int]:
    """The starts of the windows (size, slide) that hold ``ts``."""
    last = ts - ts % slide
    return [start for start in range(last, ts - size, -slide)]


def grouped(items: list[Record], size: int, slide: int) -> dict[tuple[int, int], list[Record]]:
    groups: dict[tuple[int, int], list[Record]] = defaultdict(list)
    for r in items:
        for start in window_of(r[2], size, slide):
            groups[(r[0], start)].append(r)
    return groups


class Joined(JoinFunction):
    def join(self, first: Record, second: Record) -> Any:
        return (first[1], second[1])


class Counts(CoGroupFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.opened = True

    def co_group(self, first: list[Record], second: list[Record]) -> Any:
        assert self.opened
        keys = {r[0] for r in first + second}
        assert len(keys) == 1
        yield (keys.pop(), sorted(r[1] for r in first), sorted(r[1] for r in second))


ASSIGNERS = [
    ("tumbling", 10, 10, TumblingEventTimeWindows.of(Time.milliseconds(10))),
    ("sliding", 12, 4, SlidingEventTimeWindows.of(Time.milliseconds(12), Time.milliseconds(4))),
]


@pytest.mark.parametrize(("name", "size", "slide", "assigner"), ASSIGNERS)
async def test_a_window_join_equals_brute_force(
    anyio_backend: str, name: str, size: int, slide: int, assigner: Any
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    firsts, seconds = records(1, "a", 80), records(1, "b", 60)
    joined = (
        timed(env, firsts)
        .join(timed(env, seconds))
        .where(key)
        .equal_to(key)
        .window(assigner)
        .apply(Joined())
    )
    g1, g2 = grouped(firsts, size, slide), grouped(seconds, size, slide)
    expected = sorted(
        ((a[1], b[1]), start + size - 1)
        for group, items in g1.items()
        for a in items
        for b in g2.get(group, [])
        for start in [group[1]]
    )
    assert await collect(joined) == expected


@pytest.mark.parametrize(("name", "size", "slide", "assigner"), ASSIGNERS)
async def test_a_co_group_sees_every_window_also_those_of_one_side(
    anyio_backend: str, name: str, size: int, slide: int, assigner: Any
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(3)
    firsts, seconds = records(2, "a", 70, keys=5), records(2, "b", 40, keys=5)
    grouped_stream = (
        timed(env, firsts)
        .co_group(timed(env, seconds))
        .where(key)
        .equal_to(key)
        .window(assigner)
        .apply(Counts())
    )
    g1, g2 = grouped(firsts, size, slide), grouped(seconds, size, slide)
    expected = sorted(
        (
            (k, sorted(r[1] for r in g1.get((k, s), [])), sorted(r[1] for r in g2.get((k, s), []))),
            s + size - 1,
        )
        for k, s in set(g1) | set(g2)
    )
    got = await collect(grouped_stream)
    assert got == expected
    assert any(not a for (_, a, _), _ in got) and any(not b for (_, _, b), _ in got)


async def test_a_flat_join_and_plain_callables(anyio_backend: str) -> None:
    class Both(FlatJoinFunction):
        def join(self, first: Record, second: Record) -> Any:
            yield first[1]
            yield second[1]

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    items = [(1, "x", 1), (1, "y", 2)]
    window = TumblingEventTimeWindows.of(Time.milliseconds(10))
    flat = timed(env, items).join(timed(env, items)).where(key).equal_to(key).window(window)
    plain = timed(env, items).co_group(timed(env, items)).where(key).equal_to(key).window(window)
    stream = flat.apply(Both()).union(
        plain.apply(lambda a, b: [f"{len(a)}x{len(b)}"]),
        timed(env, items)
        .join(timed(env, items))
        .where(key)
        .equal_to(key)
        .window(window)
        .apply(lambda a, b: a[1] + b[1]),
    )
    got = await collect(stream)
    assert got == sorted(
        [(v, 9) for v in ["x", "x", "x", "y", "y", "x", "y", "y"]]
        + [("2x2", 9)]
        + [(v, 9) for v in ["xx", "xy", "yx", "yy"]]
    )


async def test_a_window_join_with_a_trigger_fires_early(anyio_backend: str) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    items = [(1, "x", 1), (1, "y", 2)]
    window = TumblingEventTimeWindows.of(Time.milliseconds(10))
    joined = (
        timed(env, items[:1])
        .co_group(timed(env, items[1:]))
        .where(key)
        .equal_to(key)
        .window(window)
        .trigger(CountTrigger.of(1))
        .allowed_lateness(0)
        .apply(lambda a, b: [(len(a), len(b))])
    )
    got = [value for value, _ in await collect(joined)]
    assert sorted(got) in ([(0, 1), (1, 1)], [(1, 0), (1, 1)])  # one firing per element


def test_window_joins_refuse_steps_out_of_order() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    a = env.from_collection([1])
    b = env.from_collection([2])
    window = TumblingEventTimeWindows.of(Time.milliseconds(10))
    with pytest.raises(TypeError, match=r"where\(key_selector\) first"):
        a.join(b).equal_to(lambda x: x)
    with pytest.raises(TypeError, match=r"equal_to\(key_selector\) after where"):
        a.join(b).where(lambda x: x).window(window)
    with pytest.raises(TypeError, match=r"window\(assigner\) first"):
        a.co_group(b).where(lambda x: x).equal_to(lambda x: x).apply(lambda x, y: [])
    with pytest.raises(TypeError, match="WindowAssigner"):
        a.join(b).where(lambda x: x).equal_to(lambda x: x).window(10)
    with pytest.raises(TypeError, match="DataStream"):
        a.join([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="synchronous"):

        async def join(x: Any, y: Any) -> Any:
            return x

        a.join(b).where(lambda x: x).equal_to(lambda x: x).window(window).apply(join)
    with pytest.raises(TypeError, match="key_by"):
        a.co_group(b).where(42)
