from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streamlet import FlatMapFunction
from tests.helpers import PARALLELISMS, env_with, run_and_collect, same_multiset

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_flat_map_emits_every_returned_record(parallelism: int) -> None:
    env = env_with(parallelism)
    lines = ["a b", "c", "", "d e f"] * 50
    stream = env.from_collection(lines).rebalance().flat_map(lambda s: s.split())
    out = await run_and_collect(env, stream)
    assert same_multiset(out, [w for line in lines for w in line.split()])


class Words(FlatMapFunction):
    def flat_map(self, value: str):
        yield from value.upper().split()


async def test_flat_map_function_may_yield() -> None:
    env = env_with(1)
    out = await run_and_collect(env, env.from_collection(["x y", "z"]).flat_map(Words()))
    assert out == ["X", "Y", "Z"]


async def test_async_flat_map() -> None:
    async def split(s: str) -> list[str]:
        return s.split()

    env = env_with(2)
    out = await run_and_collect(env, env.from_collection(["a b", "c"]).flat_map(split))
    assert sorted(out) == ["a", "b", "c"]


async def test_flat_map_returning_a_string_fails_the_job_clearly() -> None:
    from streamlet import JobExecutionError

    env = env_with(1)
    stream = env.from_collection(["ab"]).flat_map(lambda s: s.upper())
    with pytest.raises(JobExecutionError) as info:
        await run_and_collect(env, stream)
    assert isinstance(info.value.__cause__, TypeError)
    assert "returned a str" in str(info.value.__cause__)


async def test_keyed_flat_map_may_be_an_async_generator() -> None:
    # It used to await the generator object and fail with a TypeError, although the
    # non-keyed flat_map took the same function.
    async def tens(x: int) -> AsyncIterator[int]:
        yield x
        yield x * 10

    env = env_with(1)
    stream = env.from_collection([1, 2, 3]).key_by(lambda x: x % 2).flat_map(tens)
    assert await run_and_collect(env, stream) == [1, 10, 2, 20, 3, 30]
