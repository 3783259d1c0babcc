"""``a.connect(b)`` in jobs: co-map / co-flat-map / co-process, keyed and not (issue 15).

Every record of both inputs reaches its method once at any parallelism, connected keyed
streams meet per key on one subtask whatever the inputs' parallelisms, event-time timers of
a keyed co-process fire at the end of bounded inputs, and wrong functions are refused when
the job is built, naming what to do.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest

from streamlet import (
    CoFlatMapFunction,
    CoMapFunction,
    ConnectedStreams,
    Duration,
    KeyedCoProcessFunction,
    ManualClock,
    PushSource,
    RuntimeContext,
    StreamExecutionEnvironment,
    WatermarkStrategy,
)
from streamlet.operators.sources.collection import CollectionSource
from streamlet.state import ValueStateDescriptor
from tests.helpers import PARALLELISMS, env_with, run_and_collect

pytestmark = pytest.mark.anyio


class Tag(CoMapFunction):
    def map1(self, value: int) -> Any:
        return ("n", value)

    def map2(self, value: str) -> Any:
        return ("s", value)


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_co_map_sees_every_record_of_both_inputs_once(parallelism: int) -> None:
    env = env_with(parallelism)
    numbers = env.from_collection(list(range(200)))
    words = env.from_collection([f"w{i}" for i in range(50)]).rebalance().map(str.upper)
    connected = numbers.connect(words)
    assert isinstance(connected, ConnectedStreams) and not connected.keyed
    out = await run_and_collect(env, connected.map(Tag()))
    assert Counter(out) == Counter(
        [("n", i) for i in range(200)] + [("s", f"W{i}") for i in range(50)]
    )


class Running(CoFlatMapFunction):
    """A running count per key over both inputs."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", default_value=0))
        self.subtask = runtime_context.get_index_of_this_subtask()

    def flat_map1(self, value: tuple[str, int]) -> Any:
        self.count.update(self.count.value() + 1)
        yield (value[0], self.count.value(), self.subtask)

    def flat_map2(self, value: str) -> Any:
        self.count.update(self.count.value() + 1)
        yield (value, self.count.value(), self.subtask)


@pytest.mark.parametrize("style", ["key_by then connect", "connect then key_by"])
@pytest.mark.parametrize("parallelism", [1, 3])
async def test_connected_keyed_streams_meet_per_key_in_one_subtask_with_shared_state(
    parallelism: int, style: str
) -> None:
    env = env_with(parallelism)
    keys = [f"k{i}" for i in range(12)]
    # Inputs of other parallelisms than the operator's: records are routed by key.
    pairs = env.from_collection([(k, i) for i in range(5) for k in keys]).map(lambda t: t)
    pairs.set_parallelism(2)
    names = env.from_collection([k for _ in range(3) for k in keys])
    if style == "key_by then connect":
        connected = pairs.key_by(lambda t: t[0]).connect(names.key_by(lambda s: s))
    else:
        connected = pairs.connect(names).key_by(lambda t: t[0], lambda s: s)
    assert connected.keyed
    out = await run_and_collect(env, connected.flat_map(Running()))
    by_key: dict[str, list[tuple[int, int]]] = {}
    for key, count, subtask in out:
        by_key.setdefault(key, []).append((count, subtask))
    for key in keys:
        counts = sorted(c for c, _ in by_key[key])
        assert counts == list(range(1, 9))  # 5 + 3 records, one state for both inputs
        assert len({s for _, s in by_key[key]}) == 1  # one subtask per key


