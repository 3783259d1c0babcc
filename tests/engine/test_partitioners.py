from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from engine import RuntimeContext
from engine.partitioners import RescalePartitioner
from tests.helpers import PARALLELISMS, env_with, run_and_collect

pytestmark = pytest.mark.asyncio


class WhereAmI:
    """Tags each record with the subtask index that saw it."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.index = runtime_context.get_index_of_this_subtask()

    def map(self, value: Any) -> tuple[int, Any]:
        return (self.index, value)


async def _placement(parallelism: int, partition: str, n: int = 400) -> list[tuple[int, Any]]:
    env = env_with(parallelism)
    stream = env.from_sequence(1, n).set_parallelism(1)
    stream = (
        getattr(stream, partition)()
        if partition != "partition_custom"
        else (stream.partition_custom(lambda key, num: key % num, lambda x: x))
    )
    return await run_and_collect(env, stream.map(WhereAmI()))


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_rebalance_delivers_each_record_once_round_robin(parallelism: int) -> None:
    out = await _placement(parallelism, "rebalance")
    assert sorted(v for _, v in out) == list(range(1, 401))
    counts = Counter(index for index, _ in out)
    assert set(counts) == set(range(parallelism))
    assert max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_shuffle_delivers_each_record_once(parallelism: int) -> None:
    out = await _placement(parallelism, "shuffle", n=2000)
    assert sorted(v for _, v in out) == list(range(1, 2001))
    assert set(Counter(index for index, _ in out)) == set(range(parallelism))


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_broadcast_delivers_each_record_to_every_subtask(parallelism: int) -> None:
    out = await _placement(parallelism, "broadcast", n=50)
    assert len(out) == 50 * parallelism
    for index in range(parallelism):
        assert sorted(v for i, v in out if i == index) == list(range(1, 51))


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_global_sends_everything_to_subtask_zero(parallelism: int) -> None:
    out = await _placement(parallelism, "global_")
    assert {index for index, _ in out} == {0}
    assert sorted(v for _, v in out) == list(range(1, 401))


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_partition_custom_uses_the_users_choice(parallelism: int) -> None:
    out = await _placement(parallelism, "partition_custom")
    assert all(index == value % parallelism for index, value in out)
    assert len(out) == 400


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_rescale_delivers_each_record_once_within_local_groups(parallelism: int) -> None:
    env = env_with(parallelism)
    upstream = (
        env.from_sequence(1, 800).map(WhereAmI()).set_parallelism(2 if parallelism >= 2 else 1)
    )
    out = await run_and_collect(env, upstream.rescale().map(WhereAmI()))
    assert sorted(v for _, (_, v) in out) == list(range(1, 801))
    up_p = 2 if parallelism >= 2 else 1
    for down_index, (up_index, _) in out:
        assert down_index in RescalePartitioner().targets(up_index, up_p, parallelism)


@pytest.mark.parametrize("parallelism", [2, 4])
async def test_forward_keeps_records_on_the_same_subtask_index(parallelism: int) -> None:
    env = env_with(parallelism)
    stream = env.from_sequence(1, 400).map(WhereAmI()).disable_chaining()
    out = await run_and_collect(env, stream.forward().map(WhereAmI()).disable_chaining())
    assert all(down == up for down, (up, _) in out)
    assert len(out) == 400


def test_rescale_targets_cover_every_consumer_once() -> None:
    for producers in range(1, 9):
        for consumers in range(1, 9):
            reached = [
                c
                for p in range(producers)
                for c in RescalePartitioner().targets(p, producers, consumers)
            ]
            if consumers >= producers:
                assert sorted(reached) == list(range(consumers))
            else:
                assert set(reached) == set(range(consumers))


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_key_by_sends_a_key_to_the_subtask_owning_its_key_group(parallelism: int) -> None:
    from state.key_groups import assign_to_key_group, subtask_for_key_group

    env = env_with(parallelism)
    words = [f"w{i % 57}" for i in range(600)]
    out = await run_and_collect(env, env.from_collection(words).key_by(lambda w: w).map(WhereAmI()))
    assert len(out) == 600
    for index, word in out:
        expected = subtask_for_key_group(assign_to_key_group(word, 128), parallelism, 128)
        assert index == expected
