from __future__ import annotations

import enum
import re
from collections import Counter
from typing import Any

import pytest

from streamlet import KeyedProcessFunction, RuntimeContext
from streamlet.graph.partitioners import KeySelectorError, RescalePartitioner
from streamlet.state import ValueStateDescriptor
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
    from streamlet.state.key_groups import assign_to_key_group, subtask_for_key_group

    env = env_with(parallelism)
    words = [f"w{i % 57}" for i in range(600)]
    out = await run_and_collect(env, env.from_collection(words).key_by(lambda w: w).map(WhereAmI()))
    assert len(out) == 600
    for index, word in out:
        expected = subtask_for_key_group(assign_to_key_group(word, 128), parallelism, 128)
        assert index == expected


class Level(enum.IntEnum):
    LOW = 1


class Shape(str, enum.Enum):  # noqa: UP042 - the pre-3.11 spelling users still write
    ROUND = "round"


class RunningCount(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield (ctx.get_current_key(), n)


@pytest.mark.parametrize("parallelism", [1, 4])
async def test_equal_keys_beyond_64_bits_are_one_key(parallelism: int) -> None:
    # 2**63 == 2.0**63 (and 1e300 == int(1e300)): one dict key, so one state. Round robin
    # hands each form to another upstream subtask, so no shared memo can hide a hash that
    # disagrees with ==.
    keys = [2**63, 2.0**63, 1e300, int(1e300)] * 3
    env = env_with(parallelism)
    stream = (
        env.from_collection(keys)
        .set_parallelism(1)
        .rebalance()
        .map(lambda k: k)
        .key_by(lambda k: k)
        .process(RunningCount())
    )
    out = await run_and_collect(env, stream)
    highest: dict[Any, int] = {}
    for key, n in out:
        highest[key] = max(highest.get(key, 0), n)
    assert sorted(highest.values()) == [6, 6]


@pytest.mark.parametrize("parallelism", [1, 3])
@pytest.mark.parametrize(
    ("key", "says"),
    [
        (Level.LOW, r"key <Level.LOW: 1> of type Level .*return its \.value \(1\)"),
        (Shape.ROUND, r"key <Shape.ROUND: 'round'> of type Shape .*return its \.value"),
        (float("nan"), r"key nan of type float cannot be used: NaN is not equal to itself"),
        (("a", float("nan")), r"its item nan of type float"),
    ],
    ids=["IntEnum", "str-Enum", "NaN", "NaN-in-tuple"],
)
async def test_unusable_keys_fail_the_job_at_the_first_record(
    parallelism: int, key: Any, says: str
) -> None:
    from streamlet import JobExecutionError

    seen: list[Any] = []
    env = env_with(parallelism)
    stream = (
        env.from_collection(list(range(50)))
        .set_parallelism(1)
        .map(lambda i: i)
        .uid("parse")
        .key_by(lambda i: key)
        .process(RunningCount())
        .uid("counts")
    )
    stream.add_sink(seen.append)
    with pytest.raises(JobExecutionError) as info:
        await env.execute("bad keys")
    assert seen == []  # refused at the first record: nothing reached state
    assert re.search(says, str(info.value))
    assert "internal error" not in str(info.value)
    # The keyed operator is named: as the failing operator at parallelism 1, as the
    # consumer of the key_by where the key was computed upstream at parallelism > 1.
    if parallelism == 1:
        assert info.value.operator_uid == "counts"
    else:
        assert info.value.operator_uid == "parse"
        assert "key_by in front of operator 'Keyed Process' (uid 'counts')" in str(info.value)


@pytest.mark.parametrize("parallelism", [1, 2, 3])
async def test_key_selector_errors_name_the_keyed_operator_and_what_to_return(
    parallelism: int,
) -> None:
    from streamlet import JobExecutionError

    env = env_with(parallelism)
    (
        env.from_collection([{"tags": ["a", "b"], "n": 1}])
        .map(lambda r: r)
        .uid("parse")
        .key_by(lambda r: r["tags"])  # a list: unhashable
        .sum("n")
        .uid("totals")
        .add_sink(lambda r: None)
    )
    with pytest.raises(JobExecutionError) as info:
        await env.execute("bad-key")
    text = str(info.value)
    assert "internal error" not in text
    assert "key ['a', 'b'] of type list cannot be used" in text
    assert "return a tuple instead, e.g. tuple(key)" in text
    if parallelism == 1:
        assert info.value.operator_uid == "totals"
    else:
        assert "key_by in front of operator 'Sum' (uid 'totals')" in text
        assert isinstance(info.value.__cause__, KeySelectorError)


async def test_a_key_selector_that_raises_upstream_is_not_an_internal_error() -> None:
    from streamlet import JobExecutionError

    env = env_with(2)
    (
        env.from_collection([{"n": 1}])
        .map(lambda r: r)
        .uid("parse")
        .key_by(lambda r: r["region"])
        .sum("n")
        .uid("totals")
        .add_sink(lambda r: None)
    )
    with pytest.raises(JobExecutionError) as info:
        await env.execute("raising key selector")
    text = str(info.value)
    assert "internal error" not in text
    assert (
        "key_by in front of operator 'Sum' (uid 'totals'): the key selector raised KeyError" in text
    )
    assert isinstance(info.value.__cause__.__cause__, KeyError)  # the user's own exception


class CountingKey:
    """A key selector that counts its calls (a job's subtasks share one instance)."""

    def __init__(self, modulus: int | None) -> None:
        self.calls = 0
        self.modulus = modulus

    def get_key(self, value: Any) -> Any:
        self.calls += 1
        return value if self.modulus is None else value % self.modulus


def _plus(a: int, b: int) -> int:
    return a + b


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_new_keys_are_hashed_and_selected_once_per_record(
    parallelism: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every key new: at parallelism > 1 the partitioner hashes each key to route it and
    # sends key and key group along, so the keyed operator neither selects nor hashes again.
    from streamlet.state import key_group_memo

    hashed: list[int] = []
    batch_hash, one_hash = key_group_memo.assign_to_key_groups, key_group_memo.assign_to_key_group

    def counting_batch(keys: list[Any], max_parallelism: int) -> list[int]:
        hashed.append(len(keys))
        return batch_hash(keys, max_parallelism)

    def counting_one(key: Any, max_parallelism: int) -> int:
        hashed.append(1)
        return one_hash(key, max_parallelism)

    monkeypatch.setattr(key_group_memo, "assign_to_key_groups", counting_batch)
    monkeypatch.setattr(key_group_memo, "assign_to_key_group", counting_one)
    selector = CountingKey(modulus=None)
    env = env_with(parallelism)
    out = await run_and_collect(env, env.from_sequence(1, 3000).key_by(selector).reduce(_plus))
    assert sorted(out) == list(range(1, 3001))
    assert sum(hashed) == 3000
    assert selector.calls == 3000


@pytest.mark.parametrize("parallelism", PARALLELISMS)
async def test_repeated_keys_stop_being_hashed_once_the_memos_know_them(
    parallelism: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlet.state import key_group_memo

    selector = CountingKey(modulus=31)
    hashed_at: list[int] = []  # key selector calls so far, at each hashing
    batch_hash = key_group_memo.assign_to_key_groups

    def counting_batch(keys: list[Any], max_parallelism: int) -> list[int]:
        hashed_at.append(selector.calls)
        return batch_hash(keys, max_parallelism)

    monkeypatch.setattr(key_group_memo, "assign_to_key_groups", counting_batch)
    env = env_with(parallelism)
    stream = env.from_sequence(1, 40_000).key_by(selector).reduce(_plus)
    out = await run_and_collect(env, stream)
    assert len(out) == 40_000
    # Each memo (the partitioner's, at parallelism > 1 each keyed subtask's) misses each of
    # the 31 keys once at most (usually all in its first batch), then never again; one that
    # thrashed would hash in most of the job's 80+ batches per memo.
    memos = 1 if parallelism == 1 else 1 + parallelism
    assert 1 <= len(hashed_at) <= memos * 31


@pytest.mark.parametrize("parallelism", [2, 4])
async def test_a_sink_on_a_keyed_stream_gets_plain_lists(parallelism: int) -> None:
    from streamlet import Sink, SinkWriter

    kinds: set[type] = set()
    received: list[Any] = []

    class Writer(SinkWriter):
        async def write_batch(self, records: list[Any]) -> None:
            kinds.add(type(records))
            received.extend(records)

    class KindSink(Sink):
        name = "kinds"

        def create_writer(self) -> SinkWriter:
            return Writer()

    env = env_with(parallelism)
    env.from_sequence(1, 500).key_by(lambda v: v % 7).sink_to(KindSink())
    await env.execute("keyed-sink")
    assert kinds == {list}
    assert sorted(received) == list(range(1, 501))
