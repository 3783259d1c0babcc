"""The logical graph is declarative: every node records what a translator needs.

A translator to Apache Flink (a later issue) reads each node's operation, user function, key
selector, arguments, uid, name and parallelism instead of digging them out of closures; the
local runtime builds its operators from the same record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlet import (
    FileSink,
    KeyedProcessFunction,
    MapFunction,
    StreamExecutionEnvironment,
)
from streamlet.operators.core import BatchTransformOperator, KeyedBatchOperator
from streamlet.operators.functions import FUNCTION_METHODS
from streamlet.operators.operations import OPERATIONS
from streamlet.operators.sinks.simple import PrintSinkWriter
from streamlet.operators.sinks.two_phase import TwoPhaseCommitSinkWriter
from streamlet.testing.harness import (
    KeyedOperatorTestHarness,
    KeyedTwoInputOperatorTestHarness,
    OperatorTestHarness,
    TwoInputOperatorTestHarness,
)


class Double(MapFunction):
    def __init__(self) -> None:
        self.calls = 0

    def map(self, value: Any) -> Any:
        self.calls += 1
        return {**value, "n": value["n"] * 2}


class Passthrough(KeyedProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        yield value


def by_word(record: dict[str, Any]) -> str:
    return record["word"]


def longer(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return b if b["n"] > a["n"] else a


def test_every_node_records_operation_function_key_args_uid_name_parallelism(
    tmp_path: Path,
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    double, passthrough, sink = Double(), Passthrough(), FileSink(tmp_path)
    records = env.from_collection([{"word": "a", "n": 1}]).uid("words")
    doubled = records.map(double).uid("double").name("Double").set_parallelism(3)
    longest = doubled.key_by(by_word).reduce(longer).uid("longest")
    summed = longest.key_by(by_word).sum("n").uid("sum-n")
    processed = summed.key_by(by_word).process(passthrough)
    processed.sink_to(sink).uid("files")
    processed.print("out")

    nodes = env._graph.nodes
    record = [
        (n.operation.api, n.function, n.key_selector, n.args, n.uid, n.name, n.parallelism)
        for n in nodes
    ]
    source = nodes[0].args[0]
    assert record == [
        ("source", None, None, (source,), "words", "Collection Source", None),
        ("map", double, None, (), "double", "Double", 3),
        ("reduce", longer, by_word, (), "longest", "Reduce", None),
        ("sum", None, by_word, ("n",), "sum-n", "Sum", None),
        ("process", passthrough, by_word, (), None, "Keyed Process", None),
        ("sink_to", None, None, (sink,), "files", "File Sink", None),
        ("print", None, None, ("out", str), None, "Print to Std. Out", None),
    ]
    assert nodes[0].source is source
    assert [n.operation for n in nodes] == [OPERATIONS[api] for api, *_ in record]
    assert [n.kind for n in nodes] == ["source"] + ["operator"] * 4 + ["sink"] * 2
    assert [n.keyed for n in nodes] == [False, False, True, True, True, False, False]
    # The record's function is the user's object itself, not a copy or a wrapper.
    assert nodes[1].function is double and nodes[4].function is passthrough


def test_the_runtime_builds_each_operator_from_the_record(tmp_path: Path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    double = Double()
    keyed = env.from_collection([1]).map(double).key_by(by_word)
    keyed.reduce(longer).print()
    keyed.sum("n").sink_to(FileSink(tmp_path))
    source, mapped, reduced, printed, summed, filed = env._graph.nodes

    with pytest.raises(TypeError, match="source's operator is made by the runtime"):
        source.create_operator()
    first, second = mapped.create_operator(), mapped.create_operator()
    assert isinstance(first, BatchTransformOperator) and not first.keyed
    assert isinstance(second, BatchTransformOperator)
    # Each instance (subtask, attempt) gets its own copy of a function object.
    functions = {id(first.adapter.obj), id(second.adapter.obj), id(double)}
    assert len(functions) == 3
    for node in (reduced, summed):
        op = node.create_operator()
        assert isinstance(op, KeyedBatchOperator) and op.keyed
    assert isinstance(printed.create_operator(), PrintSinkWriter)
    assert isinstance(filed.create_operator(), TwoPhaseCommitSinkWriter)


def test_one_table_says_which_method_each_operation_calls() -> None:
    for api, op in OPERATIONS.items():
        assert op.api == api
        if op.method is not None:
            assert FUNCTION_METHODS[api] == op.method
    assert {api for api, op in OPERATIONS.items() if op.method} == set(FUNCTION_METHODS)
    # The harnesses drive the table's operations, not a list of their own.
    assert OperatorTestHarness._kinds == ["map", "flat_map", "filter", "process"]
    assert KeyedOperatorTestHarness._kinds == ["map", "flat_map", "filter", "process", "reduce"]
    two_inputs = ["co_map", "co_flat_map", "co_process", "broadcast_process"]
    assert TwoInputOperatorTestHarness._kinds == two_inputs
    # The interval join exists on keyed streams only.
    assert KeyedTwoInputOperatorTestHarness._kinds == [*two_inputs, "interval_join"]
    assert [api for api, op in OPERATIONS.items() if op.inputs == 2] == [
        *two_inputs,
        "interval_join",
    ]
    with pytest.raises(TypeError, match="'reduce' has no operator for a non-keyed stream"):
        OPERATIONS["reduce"].create(longer, None, ())


def test_streams_built_before_a_job_started_feed_the_next_job_as_in_flink() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    numbers = env.from_collection([1, 2, 3])
    stamped = numbers.map(lambda x: x)
    first: list[int] = []
    stamped.map(lambda x: x * 2).add_sink(first.append)
    env.execute("first")
    # The next job reuses `stamped` (and its source): copies of them, not the first
    # job's sink, which ran once.
    second: list[int] = []
    third: list[int] = []
    stamped.filter(lambda x: x > 1).add_sink(second.append)
    stamped.map(lambda x: -x).add_sink(third.append)
    graph = env._graph
    kinds = [n.kind for n in graph.nodes]
    assert kinds == ["source", "operator", "operator", "sink", "operator", "sink"]  # once each
    env.execute("second")
    assert first == [2, 4, 6] and second == [2, 3] and third == [-1, -2, -3]
