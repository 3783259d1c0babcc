from __future__ import annotations

import random
from collections import defaultdict

import pytest

from tests.helpers import PARALLELISMS, env_with, run_and_collect

pytestmark = pytest.mark.asyncio


def _pairs(n: int, keys: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(f"k{rng.randrange(keys)}", rng.randrange(-50, 100)) for _ in range(n)]


def _final(out: list[tuple[str, int]]) -> dict[str, list[int]]:
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, value in out:
        per_key[key].append(value)
    return per_key


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_keyed_sum_equals_a_plain_python_reference(parallelism: int) -> None:
    data = _pairs(3000, 37)
    env = env_with(parallelism)
    stream = env.from_collection(data).key_by(lambda t: t[0]).sum(1)
    out = await run_and_collect(env, stream)
    expected: dict[str, list[int]] = defaultdict(list)
    running: dict[str, int] = {}
    for key, value in data:
        running[key] = running.get(key, 0) + value
        expected[key].append(running[key])
    # Rolling sums per key, in input order (one key lives on one subtask, FIFO).
    assert _final(out) == expected


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_keyed_reduce_running_count(parallelism: int) -> None:
    env = env_with(parallelism)
    stream = (
        env.from_sequence(0, 9999)
        .map(lambda i: (i % 100, 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    out = await run_and_collect(env, stream)
    final = {key: max(vals) for key, vals in _final(out).items()}  # type: ignore[arg-type]
    assert final == {k: 100 for k in range(100)}
    assert len(out) == 10000


@pytest.mark.parametrize("parallelism", [1, 4])
async def test_keyed_min_and_max_keep_the_first_records_other_fields(parallelism: int) -> None:
    data = [("a", 5, "first"), ("a", 3, "second"), ("b", 1, "x"), ("a", 9, "third")]
    env = env_with(parallelism)
    mins = await run_and_collect(env, env.from_collection(data).key_by(lambda t: t[0]).min(1))
    env = env_with(parallelism)
    maxs = await run_and_collect(env, env.from_collection(data).key_by(lambda t: t[0]).max(1))
    assert [r for r in mins if r[0] == "a"] == [
        ("a", 5, "first"),
        ("a", 3, "first"),
        ("a", 3, "first"),
    ]
    assert [r for r in maxs if r[0] == "a"] == [
        ("a", 5, "first"),
        ("a", 5, "first"),
        ("a", 9, "first"),
    ]


async def test_min_by_keeps_the_whole_record() -> None:
    data = [("a", 5, "first"), ("a", 3, "second"), ("a", 9, "third")]
    env = env_with(2)
    out = await run_and_collect(env, env.from_collection(data).key_by(lambda t: t[0]).min_by(1))
    assert out == [("a", 5, "first"), ("a", 3, "second"), ("a", 3, "second")]


async def test_sum_of_plain_numbers_and_dict_fields() -> None:
    env = env_with(2)
    out = await run_and_collect(env, env.from_collection([1, 2, 3]).key_by(lambda x: 0).sum())
    assert out == [1, 3, 6]
    env = env_with(2)
    rows = [{"k": "a", "n": 1}, {"k": "a", "n": 2}]
    out = await run_and_collect(env, env.from_collection(rows).key_by(lambda r: r["k"]).sum("n"))
    assert out == [{"k": "a", "n": 1}, {"k": "a", "n": 3}]


async def test_unhashable_key_fails_the_job_with_a_type_error_naming_it() -> None:
    from engine import JobExecutionError

    for parallelism in (1, 3):
        env = env_with(parallelism)
        stream = env.from_collection([[1, 2]]).key_by(lambda x: x).sum(0)
        with pytest.raises(JobExecutionError) as info:
            await run_and_collect(env, stream)
        cause = info.value.__cause__
        assert isinstance(cause, TypeError)
        assert "[1, 2]" in str(cause) and "list" in str(cause)
