"""The same jobs on streamlet's runtime and on Flink's local mini-cluster: equal results."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from streamlet import MapFunction, StreamExecutionEnvironment
from tests.flink.runners import both

pytestmark = pytest.mark.slow


def _final_per_key(records, key=lambda r: r[0]):
    return {key(r): r for r in records}


def test_word_count_same_final_counts() -> None:
    lines = ["to be or not to be", "that is the question", "to be"]

    def build(env):
        return (
            env.from_collection(lines)
            .flat_map(lambda s: [(w, 1) for w in s.split()])
            .key_by(lambda t: t[0])
            .sum(1)
        )

    local, flink = both(build)
    assert Counter(flink) == Counter(local)
    assert _final_per_key(flink)["to"] == ("to", 3)


def test_equal_keys_of_different_types_are_one_key() -> None:
    # 1, 1.0 and True are one key in streamlet: without normalisation Flink hashes three
    # different serialized keys and keeps three running sums.
    def build(env):
        return env.from_collection([(1, 1), (1.0, 10), (True, 100)]).key_by(lambda t: t[0]).sum(1)

    local, flink = both(build, parallelism=1)
    assert [r[1] for r in flink] == [r[1] for r in local] == [1, 11, 111]


class _Scale(MapFunction):
    def __init__(self) -> None:
        self.factor = 0

    def open(self, runtime_context) -> None:
        self.factor = 10 + runtime_context.get_number_of_parallel_subtasks()

    def map(self, value):
        return value * self.factor


def test_sequence_filter_map_with_open_and_reduce() -> None:
    def build(env):
        return (
            env.from_sequence(1, 50)
            .filter(lambda x: x % 3 != 0)
            .map(_Scale())
            .key_by(lambda x: x % 2)
            .reduce(lambda a, b: a + b)
            .rebalance()
            .map(lambda x: ("total", x))
        )

    local, flink = both(build)
    assert sorted(flink) == sorted(local)


def test_read_text_file_and_max(tmp_path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("a 3\nb 5\na 7\nb 1\n")

    def build(env):
        return (
            env.read_text_file(str(path))
            .map(lambda s: (s.split()[0], int(s.split()[1])))
            .key_by(lambda t: t[0])
            .max(1)
        )

    local, flink = both(build)
    assert _final_per_key(flink) == _final_per_key(local) == {"a": ("a", 7), "b": ("b", 5)}


def test_task_failure_reaches_the_caller() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()

    def boom(x):
        raise ZeroDivisionError("injected")

    stream = env.from_collection([1, 2, 3]).map(boom)
    with pytest.raises(RuntimeError, match="failed"):
        stream.execute_and_collect(runner="flink")


def test_min_by_and_max_by_keep_the_first_extreme_record() -> None:
    # Ties: the first record with the extreme value stays (Flink's minBy/maxBy), which the
    # third field tells apart.
    rows = [("a", 3, 0), ("a", 1, 1), ("b", 5, 2), ("a", 1, 3), ("b", 7, 4), ("b", 7, 5)]

    def build(env, kind):
        keyed = env.from_collection(rows).key_by(lambda r: r[0])
        return getattr(keyed, kind)(1)

    for kind, final in (("min_by", {"a": 1, "b": 2}), ("max_by", {"a": 0, "b": 4})):
        local, flink = both(partial(build, kind=kind), parallelism=1)
        assert flink == local
        assert {k: r[2] for k, r in _final_per_key(flink).items()} == final


def test_partition_custom_sends_each_record_where_the_partitioner_says() -> None:
    class Where(MapFunction):
        def open(self, runtime_context) -> None:
            self.index = runtime_context.get_index_of_this_subtask()

        def map(self, value):
            return value, self.index

    def build(env):
        numbers = env.from_sequence(0, 40).partition_custom(lambda key, n: key % n, lambda x: x)
        return numbers.map(Where()).set_parallelism(3)

    local, flink = both(build, parallelism=3)
    assert sorted(flink) == sorted(local) == [(x, x % 3) for x in range(41)]