class Expire(KeyedCoProcessFunction):
    """Remembers the last order per key; a timer 10 ms after it reports it."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.last = runtime_context.get_state(ValueStateDescriptor("last"))

    def process_element1(self, value: tuple[str, int], ctx: Any) -> Any:
        self.last.update(value[1])
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)

    def process_element2(self, value: tuple[str, int], ctx: Any) -> Any:
        yield ("seen", ctx.get_current_key(), value[1], self.last.value())

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        yield ("timer", ctx.get_current_key(), timestamp)


async def test_keyed_co_process_timers_fire_by_the_watermark_of_both_inputs() -> None:
    env = env_with(2)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(0)
    ).with_timestamp_assigner(lambda value, _ts: value[1])
    orders = env.from_source(CollectionSource([("a", 1), ("b", 2), ("a", 30)]), strategy, "orders")
    probes = env.from_source(CollectionSource([("a", 100)]), strategy, "probes")
    out = await run_and_collect(
        env,
        orders.key_by(lambda t: t[0]).connect(probes.key_by(lambda t: t[0])).process(Expire()),
    )
    timers = sorted(item for item in out if item[0] == "timer")
    assert timers == [("timer", "a", 11), ("timer", "a", 40), ("timer", "b", 12)]
    assert [item for item in out if item[0] == "seen"] in (
        [("seen", "a", 100, 30)],
        [("seen", "a", 100, 1)],
        [("seen", "a", 100, None)],
    )


def test_connect_refuses_what_cannot_run_when_the_job_is_built() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    a, b = env.from_collection([1]), env.from_collection([2])
    with pytest.raises(TypeError, match="connect\\(\\) needs a DataStream, got 3"):
        a.connect(3)  # type: ignore[call-overload]
    other = StreamExecutionEnvironment.get_execution_environment().from_collection([1])
    with pytest.raises(ValueError, match="same execution environment"):
        a.connect(other)
    with pytest.raises(TypeError, match="they need both inputs keyed"):
        a.connect(b).process(Expire())
    with pytest.raises(TypeError, match="they need both inputs keyed"):
        a.key_by(lambda x: x).connect(b).process(Expire())
    with pytest.raises(TypeError, match=r"flat_map1\(\) and flat_map2\(\)"):
        a.connect(b).flat_map(Tag())
    with pytest.raises(TypeError, match="pass Tag\\(\\) instead"):
        a.connect(b).map(Tag)


class FireAt(KeyedCoProcessFunction):
    """A timer at each record's timestamp; reports it when it fires."""

    def process_element1(self, value: tuple[str, int], ctx: Any) -> Any:
        ctx.timer_service().register_event_time_timer(value[1])

    def process_element2(self, value: tuple[str, int], ctx: Any) -> Any:
        ctx.timer_service().register_event_time_timer(value[1])

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        yield (ctx.get_current_key(), timestamp)


async def test_an_idle_second_input_does_not_hold_back_the_first_ones_timers() -> None:
    clock = ManualClock(0)
    env = env_with(1).set_processing_time_clock(clock)
    env.get_config().set_auto_watermark_interval(10)

    def strategy() -> WatermarkStrategy:
        return (
            WatermarkStrategy.for_monotonous_timestamps()
            .with_timestamp_assigner(lambda value, _ts: value[1])
            .with_idleness(Duration.of_millis(50))
        )

    busy, silent = PushSource(), PushSource()  # the second input never sends a record
    fired: list[Any] = []
    (
        env.from_source(busy, strategy())
        .key_by(lambda r: r[0])
        .connect(env.from_source(silent, strategy()).key_by(lambda r: r[0]))
        .process(FireAt())
        .add_sink(fired.append)
    )
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("idle second input", task_group=tg)
        await busy.push(("a", 100))
        await busy.push(("a", 200))  # the first input's watermark: 199
        with anyio.fail_after(10):
            # The silent input has no watermark yet: it holds the timer back until it has
            # been idle for 50 ms of processing time, then only the first input counts.
            while not fired:
                assert clock.now_ms() <= 200, "the idle input held the watermark back"
                clock.advance(10)
                for _ in range(20):
                    await anyio.lowlevel.checkpoint()
        assert clock.now_ms() >= 50  # not before the idleness timeout
        assert fired == [("a", 100)]  # 200 waits for a watermark past it
        busy.end()
        silent.end()
        await client.wait()
    assert fired == [("a", 100), ("a", 200)]  # the end of the inputs fires the rest
