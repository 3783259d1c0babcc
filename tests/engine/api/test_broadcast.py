"""The broadcast state pattern in jobs (issue 15): ``events.connect(rules.broadcast(d))``.

Rules pushed before, between and after events apply to exactly the events after them, on
every subtask (the test pushes each step only once the job has acknowledged the one before,
so the order is deterministic); every subtask at p=3 sees every rule once and in order; the
keyed variant keeps each key on one subtask; wrong functions and descriptors are refused
when the job is built, and a write on the event side fails the job naming the operator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from streamlet import (
    BroadcastConnectedStream,
    BroadcastProcessFunction,
    BroadcastStream,
    DataStream,
    JobExecutionError,
    KeyedBroadcastProcessFunction,
    MapStateDescriptor,
    PushSource,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from tests.helpers import env_with, run_and_collect

pytestmark = pytest.mark.anyio

RULES = MapStateDescriptor("rules")


class Board:
    """What the job's subtasks report to the test: shared, not copied with the function
    (every subtask's copy of the function reports here), and awaitable."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._changed = anyio.Event()

    def __deepcopy__(self, memo: dict[int, Any]) -> Board:
        return self

    def note(self, item: Any) -> None:
        self.seen.append(item)
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, done: Callable[[list[Any]], bool]) -> None:
        with anyio.fail_after(10):
            while not done(self.seen):
                await self._changed.wait()


class ApplyFactor(KeyedBroadcastProcessFunction):
    """Event (key, value) -> (key, value * factor, subtask); a rule is a factor; every
    subtask acknowledges each rule with ("rule", subtask, factor)."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: Any, ctx: Any) -> Any:
        factor = ctx.get_broadcast_state(RULES).get("factor")
        yield (value[0], None if factor is None else value[1] * factor, self.subtask)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put("factor", value)
        yield ("rule", self.subtask, value)


def _events(board: Board) -> list[Any]:
    return [item for item in board.seen if item[0] != "rule"]


async def test_rules_before_between_and_after_events_apply_to_the_events_after_them() -> None:
    env = env_with(3)
    board = Board()
    rules, events = PushSource(), PushSource()
    connected = (
        env.from_source(events)
        .key_by(lambda e: e[0])
        .connect(env.from_source(rules).broadcast(RULES))
    )
    assert isinstance(connected, BroadcastConnectedStream) and connected.keyed
    connected.process(ApplyFactor()).add_sink(board.note)
    client = await env.execute_async("rules")

    async def acknowledged(rule_count: int) -> None:
        await board.until(lambda seen: sum(i[0] == "rule" for i in seen) == 3 * rule_count)

    async def processed(event_count: int) -> None:
        await board.until(lambda seen: len(_events(board)) == event_count)

    keys = [f"k{i}" for i in range(12)]
    await rules.push(2)  # before any event
    await acknowledged(1)
    await events.push_many([(k, 1) for k in keys])
    await processed(12)
    await rules.push(5)  # between events
    await acknowledged(2)
    await events.push_many([(k, 10) for k in keys])
    await processed(24)
    await rules.push(7)  # after the events
    await acknowledged(3)
    rules.end()
    events.end()
    with anyio.fail_after(10):
        await client.wait()
    out = _events(board)
    assert [value for _, value, _ in out] == [2] * 12 + [50] * 12
    assert sorted(key for key, _, _ in out) == sorted(keys * 2)
    # Every subtask saw every rule, in order.
    acks = [item for item in board.seen if item[0] == "rule"]
    for subtask in range(3):
        assert [rule for _, s, rule in acks if s == subtask] == [2, 5, 7]
    # Keyed events: each key on one subtask, and the work spread over the subtasks.
    placement = {(key, subtask) for key, _, subtask in out}
    assert len(placement) == len(keys)
    assert len({subtask for _, subtask in placement}) > 1


class Ack(BroadcastProcessFunction):
    """Each subtask reports every rule it receives, and each event with the rules then."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: Any, ctx: Any) -> Any:
        yield ("event", value, sorted(ctx.get_broadcast_state(RULES).keys()))

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put(value, True)
        yield ("rule", self.subtask, value)


@pytest.mark.parametrize("rules_parallelism", [1, 2])
async def test_every_subtask_at_p3_sees_every_rule_once(rules_parallelism: int) -> None:
    env = env_with(3)
    rules = (
        env.from_collection([f"r{i}" for i in range(10)])
        .map(str)
        .set_parallelism(rules_parallelism)
    )
    events = env.from_collection(list(range(30))).rebalance().map(int)
    broadcast = rules.broadcast(RULES)
    assert isinstance(broadcast, BroadcastStream)
    out = await run_and_collect(env, events.connect(broadcast).process(Ack()))
    acks = Counter((s, rule) for kind, s, rule in out if kind == "rule")
    assert acks == Counter((s, f"r{i}") for s in range(3) for i in range(10))
    # The events keep their partitioning: each once, whatever the rules were then.
    assert sorted(value for kind, value, _ in out if kind == "event") == list(range(30))


class WritesOnTheEventSide(BroadcastProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put("k", value)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        return None


async def test_a_write_on_the_event_side_fails_the_job_naming_the_operator() -> None:
    env = env_with(2)
    events = env.from_collection([1, 2, 3])
    rules = env.from_collection(["r"])
    events.connect(rules.broadcast(RULES)).process(WritesOnTheEventSide()).name("rules-op")
    with pytest.raises(JobExecutionError, match=r"rules-op.*read-only.*process_broadcast_element"):
        await env.execute("fails")


class Keyed(KeyedBroadcastProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        return None

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        return None


class Plain(BroadcastProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        return None

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        return None


def _streams() -> tuple[StreamExecutionEnvironment, DataStream, DataStream]:
    env = StreamExecutionEnvironment.get_execution_environment()
    return env, env.from_collection([1]), env.from_collection(["r"])


def test_broadcast_without_descriptors_stays_the_partitioner() -> None:
    _, _, rules = _streams()
    assert isinstance(rules.broadcast(), DataStream)


def test_broadcast_refuses_what_is_not_a_map_state_descriptor_or_repeats_a_name() -> None:
    _, _, rules = _streams()
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        rules.broadcast(ValueStateDescriptor("v"))  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="one name"):
        rules.broadcast(RULES, MapStateDescriptor("rules"))


def test_process_refuses_functions_that_do_not_fit_the_events() -> None:
    _, events, rules = _streams()
    with pytest.raises(TypeError, match="need keyed events"):
        events.connect(rules.broadcast(RULES)).process(Keyed())
    with pytest.raises(TypeError, match="events are keyed; use a KeyedBroadcastProcessFunction"):
        events.key_by(lambda x: x).connect(rules.broadcast(RULES)).process(Plain())
    with pytest.raises(
        TypeError, match=r"lacks process_element\(\) and process_broadcast_element\(\)"
    ):
        events.connect(rules.broadcast(RULES)).process(lambda value, ctx: None)
    with pytest.raises(TypeError, match="needs an instance"):
        events.connect(rules.broadcast(RULES)).process(Plain)
    other = StreamExecutionEnvironment.get_execution_environment().from_collection(["r"])
    with pytest.raises(ValueError, match="same execution environment"):
        events.connect(other.broadcast(RULES))
