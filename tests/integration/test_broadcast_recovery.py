"""Broadcast state through failovers and rescales (issue 15).

Failover: events wait in keyed state for the rule they name; each rule, on arrival, is put
into broadcast state and releases the events waiting for it (``apply_to_keyed_state``), so
the output does not depend on how rules and events interleave. Under seeded faults in the
operator and the sink (exactly-once) the committed output equals the failure-free run's: a
restored subtask has every rule its checkpoint covered, though only subtask 0 wrote them.

Rescale: a savepoint at p=2 restores at p=3, and that job's savepoint at p=1; every
subtask starts with the identical broadcast state (reported from ``initialize_state``) and
applies it, and the keyed state moves with its keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    BroadcastProcessFunction,
    FileSink,
    KeyedBroadcastProcessFunction,
    MapStateDescriptor,
    PushSource,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from streamlet.state import ListStateDescriptor
from streamlet.testing import TestingSource
from tests.engine.api.test_broadcast import Board
from tests.helpers import FaultyRun

pytestmark = pytest.mark.anyio

RULES = MapStateDescriptor("rules")
WAITING = ListStateDescriptor("waiting")
KEYS = 7
RULE_COUNT = 20


def factor(rule_id: int) -> int:
    return rule_id + 2


class ApplyWhenKnown(KeyedBroadcastProcessFunction):
    """An event (key, i, rule_id) -> "key,i,i*factor" once its rule is known; until then it
    waits in keyed state and the rule releases it."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.waiting = runtime_context.get_list_state(WAITING)

    def process_element(self, value: Any, ctx: Any) -> Any:
        known = ctx.get_broadcast_state(RULES).get(value[2])
        if known is None:
            self.waiting.add(value)
        else:
            yield f"{value[0]},{value[1]},{value[1] * known}"

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        rule_id, rule_factor = value
        ctx.get_broadcast_state(RULES).put(rule_id, rule_factor)
        released: list[str] = []

        def release(key: Any, waiting: Any) -> None:
            still = []
            for event in waiting.get():
                if event[2] == rule_id:
                    released.append(f"{event[0]},{event[1]},{event[1] * rule_factor}")
                else:
                    still.append(event)
            if still:
                waiting.update(still)
            else:
                waiting.clear()

        ctx.apply_to_keyed_state(WAITING, release)
        yield from released


def events(n: int) -> list[Any]:
    """n events (key, i, rule), a checkpoint awaited every 40 so that failures find some."""
    items: list[Any] = []
    for i in range(n):
        items.append((i % KEYS, i, (i * 7) % RULE_COUNT))
        if i % 40 == 39:
            items.append(TestingSource.AWAIT_CHECKPOINT())
    return items


def rules() -> list[Any]:
    items: list[Any] = []
    for rule_id in range(RULE_COUNT):
        items.append((rule_id, factor(rule_id)))
        if rule_id % 5 == 4:
            items.append(TestingSource.AWAIT_CHECKPOINT())
    return items


def expected(n: int) -> list[str]:
    return sorted(f"{i % KEYS},{i},{i * factor((i * 7) % RULE_COUNT)}" for i in range(n))


