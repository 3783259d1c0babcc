"""The broadcast state pattern's operators (issue 15), driven through the two-input harnesses.

The events are the first input, the broadcast elements the second: the event side sees the
broadcast state read-only, the broadcast side writes it; on a keyed stream the event side has
its key, keyed state and timers, and the broadcast side reaches keyed state through
``apply_to_keyed_state``. Broadcast state is snapshotted by subtask 0 only and restored to
every subtask at any parallelism.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamlet import (
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    MapStateDescriptor,
    OutputTag,
    StreamRecord,
    TimeDomain,
    ValueStateDescriptor,
)
from streamlet.state import StateError
from streamlet.testing import KeyedTwoInputOperatorTestHarness, TwoInputOperatorTestHarness

pytestmark = pytest.mark.anyio

RULES = MapStateDescriptor("rules")
COUNT = ValueStateDescriptor("count")
REJECTED = OutputTag("rejected")


class Enrich(BroadcastProcessFunction):
    """Multiplies an event (key, value) by the factor of its key's rule; a rule is
    (key, factor), or (key, None) to remove it."""

    def process_element(self, value: Any, ctx: Any) -> Any:
        factor = ctx.get_broadcast_state(RULES).get(value[0])
        if factor is None:
            yield REJECTED, value
        else:
            yield (value[0], value[1] * factor, ctx.timestamp())

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        rules = ctx.get_broadcast_state(RULES)
        key, factor = value
        if factor is None:
            rules.remove(key)
        else:
            rules.put(key, factor)
        yield ("rule", key, factor)


def _harness(function: Any = None, **settings: Any) -> TwoInputOperatorTestHarness:
    return TwoInputOperatorTestHarness(
        function or Enrich(), broadcast_state_descriptors=[RULES], **settings
    )


async def test_rules_update_then_apply_to_later_events() -> None:
    harness = _harness()
    assert harness.kind == "broadcast_process"
    async with harness:
        await harness.process_element1(("a", 1), timestamp=5)
        assert await harness.process_element2(("a", 10), timestamp=6) == [("rule", "a", 10)]
        assert await harness.process_element1(("a", 2), timestamp=7) == [("a", 20, 7)]
        await harness.process_element2(("a", 100))
        await harness.process_element2(("b", 3))
        assert await harness.process_elements1([("a", 3), ("b", 4)]) == [
            ("a", 300, None),
            ("b", 12, None),
        ]
        await harness.process_element2(("a", None))
        assert await harness.process_element1(("a", 5)) == []
    # Side outputs come from the event side, with the event's timestamp.
    assert harness.get_side_output(REJECTED) == [StreamRecord(("a", 1), 5), StreamRecord(("a", 5))]
    # What the broadcast side emits carries the broadcast element's timestamp.
    assert StreamRecord(("rule", "a", 10), 6) in harness.get_output()


class WritesOnTheEventSide(BroadcastProcessFunction):
    def __init__(self, write: str) -> None:
        self.write = write

    def process_element(self, value: Any, ctx: Any) -> Any:
        state = ctx.get_broadcast_state(RULES)
        assert state.get("k") == 1 and state.contains("k") and "k" in state
        assert state.items() == [("k", 1)] and list(state) == ["k"] and not state.is_empty()
        assert state.keys() == ["k"] and state.values() == [1]
        {
            "put": lambda: state.put("k", 2),
            "put_all": lambda: state.put_all({"k": 2}),
            "remove": lambda: state.remove("k"),
            "clear": state.clear,
        }[self.write]()
        return []

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put("k", value)
        return []


@pytest.mark.parametrize("write", ["put", "put_all", "remove", "clear"])
async def test_the_event_side_sees_broadcast_state_read_only(write: str) -> None:
    async with _harness(WritesOnTheEventSide(write)) as harness:
        await harness.process_element2(1)
        with pytest.raises(StateError, match=rf"read-only.*{write}\(\).*process_broadcast_element"):
            await harness.process_element1("event")
        # Nothing was written: the next rule read still sees the value.
        assert harness.operator_state_backend.get_broadcast_state(RULES).get("k") == 1


class ReadsUndeclared(BroadcastProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(MapStateDescriptor("typo"))

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(ValueStateDescriptor("rules"))


async def test_a_broadcast_state_not_given_to_broadcast_is_refused_naming_the_declared() -> None:
    async with _harness(ReadsUndeclared()) as harness:
        with pytest.raises(StateError, match=r"'typo'.*declared: \['rules'\].*broadcast\(\.\.\.\)"):
            await harness.process_element1(1)
        with pytest.raises(StateError, match="not a broadcast state"):
            await harness.process_element2(1)


LIMITS = MapStateDescriptor("limits")


class TwoStates(BroadcastProcessFunction):
    """Rules and limits in two broadcast states, read alternately per event."""

    def process_element(self, value: Any, ctx: Any) -> Any:
        rule = ctx.get_broadcast_state(RULES).get(value)
        limit = ctx.get_broadcast_state(LIMITS).get(value)
        again = ctx.get_broadcast_state(MapStateDescriptor("rules")).get(value)  # equal, not same
        yield (value, rule, limit, again)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        kind, key, setting = value
        ctx.get_broadcast_state(RULES if kind == "rule" else LIMITS).put(key, setting)
        return []


async def test_several_broadcast_states_each_read_their_own_map() -> None:
    harness = TwoInputOperatorTestHarness(TwoStates(), broadcast_state_descriptors=[RULES, LIMITS])
    async with harness:
        await harness.process_elements2([("rule", "a", 1), ("limit", "a", 9), ("limit", "b", 8)])
        assert await harness.process_elements1(["a", "b"]) == [
            ("a", 1, 9, 1),
            ("b", None, 8, None),
        ]


async def test_a_broadcast_harness_needs_the_descriptors() -> None:
    with pytest.raises(ValueError, match="broadcast_state_descriptors"):
        TwoInputOperatorTestHarness(Enrich())
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        TwoInputOperatorTestHarness(Enrich(), broadcast_state_descriptors=[COUNT])


# --- keyed ---


class CountAndReset(KeyedBroadcastProcessFunction):
    """Counts events per key (keyed state); the broadcast element "double" doubles every
    key's count and "reset" clears the counts of keys in its set, both through
    apply_to_keyed_state; visits are recorded."""

    def __init__(self) -> None:
        self.visits: list[Any] = []

    def open(self, runtime_context: Any) -> None:
        self.count = runtime_context.get_state(COUNT)

    def process_element(self, value: Any, ctx: Any) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if value[1] == "clear":
            self.count.clear()
        yield (ctx.get_current_key(), n, ctx.get_broadcast_state(RULES).get("tag"))

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        command, argument = value
        if command == "tag":
            ctx.get_broadcast_state(RULES).put("tag", argument)
            return

        def visit(key: Any, state: Any) -> None:
            self.visits.append(key)
            if command == "double":
                state.update(state.value() * 2)
            elif key in argument:
                state.clear()

        ctx.apply_to_keyed_state(COUNT, visit)
        yield ("visited", sorted(self.visits))


def _keyed(function: Any = None, **settings: Any) -> KeyedTwoInputOperatorTestHarness:
    return KeyedTwoInputOperatorTestHarness(
        function or CountAndReset(), lambda e: e[0], broadcast_state_descriptors=[RULES], **settings
    )


async def test_apply_to_keyed_state_visits_every_key_with_state_once_and_updates_or_clears() -> (
    None
):
    function = CountAndReset()
    async with _keyed(function) as harness:
        assert harness.kind == "broadcast_process"
        await harness.process_elements1([("a", 1), ("b", 1), ("a", 1), ("c", 1), ("d", "clear")])
        # d's state was cleared: it has no value, so it is not visited.
        assert await harness.process_element2(("double", None)) == [("visited", ["a", "b", "c"])]
        function.visits.clear()
        await harness.process_element2(("reset", {"b"}))
        assert sorted(function.visits) == ["a", "b", "c"]
        function.visits.clear()
        await harness.process_element2(("double", None))
        assert sorted(function.visits) == ["a", "c"]
        await harness.process_element2(("tag", "t"))
        # a: 2 -> 4 -> 8, +1; b: cleared, starts again; c: 1 -> 2 -> 4, +1.
        assert await harness.process_elements1([("a", 1), ("b", 1), ("c", 1)]) == [
            ("a", 9, "t"),
            ("b", 1, "t"),
            ("c", 5, "t"),
        ]


class TouchesKeyedState(KeyedBroadcastProcessFunction):
    def open(self, runtime_context: Any) -> None:
        self.count = runtime_context.get_state(COUNT)

    def process_element(self, value: Any, ctx: Any) -> Any:
        self.count.update(1)
        return []

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        self.count.value()  # no key: the last event's key must not leak in
        return []


async def test_keyed_state_on_the_broadcast_side_is_refused_pointing_to_apply_to_keyed_state() -> (
    None
):
    async with _keyed(TouchesKeyedState()) as harness:
        await harness.process_element1(("a", 1))
        with pytest.raises(StateError, match=r"has no key.*apply_to_keyed_state"):
            await harness.process_element2("rule")


class Alarm(KeyedBroadcastProcessFunction):
    """Registers an event-time timer at the event's timestamp + 10; the timer emits the
    key with the broadcast "tag" as it is when the timer fires."""

    expected_watermark = -(2**63)

    def process_element(self, value: Any, ctx: Any) -> Any:
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
        return []

    def process_broadcast_element(self, value: Any, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put("tag", value)
        assert ctx.current_watermark() == self.expected_watermark
        return []

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        assert ctx.time_domain() is TimeDomain.EVENT_TIME
        yield (ctx.get_current_key(), timestamp, ctx.get_broadcast_state(RULES).get("tag"))


async def test_timers_of_the_keyed_variant_fire_with_their_key_and_read_broadcast_state() -> None:
    function = Alarm()
    async with _keyed(function) as harness:
        await harness.process_element1(("a", 1), timestamp=5)
        await harness.process_element1(("b", 1), timestamp=7)
        await harness.process_element2("v1")
        # The operator's watermark is the minimum of both inputs'.
        assert await harness.process_watermark1(100) == []
        await harness.process_element2("v2")
        assert await harness.process_watermark2(15) == [("a", 15, "v2")]
        function.expected_watermark = 15
        await harness.process_element2("v3")
        assert await harness.process_watermark2(17) == [("b", 17, "v3")]
    fired = [r for r in harness.get_output() if isinstance(r, StreamRecord)]
    assert fired == [StreamRecord(("a", 15, "v2"), 15), StreamRecord(("b", 17, "v3"), 17)]


async def test_a_broadcast_function_on_keyed_harness_takes_no_second_key_selector() -> None:
    with pytest.raises(TypeError, match="no key_selector2"):
        KeyedTwoInputOperatorTestHarness(
            CountAndReset(), lambda e: e[0], lambda r: r, broadcast_state_descriptors=[RULES]
        )


async def test_the_keyed_two_input_harness_still_needs_key_selector2_for_connected_keyed() -> None:
    class Join(KeyedCoProcessFunction):
        def process_element1(self, value: Any, ctx: Any) -> Any:
            return []

        def process_element2(self, value: Any, ctx: Any) -> Any:
            return []

    with pytest.raises(TypeError, match="needs key_selector2"):
        KeyedTwoInputOperatorTestHarness(Join(), lambda e: e)
    with pytest.raises(ValueError, match="not for kind 'co_process'"):
        KeyedTwoInputOperatorTestHarness(
            Join(), lambda e: e, lambda e: e, broadcast_state_descriptors=[RULES]
        )


async def test_broadcast_state_is_snapshotted_once_and_restored_to_every_subtask() -> None:
    snapshots = []
    for subtask in range(2):
        harness = _keyed(parallelism=2, subtask_index=subtask)
        async with harness:
            await harness.process_element2(("tag", "t1"))
            for key in "abcdef":
                if harness.owns_key(key):
                    await harness.process_element1((key, 1))
            snapshots.append(await harness.snapshot())
    # Only subtask 0 wrote the broadcast state.
    assert len(snapshots[1].operator_state) < len(snapshots[0].operator_state)
    for parallelism in (1, 3):
        counts: dict[str, int] = {}
        for subtask in range(parallelism):
            restored = _keyed(parallelism=parallelism, subtask_index=subtask, restore=snapshots)
            async with restored:
                state = restored.operator_state_backend.get_broadcast_state(RULES)
                assert state.items() == [("tag", "t1")]
                for key in "abcdef":
                    if restored.owns_key(key):
                        [(_, n, tag)] = await restored.process_element1((key, 1))
                        counts[key] = n
                        assert tag == "t1"
        assert counts == dict.fromkeys("abcdef", 2)
