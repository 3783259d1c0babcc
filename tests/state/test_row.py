"""PyFlink's Row: fields by position and name, equality and hashing, and what state needs of
it: a Row is a usable key (a stable hash that agrees with its equality) and round-trips
through the default serializer as a Row, nested values and all."""

from __future__ import annotations

import pickle
from decimal import Decimal

import orjson
import pytest

from streamlet import Row, RowKind
from streamlet.state.json_codec import from_json, to_json
from streamlet.state.key_groups import assign_to_key_groups, stable_hash
from streamlet.state.serde import decode_table, encode_table


def test_named_and_positional_fields() -> None:
    row = Row(name="Alice", age=11)
    assert (row.name, row["age"], row[0], len(row), list(row)) == (
        "Alice",
        11,
        "Alice",
        2,
        ["Alice", 11],
    )
    assert row.as_dict() == {"name": "Alice", "age": 11}
    assert "name" in row and "x" not in row
    assert repr(row) == "Row(name='Alice', age=11)"
    positional = Row("a", 1)
    assert positional[1] == 1 and repr(positional) == "<Row('a', 1)>"
    row["age"] = 12
    row[0] = "Bob"
    assert row == Row(name="Bob", age=12)
    with pytest.raises(AttributeError, match="has no field 'x'"):
        row.x  # noqa: B018
    with pytest.raises(KeyError, match="has no field 'x'"):
        row["x"]
    with pytest.raises(TypeError, match="needs a row of named fields"):
        positional.as_dict()
    with pytest.raises(ValueError, match="not both"):
        Row(1, a=2)
    with pytest.raises(AttributeError, match="set by index or name"):
        row.age = 3


def test_a_row_of_names_is_a_row_class() -> None:
    person = Row("name", "age")
    alice = person("Alice", 11)
    assert alice == Row(name="Alice", age=11) and alice.age == 11
    with pytest.raises(ValueError, match="has 2 fields, got 3 values"):
        person("a", 1, 2)
    with pytest.raises(TypeError, match="only a row of field names"):
        Row(1, 2)("a")


def test_equality_and_hash_agree() -> None:
    # Named rows are equal in any field order, and so are their hashes (PyFlink's hash the
    # values in order, which breaks dict lookups of such rows).
    assert Row(a=1, b=2) == Row(b=2, a=1)
    assert hash(Row(a=1, b=2)) == hash(Row(b=2, a=1))
    assert stable_hash(Row(a=1, b=2)) == stable_hash(Row(b=2, a=1))
    assert Row(1, 2) != Row(a=1, b=2)
    assert Row(1, 2) != (1, 2)  # a row is not a tuple, as in PyFlink
    assert {Row("k", 1): "v"}[Row("k", 1)] == "v"
    assert Row.of_kind(RowKind.DELETE, 1) != Row(1)
    assert str(RowKind.UPDATE_AFTER) == "+U"


def test_rows_are_keys_with_a_stable_hash() -> None:
    keys = [Row("a", 1), Row(name="b", n=(1, "x")), Row("a", 1)]
    groups = assign_to_key_groups(keys, 128)
    assert groups[0] == groups[2] and all(0 <= g < 128 for g in groups)
    # The hash is not Python's (salted per process for strs): it is fixed forever.
    assert stable_hash(Row("a", 1)) == stable_hash(Row("a", 1))
    assert stable_hash(Row("a", 1)) != stable_hash(("a", 1))
    with pytest.raises(TypeError, match="lists are mutable"):
        stable_hash(Row([1]))


def test_rows_round_trip_through_the_default_codec_as_rows() -> None:
    values = [
        Row(name="a", n=1, nested=Row(1, (2, Decimal("3.5")))),
        Row(1, b"x", None),
        Row.of_kind(RowKind.UPDATE_BEFORE, k=1),
    ]
    for value in values:
        back = from_json(orjson.loads(orjson.dumps(to_json(value))))
        assert back == value and type(back) is Row
        assert back.get_row_kind() is value.get_row_kind()
    assert to_json(Row(a=1)) == {"$row": [["a"], [1], 0]}


def test_a_keyed_state_table_of_rows_round_trips() -> None:
    table = {Row("k", 1): Row(total=3), Row(name="x"): [Row(1), Row(2)]}
    mode, payload = encode_table(table, None)
    back = decode_table(mode, payload, None)
    assert back == table
    assert all(type(k) is Row for k in back)


def test_rows_pickle_as_rows() -> None:
    row = Row(name="a", n=[1])
    assert pickle.loads(pickle.dumps(row)) == row
