"""The datagen source: Flink's generators, replayable rows, splits, pacing, bad input."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import anyio
import pytest

from streamlet import Row, StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sources.datagen import BLOCK_ROWS, DataGenField, DataGenSource
from streamlet.testing import FaultInjector, inject_faults

pytestmark = pytest.mark.asyncio

FAST = 10_000_000.0  # rows per second: pacing never waits in these tests


def _fields() -> list[DataGenField]:
    return [
        DataGenField("id", "BIGINT", kind="sequence", start=1, end=10_000),
        DataGenField("n", "INT", min=-5, max=5),
        DataGenField("x", "DOUBLE", min=0.0, max=1.0),
        DataGenField("s", "STRING", length=8, var_len=True),
        DataGenField("b", "BOOLEAN", null_rate=0.5),
    ]


async def _read(source: DataGenSource, split: Any, position: Any, count: int) -> tuple[list, Any]:
    reader = source.create_reader(split, position)
    rows: list[Row] = []
    while len(rows) < count:
        batch = await reader.read_batch(min(700, count - len(rows)))
        if batch is None:
            break
        rows.extend(batch)
    return rows, reader.position()


async def test_a_restored_reader_goes_on_with_the_same_rows_an_uninterrupted_one_makes() -> None:
    source = DataGenSource(_fields(), rows_per_second=FAST)
    (split,) = source.create_splits(1)
    whole, _ = await _read(source, split, None, 3 * BLOCK_ROWS)
    # Stop mid-block (the restored reader regenerates that block) and go on from the position.
    first, position = await _read(source, split, None, BLOCK_ROWS + 333)
    rest, _ = await _read(source, split, position, 3 * BLOCK_ROWS - len(first))
    assert first + rest == whole
    assert [r["id"] for r in whole] == list(range(1, 3 * BLOCK_ROWS + 1))


async def test_generated_values_follow_each_fields_options() -> None:
    source = DataGenSource(_fields(), rows_per_second=FAST, seed=7)
    (split,) = source.create_splits(1)
    rows, _ = await _read(source, split, None, 2000)
    assert {r["n"] for r in rows} == set(range(-5, 6))
    assert all(0.0 <= r["x"] <= 1.0 for r in rows)
    assert {len(r["s"]) for r in rows} == set(range(1, 9))  # var-len: 1..length
    assert all(set(r["s"]) <= set("0123456789abcdef") for r in rows)
    nulls = sum(r["b"] is None for r in rows)
    assert 800 < nulls < 1200  # null-rate 0.5 of 2000
    assert {r["b"] for r in rows} == {True, False, None}
    assert rows[0].as_dict().keys() == {"id", "n", "x", "s", "b"}


async def test_the_seed_decides_the_rows_and_splits_differ() -> None:
    fields = [DataGenField("v", "BIGINT")]
    a, _ = await _read(DataGenSource(fields, seed=1), {**_split(0, 2, 1)}, None, 50)
    b, _ = await _read(DataGenSource(fields, seed=1), {**_split(0, 2, 1)}, None, 50)
    other_split, _ = await _read(DataGenSource(fields), _split(1, 2, 1), None, 50)
    other_seed, _ = await _read(DataGenSource(fields), _split(0, 2, 2), None, 50)
    assert a == b
    assert a != other_split and a != other_seed


def _split(index: int, of: int, seed: int) -> dict[str, Any]:
    return {"index": index, "of": of, "seed": seed, "rows": None, "starts": []}


def test_one_seed_is_drawn_per_job_when_none_is_given() -> None:
    source = DataGenSource([DataGenField("v", "INT")])
    splits = source.create_splits(4)
    assert len({s["seed"] for s in splits}) == 1
    assert splits[0]["seed"] != source.create_splits(4)[0]["seed"]


async def test_a_sequence_is_cut_into_one_part_per_split_and_ends_the_source() -> None:
    source = DataGenSource(
        [DataGenField("id", "INT", kind="sequence", start=1, end=10)], rows_per_second=FAST
    )
    assert source.bounded
    values: list[int] = []
    for split in source.create_splits(3):
        rows, position = await _read(source, split, None, 100)
        values.extend(r["id"] for r in rows)
        assert position == len(rows)
    assert sorted(values) == list(range(1, 11))


async def test_number_of_rows_is_the_total_across_splits() -> None:
    source = DataGenSource([DataGenField("v", "INT")], rows_per_second=FAST, number_of_rows=10)
    counts = [len((await _read(source, s, None, 100))[0]) for s in source.create_splits(4)]
    assert sum(counts) == 10 and max(counts) - min(counts) <= 1


async def test_rows_are_paced_to_rows_per_second_in_all() -> None:
    # 2 splits share 100 rows/s: 20 rows take at least ~0.19 s (pacing never runs early).
    source = DataGenSource([DataGenField("v", "INT")], rows_per_second=100, number_of_rows=20)
    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for split in source.create_splits(2):
            tg.start_soon(_read, source, split, None, 100)
    assert time.monotonic() - start >= 0.18


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (dict(type_name="DATE"), "generates only"),
        (dict(type_name="INT", kind="walk"), "kind must be"),
        (dict(type_name="INT", min=5, max=1), "below 'min'"),
        (dict(type_name="TINYINT", max=300), "does not fit a 8-bit"),
        (dict(type_name="INT", null_rate=1.5), "null-rate"),
        (dict(type_name="INT", kind="sequence", start=1), "'end'"),
    ],
)
def test_a_bad_field_is_refused_naming_it(field: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, NotImplementedError), match=message) as raised:
        DataGenField("col", **field)
    assert "'col'" in str(raised.value)


def test_bad_source_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        DataGenSource([])
    with pytest.raises(ValueError, match="rows-per-second"):
        DataGenSource([DataGenField("v", "INT")], rows_per_second=0)
    with pytest.raises(ValueError, match="number-of-rows"):
        DataGenSource([DataGenField("v", "INT")], number_of_rows=-1)


@pytest.mark.parametrize(
    "split",
    [
        "a string",
        {"index": 3, "of": 2, "seed": 1, "rows": None, "starts": []},
        {"index": 0, "of": 1, "seed": "1", "rows": None, "starts": []},
        {"index": 0, "of": 1, "seed": 1, "rows": -4, "starts": []},
        {"index": 0, "of": 1, "seed": 1, "rows": None, "starts": [1]},  # no sequence field
    ],
)
def test_a_split_from_a_checkpoint_that_does_not_fit_is_refused(split: Any) -> None:
    source = DataGenSource([DataGenField("v", "INT")])
    with pytest.raises(ValueError, match="datagen"):
        source.create_reader(split, None)


def test_a_bad_position_from_a_checkpoint_is_refused() -> None:
    source = DataGenSource([DataGenField("v", "INT")])
    (split,) = source.create_splits(1)
    for position in (-1, "3", True):
        with pytest.raises(ValueError, match="bad position"):
            source.create_reader(split, position)


async def test_after_a_failover_the_replayed_rows_are_the_rows_first_made(tmp_path: Any) -> None:
    """The seed is drawn once and restored with the splits: a replayed row repeats itself."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    injector = inject_faults(env, FaultInjector().fail_record("sink", 1500, subtask=1))
    source = DataGenSource(
        [
            DataGenField("id", "INT", kind="sequence", start=1, end=4000),
            DataGenField("v", "BIGINT"),
        ],
        rows_per_second=20_000,
    )
    seen: list[Row] = []
    env.from_source(source).map(lambda row: row).uid("sink").add_sink(seen.append)
    with anyio.fail_after(30):
        result = await env.execute("datagen-failover")
    injector.assert_all_fired()
    assert result.restored_from is not None  # it restored, not restarted from scratch
    values: dict[int, set[int]] = defaultdict(set)
    for row in seen:
        values[row["id"]].add(row["v"])
    assert sorted(values) == list(range(1, 4001))  # at-least-once here: nothing lost
    assert all(len(v) == 1 for v in values.values())  # a replayed id has its first value
    assert len(seen) > 4000  # the failover did replay some rows
