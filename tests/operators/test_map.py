from __future__ import annotations

import pytest

from streamlet import MapFunction, RuntimeContext
from tests.helpers import PARALLELISMS, env_with, run_and_collect, same_multiset

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_map_applies_the_function_to_every_record(parallelism: int) -> None:
    env = env_with(parallelism)
    out = await run_and_collect(env, env.from_sequence(1, 1000).map(lambda x: x * 2))
    assert same_multiset(out, [x * 2 for x in range(1, 1001)])


async def test_map_accepts_an_async_function() -> None:
    async def double(x: int) -> int:
        return x * 2

    env = env_with(2)
    out = await run_and_collect(env, env.from_sequence(1, 100).map(double))
    assert sorted(out) == [x * 2 for x in range(1, 101)]


class Tagging(MapFunction):
    def __init__(self) -> None:
        self.opened = False

    def open(self, runtime_context: RuntimeContext) -> None:
        self.opened = True
        self.tag = runtime_context.get_index_of_this_subtask()

    def map(self, value: int) -> tuple[int, int]:
        assert self.opened
        return (self.tag, value)


async def test_map_function_class_is_opened_per_subtask() -> None:
    env = env_with(4)
    out = await run_and_collect(env, env.from_sequence(1, 400).map(Tagging()))
    assert sorted(v for _, v in out) == list(range(1, 401))
    assert {tag for tag, _ in out} == {0, 1, 2, 3}


async def test_map_preserves_order_within_a_subtask() -> None:
    env = env_with(1)
    out = await run_and_collect(env, env.from_collection(list("abcdef")).map(str.upper))
    assert out == list("ABCDEF")


def test_map_rejects_a_non_callable() -> None:
    env = env_with(1)
    with pytest.raises(
        TypeError,
        match=r"^map\(\) needs a callable or an object with a map\(\) method, got 5 of type int$",
    ):
        env.from_collection([1]).map(5)


def test_map_rejects_a_function_class_instead_of_an_instance() -> None:
    env = env_with(1)
    with pytest.raises(TypeError, match=r"pass Tagging\(\) instead"):
        env.from_collection([1]).map(Tagging)
