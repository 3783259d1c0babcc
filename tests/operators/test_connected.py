"""The operators of ``connect``: co-map, co-flat-map, co-process, keyed co-process (issue 15).

Driven through the two-input harnesses: each input reaches its own method, keyed inputs share
one keyed state and one set of timers, the watermark is the minimum of both inputs', and the
state (with the timers) survives a snapshot and a restore at another parallelism.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamlet import (
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    KeyedCoProcessFunction,
    OutputTag,
    RuntimeContext,
    StreamRecord,
    TimeDomain,
    Watermark,
)
from streamlet.state import ValueStateDescriptor
from streamlet.state.key_groups import assign_to_key_group, subtask_for_key_group
from streamlet.testing import (
    KeyedTwoInputOperatorTestHarness,
    TwoInputOperatorTestHarness,
)

pytestmark = pytest.mark.anyio


class Tag(CoMapFunction):
    def __init__(self) -> None:
        self.opened = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        self.opened += 1

    def map1(self, value: Any) -> Any:
        return ("left", value)

    def map2(self, value: Any) -> Any:
        return ("right", value)


async def test_co_map_calls_map1_for_the_first_input_and_map2_for_the_second() -> None:
    function = Tag()
    harness = TwoInputOperatorTestHarness(function)
    assert harness.kind == "co_map"
    async with harness:
        assert await harness.process_element1(1, timestamp=10) == [("left", 1)]
        assert await harness.process_element2("x") == [("right", "x")]
        assert await harness.process_elements1([2, 3]) == [("left", 2), ("left", 3)]
        assert await harness.process_elements2(["y"]) == [("right", "y")]
    # The object's lifecycle runs once, not once per input.
    assert function.opened == 1
    assert harness.get_output()[0] == StreamRecord(("left", 1), 10)


class Split(CoFlatMapFunction):
    def flat_map1(self, value: str) -> Any:
        return value.split()

    def flat_map2(self, value: int) -> Any:
        yield from range(value)


async def test_co_flat_map_emits_any_number_per_record_of_either_input() -> None:
    async with TwoInputOperatorTestHarness(Split()) as harness:
        assert await harness.process_element1("a b c", timestamp=5) == ["a", "b", "c"]
        assert await harness.process_element2(2, timestamp=7) == [0, 1]
        stamps = [record.timestamp for record in harness.get_output()]
        assert stamps == [5, 5, 5, 7, 7]


class CountBoth(CoFlatMapFunction):
    """A count per key over both inputs: one keyed state, two inputs."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", default_value=0))

    def flat_map1(self, value: tuple[str, int]) -> Any:
        self.count.update(self.count.value() + 1)
        yield ("1", value[0], self.count.value())

    def flat_map2(self, value: dict[str, Any]) -> Any:
        self.count.update(self.count.value() + 1)
        yield ("2", value["key"], self.count.value())


async def test_connected_keyed_inputs_share_the_state_of_a_key_each_keyed_by_its_own_selector() -> (
    None
):
    harness = KeyedTwoInputOperatorTestHarness(CountBoth(), lambda t: t[0], lambda d: d["key"])
    async with harness:
        await harness.process_element1(("a", 1))
        await harness.process_element2({"key": "a"})
        await harness.process_element2({"key": "b"})
        await harness.process_element1(("a", 2))
    assert harness.extract_output_values() == [
        ("1", "a", 1),
        ("2", "a", 2),
        ("2", "b", 1),
        ("1", "a", 3),
    ]


