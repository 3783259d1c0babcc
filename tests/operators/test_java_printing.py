"""print() of a typed PyFlink stream shows records as Flink (Java) prints them, and a FLOAT
field of from_collection arrives rounded to 32 bits, as PyFlink hands it back (issue 16)."""

from __future__ import annotations

import pytest

from streamlet import Row, StreamExecutionEnvironment, Types
from streamlet.operators.typeinfo import java_string


@pytest.mark.parametrize(
    ("value", "java"),
    [
        (1.0, "1.0"),
        (110.1, "110.1"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (-2.5, "-2.5"),
        (0.0, "0.0"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_doubles_print_as_javas_double_to_string(value: float, java: str) -> None:
    assert java_string(Types.DOUBLE())(value) == java


def test_typed_records_print_as_java_objects() -> None:
    assert java_string(Types.TUPLE([Types.STRING(), Types.INT()]))(("the", 15)) == "(the,15)"
    assert java_string(Types.ROW([Types.INT(), Types.STRING()]))(Row(1, "hi")) == "+I[1, hi]"
    assert java_string(Types.MAP(Types.STRING(), Types.BOOLEAN()))({"a": True}) == "{a=true}"
    assert java_string(Types.FLOAT())(110.1) == "110.1"  # Float.toString: shortest float32
    assert java_string(Types.TUPLE([Types.STRING(), Types.LONG()]))(("x", None)) == "(x,null)"
    assert java_string(None)(("the", 15)) == "('the', 15)"  # untyped: Python's str


def test_float_fields_of_from_collection_are_rounded_to_32_bits() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    records = env.from_collection(
        [("Alice", 110.1)], type_info=Types.TUPLE([Types.STRING(), Types.FLOAT()])
    ).execute_and_collect(limit=1)
    assert records == [("Alice", 110.0999984741211)]


def test_print_of_a_typed_stream_and_of_what_keeps_its_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    words = env.from_collection(["a", "b", "a"])
    pairs = words.map(lambda w: (w, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
    pairs.key_by(lambda p: p[0]).reduce(lambda x, y: (x[0], x[1] + y[1])).print()  # keeps it
    pairs.map(lambda p: p).print("untyped")  # a map without output_type: Python's str
    env.execute("typed print")
    lines = sorted(capsys.readouterr().out.splitlines())
    assert lines == [
        "(a,1)",
        "(a,2)",
        "(b,1)",
        "untyped> ('a', 1)",
        "untyped> ('a', 1)",
        "untyped> ('b', 1)",
    ]