async def run(tmp_path: Path, n: int, seed: int | None) -> tuple[list[str], int]:
    faulty = FaultyRun(tmp_path / "out", seed, ["enrich", "sink"], max_record=n // 2)
    env = faulty.env
    event_stream = env.from_source(TestingSource(events(n), batch_size=8)).uid("events")
    rule_stream = env.from_source(TestingSource(rules(), batch_size=2)).uid("rules")
    (
        event_stream.key_by(lambda e: e[0])
        .connect(rule_stream.broadcast(RULES))
        .process(ApplyWhenKnown())
        .uid("enrich")
        .sink_to(FileSink(faulty.out))
        .uid("sink")
    )
    return await faulty.execute("enrich")


async def test_the_failure_free_run_is_the_reference(anyio_backend: str, tmp_path: Path) -> None:
    lines, restarts = await run(tmp_path, 400, None)
    assert restarts == 0
    assert sorted(lines) == expected(400)


@pytest.mark.parametrize("seed", range(4))
async def test_exactly_once_under_seeded_faults_equals_the_failure_free_run(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    lines, restarts = await run(tmp_path, 400, seed)
    assert restarts >= 1
    assert sorted(lines) == expected(400)  # nothing lost, nothing twice


# --- rescale ---

COUNT = ValueStateDescriptor("count", default_value=0)


class CountAndTag(KeyedBroadcastProcessFunction):
    """Counts events per key; tags each with the sorted rules of its subtask. Reports the
    broadcast state each subtask starts with, and acknowledges each rule."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def initialize_state(self, context: Any) -> None:
        store = context.get_operator_state_store()
        self.board.note(("restored", sorted(store.get_broadcast_state(RULES).items())))

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(COUNT)
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: Any, ctx: Any) -> Any:
        self.count.update(self.count.value() + 1)
        yield ("event", value, self.count.value(), sorted(ctx.get_broadcast_state(RULES).keys()))

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put(value, True)
        yield ("rule", self.subtask, value)


class Tag(BroadcastProcessFunction):
    """CountAndTag without keys (the events rebalanced): reports the broadcast state each
    subtask starts with, tags events with the rules, acknowledges each rule."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def initialize_state(self, context: Any) -> None:
        store = context.get_operator_state_store()
        self.board.note(("restored", sorted(store.get_broadcast_state(RULES).items())))

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: Any, ctx: Any) -> Any:
        yield ("event", value, None, sorted(ctx.get_broadcast_state(RULES).keys()))

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put(value, True)
        yield ("rule", self.subtask, value)


async def _phase(
    tmp_path: Path,
    parallelism: int,
    restore: str | None,
    new_rule: str,
    keys: list[str],
    keyed: bool = True,
) -> tuple[Board, str]:
    """Run at ``parallelism`` (restored from ``restore``): push ``new_rule``, wait until
    every subtask acknowledged it, push one event per key, wait, stop with a savepoint."""
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    board = Board()
    rule_source, event_source = PushSource(), PushSource()
    event_stream = env.from_source(event_source).uid("events")
    broadcast = env.from_source(rule_source).uid("rules").broadcast(RULES)
    if keyed:
        connected = event_stream.key_by(lambda e: e).connect(broadcast)
        tagged = connected.process(CountAndTag(board))
    else:
        tagged = event_stream.rebalance().connect(broadcast).process(Tag(board))
    tagged.uid("tagger").add_sink(board.note)
    client = await env.execute_async("rescale", restore=restore)
    await rule_source.push(new_rule)
    await board.until(lambda seen: sum(item[0] == "rule" for item in seen) == parallelism)
    await event_source.push_many(keys)
    await board.until(lambda seen: sum(item[0] == "event" for item in seen) == len(keys))
    with anyio.fail_after(10):
        path = await client.stop_with_savepoint(str(tmp_path / "savepoints"))
        await client.wait()
    return board, path


async def test_broadcast_state_restores_identical_on_every_subtask_at_p2_p3_p1(
    anyio_backend: str, tmp_path: Path
) -> None:
    keys = [f"k{i}" for i in range(10)]
    first, savepoint = await _phase(tmp_path, 2, None, "r1", keys)
    assert [item for item in first.seen if item[0] == "restored"] == [("restored", [])] * 2
    second, savepoint = await _phase(tmp_path, 3, savepoint, "r2", keys)
    # Each of the 3 subtasks started with the rule of the p=2 job (one copy, written once).
    assert [item for item in second.seen if item[0] == "restored"] == [
        ("restored", [("r1", True)])
    ] * 3
    tags = {tuple(item[3]) for item in second.seen if item[0] == "event"}
    assert tags == {("r1", "r2")}
    # Keyed state moved with its keys: every key's count went on from 1 to 2.
    assert sorted((item[1], item[2]) for item in second.seen if item[0] == "event") == [
        (k, 2) for k in sorted(keys)
    ]
    third, _ = await _phase(tmp_path, 1, savepoint, "r3", keys)
    assert [item for item in third.seen if item[0] == "restored"] == [
        ("restored", [("r1", True), ("r2", True)])
    ]
    assert {tuple(item[3]) for item in third.seen if item[0] == "event"} == {("r1", "r2", "r3")}
    assert sorted((item[1], item[2]) for item in third.seen if item[0] == "event") == [
        (k, 3) for k in sorted(keys)
    ]


async def test_non_keyed_broadcast_state_restores_identical_on_every_subtask(
    anyio_backend: str, tmp_path: Path
) -> None:
    # Without keyed state, subtasks other than 0 write no state at all for this operator.
    keys = [f"e{i}" for i in range(6)]
    _, savepoint = await _phase(tmp_path, 2, None, "r1", keys, keyed=False)
    second, savepoint = await _phase(tmp_path, 3, savepoint, "r2", keys, keyed=False)
    assert [item for item in second.seen if item[0] == "restored"] == [
        ("restored", [("r1", True)])
    ] * 3
    assert {tuple(item[3]) for item in second.seen if item[0] == "event"} == {("r1", "r2")}
    third, _ = await _phase(tmp_path, 1, savepoint, "r3", keys, keyed=False)
    assert [item for item in third.seen if item[0] == "restored"] == [
        ("restored", [("r1", True), ("r2", True)])
    ]
