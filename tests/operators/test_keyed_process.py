"""KeyedProcessFunction with every keyed state type, at parallelism 1, 2, 4 and 8."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from streamlet import KeyedProcessFunction, RuntimeContext
from streamlet.state import (
    AggregateFunction,
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    ValueStateDescriptor,
)
from tests.helpers import PARALLELISMS, env_with, run_and_collect

pytestmark = pytest.mark.asyncio


class Average(AggregateFunction):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: int, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> float:
        return accumulator[0] / accumulator[1]


class EveryState(KeyedProcessFunction):
    """Per key: count (value), last three (list), per-parity sums (map), max (reducing),
    average (aggregating). Emits a summary per record."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", default_value=0))
        self.recent = runtime_context.get_list_state(ListStateDescriptor("recent"))
        self.by_parity = runtime_context.get_map_state(MapStateDescriptor("by_parity"))
        self.maximum = runtime_context.get_reducing_state(ReducingStateDescriptor("max", max))
        self.average = runtime_context.get_aggregating_state(
            AggregatingStateDescriptor("avg", Average())
        )

    def process_element(self, value: tuple[str, int], ctx: KeyedProcessFunction.Context):
        key, n = value
        assert ctx.get_current_key() == key
        self.count.update(self.count.value() + 1)
        self.recent.update([*self.recent.get(), n][-3:])
        parity = n % 2
        self.by_parity.put(parity, (self.by_parity.get(parity) or 0) + n)
        self.maximum.add(n)
        self.average.add(n)
        yield (
            key,
            self.count.value(),
            tuple(self.recent.get()),
            dict(self.by_parity.items()),
            self.maximum.get(),
            self.average.get(),
        )


def _reference(data: list[tuple[str, int]]) -> dict[str, Any]:
    seen: dict[str, list[int]] = defaultdict(list)
    last: dict[str, Any] = {}
    for key, n in data:
        seen[key].append(n)
        values = seen[key]
        parity: dict[int, int] = {}
        for v in values:
            parity[v % 2] = parity.get(v % 2, 0) + v
        last[key] = (
            key,
            len(values),
            tuple(values[-3:]),
            parity,
            max(values),
            sum(values) / len(values),
        )
    return last


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_every_state_type_per_key_matches_a_reference(parallelism: int) -> None:
    rng = random.Random(parallelism)
    data = [(f"key{rng.randrange(23)}", rng.randrange(1000)) for _ in range(2000)]
    env = env_with(parallelism)
    out = await run_and_collect(
        env, env.from_collection(data).key_by(lambda t: t[0]).process(EveryState())
    )
    final: dict[str, Any] = {}
    for record in out:
        if record[0] not in final or record[1] > final[record[0]][1]:
            final[record[0]] = record
    assert final == _reference(data)
    assert len(out) == len(data)


async def test_keyed_state_is_isolated_between_operators() -> None:
    env = env_with(2)
    stream = env.from_collection([("a", 1), ("a", 2)])
    first = stream.key_by(lambda t: t[0]).process(EveryState()).uid("first")
    second = first.map(lambda r: (r[0], r[1] * 10)).key_by(lambda t: t[0]).process(EveryState())
    out = await run_and_collect(env, second)
    # The second operator's count state is its own: it saw two records, not four.
    assert sorted(r[1] for r in out) == [1, 2]
