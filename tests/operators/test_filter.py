from __future__ import annotations

import pytest

from tests.helpers import PARALLELISMS, env_with, run_and_collect, same_multiset

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_filter_keeps_matching_records(parallelism: int) -> None:
    env = env_with(parallelism)
    out = await run_and_collect(env, env.from_sequence(1, 999).filter(lambda x: x % 3 == 0))
    assert same_multiset(out, [x for x in range(1, 1000) if x % 3 == 0])


async def test_async_filter() -> None:
    async def even(x: int) -> bool:
        return x % 2 == 0

    env = env_with(2)
    out = await run_and_collect(env, env.from_sequence(1, 50).filter(even))
    assert sorted(out) == list(range(2, 51, 2))
