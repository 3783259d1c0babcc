from __future__ import annotations

import dataclasses
import random
import re
from collections import defaultdict, namedtuple
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet.job.restart import RestartStrategies
from streamlet.testing import FaultInjector, inject_faults
from tests.helpers import PARALLELISMS, env_with, run_and_collect

pytestmark = pytest.mark.asyncio


def _pairs(n: int, keys: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(f"k{rng.randrange(keys)}", rng.randrange(-50, 100)) for _ in range(n)]


def _final(out: list[tuple[Any, int]]) -> dict[Any, list[int]]:
    per_key: dict[Any, list[int]] = defaultdict(list)
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
    final = {key: max(vals) for key, vals in _final(out).items()}
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
    from streamlet import JobExecutionError

    for parallelism in (1, 3):
        env = env_with(parallelism)
        stream = env.from_collection([[1, 2]]).key_by(lambda x: x).sum(0)
        with pytest.raises(JobExecutionError) as info:
            await run_and_collect(env, stream)
        cause = info.value.__cause__
        assert isinstance(cause, TypeError)
        assert "[1, 2]" in str(cause) and "list" in str(cause)


Sale = namedtuple("Sale", "region amount note")


@dataclasses.dataclass(frozen=True)
class FrozenSale:
    region: str
    amount: int
    note: str


@dataclasses.dataclass
class Counted:
    region: str
    amount: int
    seen: int = dataclasses.field(default=0, init=False)


SALES = [("eu", 5, "first"), ("eu", 3, "second"), ("us", 1, "x"), ("eu", 9, "third")]


@pytest.mark.parametrize("parallelism", [1, 3])
@pytest.mark.parametrize("kind", [Sale, FrozenSale], ids=["namedtuple", "frozen dataclass"])
async def test_aggregations_by_field_name_on_immutable_records(parallelism: int, kind: Any) -> None:
    data = [kind(*row) for row in SALES]
    results = {}
    for agg in ("sum", "min", "max", "min_by", "max_by"):
        env = env_with(parallelism)
        keyed = env.from_collection(data).key_by(lambda r: r.region)
        out = await run_and_collect(env, getattr(keyed, agg)("amount"))
        assert all(type(r) is kind for r in out)
        results[agg] = [(r.amount, r.note) for r in out if r.region == "eu"]
    # sum / min / max replace the field in the first record of the key (Flink's semantics);
    # min_by / max_by emit the whole record holding the extreme.
    assert results == {
        "sum": [(5, "first"), (8, "first"), (17, "first")],
        "min": [(5, "first"), (3, "first"), (3, "first")],
        "max": [(5, "first"), (5, "first"), (9, "first")],
        "min_by": [(5, "first"), (3, "second"), (3, "second")],
        "max_by": [(5, "first"), (5, "first"), (9, "third")],
    }


async def test_positional_aggregations_keep_tuples_and_namedtuples() -> None:
    env = env_with(2)
    rows = [("a", 1, "x"), ("a", 2, "y")]
    out = await run_and_collect(env, env.from_collection(rows).key_by(lambda t: t[0]).sum(1))
    assert out == [("a", 1, "x"), ("a", 3, "x")] and all(type(r) is tuple for r in out)
    env = env_with(2)
    sales = [Sale("a", 1, "x"), Sale("a", 2, "y")]
    out = await run_and_collect(env, env.from_collection(sales).key_by(lambda t: t[0]).max(-2))
    assert out == [Sale("a", 1, "x"), Sale("a", 2, "x")] and all(type(r) is Sale for r in out)


async def test_field_that_cannot_be_replaced_names_the_field_and_the_type() -> None:
    from streamlet import JobExecutionError

    env = env_with(1)
    rows = [Counted("a", 1), Counted("a", 2)]
    stream = env.from_collection(rows).key_by(lambda r: r.region).sum("seen")
    with pytest.raises(JobExecutionError) as info:
        await run_and_collect(env, stream)
    assert re.search(
        r"sum\('seen'\) cannot replace field 'seen' of a record of type Counted \(ValueError: ",
        str(info.value),
    )


async def test_sum_over_namedtuples_is_checkpointed_and_survives_a_failure(tmp_path: Path) -> None:
    # The running aggregates are namedtuples in keyed state: every checkpoint writes them.
    env = env_with(2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    inject_faults(env, FaultInjector().fail_record("totals", 700))

    async def trickle(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    out: list[Any] = []
    (
        env.from_sequence(0, 1999)
        .map(trickle)
        .map(lambda i: Sale(f"r{i % 4}", 1, "n"))
        .key_by(lambda s: Sale(s.region, 0, ""))  # a namedtuple key too
        .sum("amount")
        .uid("totals")
        .add_sink(out.append)
    )
    result = await env.execute("namedtuple sums")
    assert result.restart_count == 1
    assert result.checkpoints_completed >= 1
    final: dict[str, int] = {}
    for sale in out:
        assert type(sale) is Sale
        final[sale.region] = max(final.get(sale.region, 0), sale.amount)
    assert final == {f"r{k}": 500 for k in range(4)}