class Join(KeyedCoProcessFunction):
    """Waits for one record of each side per key, then emits the pair; a side that waits
    alone is given up by an event-time timer (to a side output)."""

    TIMEOUT = 100
    unmatched = OutputTag("unmatched")

    def open(self, runtime_context: RuntimeContext) -> None:
        self.left = runtime_context.get_state(ValueStateDescriptor("left"))
        self.right = runtime_context.get_state(ValueStateDescriptor("right"))

    def process_element1(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Any:
        yield from self._arrive(value, ctx, self.left, self.right)

    def process_element2(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Any:
        yield from self._arrive(value, ctx, self.right, self.left)

    def _arrive(self, value: Any, ctx: Any, mine: Any, other: Any) -> Any:
        waiting = other.value()
        if waiting is not None:
            other.clear()
            ctx.timer_service().delete_event_time_timer(waiting[1] + self.TIMEOUT)
            yield (ctx.get_current_key(), waiting[0], value)
        else:
            mine.update((value, ctx.timestamp()))
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + self.TIMEOUT)

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Any:
        assert ctx.time_domain() is TimeDomain.EVENT_TIME
        for state in (self.left, self.right):
            if state.value() is not None:
                yield self.unmatched, (ctx.get_current_key(), state.value()[0])
                state.clear()


def join_harness(**settings: Any) -> KeyedTwoInputOperatorTestHarness:
    return KeyedTwoInputOperatorTestHarness(Join(), lambda t: t[0], lambda t: t[0], **settings)


async def test_keyed_co_process_timers_fire_at_the_minimum_of_both_inputs_watermarks() -> None:
    async with join_harness() as harness:
        await harness.process_element1(("k", "order"), timestamp=10)  # timer at 110
        # The first input far ahead does not fire it: the second holds the watermark back.
        assert await harness.process_watermark1(1_000) == []
        assert harness.context.keyed_backend is not None
        assert harness.operator.current_watermark < 110
        assert await harness.process_watermark2(109) == []
        assert harness.get_side_output(Join.unmatched) == []
        await harness.process_watermark2(110)
        assert harness.get_side_output(Join.unmatched) == [StreamRecord(("k", ("k", "order")), 110)]
        # The operator's watermark follows the slower input, then is forwarded.
        assert harness.get_output()[-1] == Watermark(110)


async def test_keyed_co_process_matches_across_inputs_and_deletes_the_timer() -> None:
    async with join_harness() as harness:
        await harness.process_element2(("k", "payment"), timestamp=20)
        assert await harness.process_element1(("k", "order"), timestamp=30) == [
            ("k", ("k", "payment"), ("k", "order"))
        ]
        await harness.process_watermark1(10_000)
        await harness.process_watermark2(10_000)
        assert harness.get_side_output(Join.unmatched) == []  # its timer was deleted


async def test_keyed_co_process_state_and_timers_restore_at_another_parallelism() -> None:
    keys = [f"k{i}" for i in range(20)]
    async with join_harness() as harness:
        for key in keys:
            await harness.process_element1((key, "order"), timestamp=10)
        snapshot = await harness.snapshot()
    matched: list[str] = []
    unmatched: list[str] = []
    for index in range(3):
        restored = join_harness(parallelism=3, subtask_index=index, restore=snapshot)
        async with restored:
            mine = [k for k in keys if restored.owns_key(k)]
            assert mine
            # A payment for one of its keys matches that key's restored order...
            out = await restored.process_element2((mine[0], "payment"), timestamp=50)
            assert out == [(mine[0], (mine[0], "order"), (mine[0], "payment"))]
            matched.append(mine[0])
            # ...and the restored timers of its other keys fire, on this subtask only.
            await restored.process_watermark1(1_000)
            await restored.process_watermark2(1_000)
            fired = [r.value[0] for r in restored.get_side_output(Join.unmatched)]
            assert sorted(fired) == sorted(mine[1:])
            assert all(
                subtask_for_key_group(assign_to_key_group(k, 128), 3, 128) == index for k in fired
            )
            unmatched.extend(fired)
    assert sorted(matched + unmatched) == sorted(keys)  # each restored order once


class Stamps(CoProcessFunction):
    late = OutputTag("second")

    def process_element1(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
        yield (value, ctx.timestamp(), ctx.timer_service().current_watermark())

    def process_element2(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
        yield self.late, (value, ctx.timestamp())


async def test_co_process_sees_timestamps_and_the_combined_watermark_and_emits_side_outputs() -> (
    None
):
    async with TwoInputOperatorTestHarness(Stamps()) as harness:
        await harness.process_watermark1(50)
        await harness.process_watermark2(40)
        assert await harness.process_element1("a", timestamp=60) == [("a", 60, 40)]
        assert await harness.process_element2("b", timestamp=70) == []
        assert harness.get_side_output(Stamps.late) == [StreamRecord(("b", 70), 70)]

    class Timers(CoProcessFunction):
        def process_element1(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
            ctx.timer_service().register_event_time_timer(5)

        def process_element2(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
            return None

    async with TwoInputOperatorTestHarness(Timers()) as harness:
        with pytest.raises(TypeError, match="timers are only available on a keyed stream"):
            await harness.process_element1("a")


def test_a_co_function_without_its_second_method_is_refused_naming_what_is_missing() -> None:
    class OnlyOne:
        def map1(self, value: Any) -> Any:
            return value

    with pytest.raises(TypeError, match=r"needs an object with map1\(\) and map2\(\).*lacks map2"):
        TwoInputOperatorTestHarness(OnlyOne(), kind="co_map")
    with pytest.raises(TypeError, match="pass Tag\\(\\) instead"):
        TwoInputOperatorTestHarness(Tag, kind="co_map")
