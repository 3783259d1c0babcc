from __future__ import annotations

import json

import pytest

from streamlet import JobGraphError, StreamExecutionEnvironment
from tests.helpers import env_with


def _chains(env: StreamExecutionEnvironment) -> list[dict]:
    return json.loads(env.get_execution_plan())["chains"]


def test_forward_operators_of_equal_parallelism_chain_together() -> None:
    env = env_with(4)
    env.from_sequence(1, 10).map(lambda x: x).filter(bool).print()
    chains = _chains(env)
    assert [c["name"] for c in chains] == ["Sequence Source -> Map -> Filter -> Print to Std. Out"]


def test_key_by_and_parallelism_changes_break_chains() -> None:
    env = env_with(2)
    env.from_collection([1]).map(lambda x: (x, 1)).key_by(lambda t: t[0]).sum(1).print()
    chains = _chains(env)
    assert [(c["name"], c["parallelism"]) for c in chains] == [
        ("Collection Source", 1),
        ("Map", 2),
        ("Sum -> Print to Std. Out", 2),
    ]
    assert chains[1]["inputs"][0]["partitioner"] == "rebalance"
    assert chains[2]["inputs"][0]["partitioner"] == "hash"


def test_union_target_is_not_chained() -> None:
    env = env_with(1)
    a = env.from_collection([1])
    b = env.from_collection([2])
    a.union(b).map(lambda x: x).print()
    names = [c["name"] for c in _chains(env)]
    assert names == ["Collection Source", "Collection Source", "Map -> Print to Std. Out"]


def test_parallelism_must_be_positive() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(ValueError, match=r"^set_parallelism: parallelism must be >= 1, got 0$"):
        env.set_parallelism(0)
    stream = env.from_sequence(1, 2).map(lambda x: x)
    with pytest.raises(ValueError, match=r"^operator 'Map': parallelism must be >= 1, got -1$"):
        stream.set_parallelism(-1)


def test_parallelism_above_max_parallelism_is_refused() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_max_parallelism(8)
    with pytest.raises(ValueError, match=r"parallelism 9 exceeds max_parallelism 8"):
        env.set_parallelism(9)
    with pytest.raises(ValueError, match=r"max_parallelism must be in \[1, 32768\], got 0"):
        env.set_max_parallelism(0)


def test_non_parallel_source_refuses_parallelism_above_one() -> None:
    env = env_with(4)
    with pytest.raises(ValueError, match=r"supports parallelism <= 1, got 2"):
        env.from_collection([1, 2]).set_parallelism(2)


def test_forward_edge_between_different_parallelisms_is_refused_at_the_call() -> None:
    env = env_with(2)
    stream = env.from_sequence(1, 10).map(lambda x: x)
    forwarded = stream.forward().map(lambda x: x)
    with pytest.raises(
        ValueError, match=r"forward edge from 'Map' \(parallelism 2\) to 'Map' \(parallelism 3\)"
    ):
        forwarded.set_parallelism(3)
    with pytest.raises(
        ValueError, match=r"forward edge from 'Collection Source' \(parallelism 1\)"
    ):
        env.from_collection([1]).forward().map(lambda x: x)


def test_duplicate_uid_is_refused() -> None:
    env = env_with(1)
    env.from_collection([1]).map(lambda x: x).uid("same")
    with pytest.raises(ValueError, match=r"^uid 'same' is already used by operator 'Map'$"):
        env.from_collection([1]).map(lambda x: x).uid("same")


def test_set_parallelism_on_a_union_is_refused() -> None:
    env = env_with(1)
    union = env.from_collection([1]).union(env.from_collection([2]))
    with pytest.raises(TypeError, match=r"union or a partitioning view"):
        union.set_parallelism(2)


@pytest.mark.asyncio
async def test_empty_job_is_an_error() -> None:
    env = env_with(1)
    with pytest.raises(JobGraphError, match="no operators defined"):
        await env.execute("empty")


def test_from_sequence_validates_its_range() -> None:
    env = env_with(1)
    with pytest.raises(
        ValueError, match=r"^from_sequence\(\) end must be >= start, got start=5, end=1$"
    ):
        env.from_sequence(5, 1)
    with pytest.raises(TypeError, match=r"start must be an int, got '1'"):
        env.from_sequence("1", 5)  # type: ignore[arg-type]
