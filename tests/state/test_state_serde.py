"""The default serializer is type-faithful or refuses; custom serializers plug in per state."""

from __future__ import annotations

import enum
import math
import sys
import uuid
from collections import OrderedDict, defaultdict, namedtuple
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import orjson
import pytest

from streamlet.state import (
    HeapKeyedStateBackend,
    JsonSerializer,
    KeyGroupRange,
    ListStateDescriptor,
    MapStateDescriptor,
    PickleSerializer,
    StateSerializationError,
    ValueStateDescriptor,
)
from streamlet.state.json_codec import UnserializableValueError, from_json, to_json
from streamlet.state.serde import (
    codec_name,
    decode_table,
    encode_table,
    encode_table_chunk,
    join_table_chunks,
)
from tests.state._state_model import assert_same


@dataclass
class Point:
    x: int
    y: float
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Frozen:
    key: tuple[int, str]
    inner: Point | None = None


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


class Opaque:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque)

    __hash__ = object.__hash__


class Region(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)


Pair = namedtuple("Pair", "a b")

FAITHFUL_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    10**5000,
    0.0,
    -0.0,
    1.5,
    1e308,
    float("inf"),
    float("-inf"),
    "",
    "text",
    "\u2603 snow",
    "$tuple",
    b"",
    b"\x00\xff",
    bytearray(b"ab"),
    (),
    (1,),
    (1, "a", (2.0, None)),
    [],
    [1, 2, 3],
    [1, "a", None, 1.5, True],
    [(1, 2), [3, [4]]],
    {},
    {"a": 1},
    {"a": (1, 2)},
    {1: "int key", "1": "str key", 1.5: "float", None: "none", (1, 2): "tuple", False: "bool"},
    {"$tuple": [1, 2]},
    {"$": 1},
    {"$x": {"$y": 2}, "z": 3},
    {(1, ("a", b"b")): [{2: {3}}]},
    {1, 2, 3},
    frozenset({"a", (1, 2)}),
    set(),
    1 + 2j,
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("NaN"),
    uuid.UUID(int=12345),
    date(2024, 2, 29),
    datetime(2024, 1, 1, 12, 30, 1, 5),
    datetime(2024, 1, 1, 12, 30, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    datetime(2024, 11, 3, 1, 30, fold=1),
    time(23, 59, 59, 999999),
    timedelta(days=-1, seconds=5, microseconds=7),
    Point(1, 2.0, ["a"]),
    Frozen((1, "a"), Point(2, 3.5)),
    [Point(1, 1.0), {"p": Frozen((0, ""))}],
    Pair(1, "a"),
    Pair(Pair(1, 2), (3, b"x")),
    {Pair("k", 1): [Pair(None, 2.5)]},
]


def _id(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # ints beyond sys.int_info's str limit
        return f"int-{value.bit_length()}-bits"
    return text if len(text) <= 40 else text[:37] + "..."


def _same_or_both_nan(actual: Any, expected: Any) -> None:
    if isinstance(expected, Decimal) and expected.is_nan():
        assert isinstance(actual, Decimal) and actual.is_nan()
    else:
        assert_same(actual, expected)


@pytest.mark.parametrize("value", FAITHFUL_VALUES, ids=_id)
def test_json_serializer_round_trip_is_type_faithful(value: Any) -> None:
    serializer = JsonSerializer()
    _same_or_both_nan(serializer.loads(serializer.dumps(value)), value)


def test_nan_round_trips_as_float_nan() -> None:
    serializer = JsonSerializer()
    restored = serializer.loads(serializer.dumps([float("nan"), (float("nan"),)]))
    assert type(restored) is list and math.isnan(restored[0]) and math.isnan(restored[1][0])


def test_dict_key_order_is_kept() -> None:
    value = {3: "c", 1: "a", 2: "b"}
    assert list(JsonSerializer().loads(JsonSerializer().dumps(value))) == [3, 1, 2]


@pytest.mark.parametrize(
    ("table", "mode"),
    [
        ({"a": 1, "b": 2.5, "c": None, "d": True, "e": "s"}, "pp"),
        ({1: 1, 2: 2, -3: 3}, "pp"),
        ({1: [1, 2], "k": []}, "pp"),
        ({"k": {"a": 1, "b": "x"}}, "pp"),
        ({(1, 2): 1}, "up"),
        ({"k": {1: 2}}, "pt"),
        ({"k": (1, 2)}, "pu"),
        ({"k": (1, (2, 3))}, "pt"),
        ({(1, "a"): (2, None), (3, "b"): (4.5, True)}, "uu"),
        ({"k": [(1, 2)]}, "pt"),
        ({"k": float("inf")}, "pt"),
        ({"k": 2**64}, "pt"),
        ({"k": [1, 2.5, 2**65]}, "pt"),
        ({b"k": 1}, "tp"),
        ({"k": 1, "j": "a", "l": [1]}, "pt"),
        ({Pair("eu", 1): Pair("eu", 3)}, "tt"),
        ({}, "pp"),
    ],
)
def test_table_mode_and_round_trip(table: dict[Any, Any], mode: str) -> None:
    got_mode, payload = encode_table(table, None)
    assert got_mode == mode
    assert_same(decode_table(got_mode, payload, None), table)


@pytest.mark.parametrize("value", FAITHFUL_VALUES[:40], ids=_id)
def test_table_round_trip_for_every_value(value: Any) -> None:
    table = {"k": value, 7: [value], (1, "t"): {"m": value}}
    mode, payload = encode_table(table, None)
    assert_same(decode_table(mode, payload, None), table)


def test_plain_fast_path_keeps_bool_int_float_distinct() -> None:
    table = {1: True, 2: 1, 3: 1.0, "1": 0.0, "2": False}
    mode, payload = encode_table(table, None)
    assert mode == "pp"
    assert_same(decode_table(mode, payload, None), table)


def test_str_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnserializableValueError, match=r"surrogates .*\(at key 'k'\)$"):
        encode_table({"k": "\ud800"}, None)


@dataclass
class WithExtra:
    x: int


def test_local_dataclass_is_refused() -> None:
    @dataclass
    class Local:
        x: int

    with pytest.raises(
        UnserializableValueError,
        match=r"^dataclass .*Local cannot be found by its module and qualified name",
    ):
        to_json(Local(1))


def test_dataclass_with_non_field_attributes_is_refused() -> None:
    value = WithExtra(1)
    value.extra = 2  # type: ignore[attr-defined]
    with pytest.raises(
        UnserializableValueError, match=r"has attributes that are not fields \(extra\)"
    ):
        to_json(value)


def test_local_namedtuple_is_refused() -> None:
    Local = namedtuple("Local", "x")  # this module has no attribute Local to find it by
    with pytest.raises(
        UnserializableValueError,
        match=r"^namedtuple .*Local cannot be found by its module and qualified name",
    ):
        to_json(Local(1))


class Guarded(namedtuple("Guarded", "a b")):
    __slots__ = ()
    made = 0

    def __new__(cls, a: Any, b: Any) -> Guarded:
        Guarded.made += 1
        return super().__new__(cls, a, b)


def test_namedtuple_restore_never_runs_new_and_checks_fields() -> None:
    data = orjson.loads(orjson.dumps(to_json(Guarded(1, (2,)))))
    before = Guarded.made
    restored = from_json(data)
    assert Guarded.made == before
    assert_same(restored, Guarded(1, (2,)))
    assert "antigravity" not in sys.modules
    with pytest.raises(ValueError, match=r"^cannot restore namedtuple antigravity:Fly: it is not"):
        from_json({"$namedtuple": ["antigravity:Fly", {}]})
    assert "antigravity" not in sys.modules
    with pytest.raises(ValueError, match=r"it has fields \['a', 'b'\] but the state holds"):
        from_json({"$namedtuple": [f"{__name__}:Pair", {"b": 1, "a": 2}]})
    with pytest.raises(ValueError, match=r"^cannot restore namedtuple .*:Point: it is not"):
        from_json({"$namedtuple": [f"{__name__}:Point", {"x": 1, "y": 2.0, "tags": []}]})


def test_dataclass_restore_never_imports_and_checks_fields() -> None:
    assert "antigravity" not in sys.modules
    with pytest.raises(
        ValueError, match=r"^cannot restore dataclass antigravity:Fly: it is not loaded"
    ):
        from_json({"$dataclass": ["antigravity:Fly", {}]})
    assert "antigravity" not in sys.modules
    ref = f"{__name__}:Point"
    with pytest.raises(ValueError, match=r"it has fields \['x', 'y', 'tags'\] but the state holds"):
        from_json({"$dataclass": [ref, {"x": 1}]})


def test_dataclass_restore_does_not_run_init() -> None:
    restored = from_json(orjson.loads(orjson.dumps(to_json(Point(1, 2.0)))))
    assert restored == Point(1, 2.0) and type(restored) is Point


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Opaque(), "tests.state.test_state_serde.Opaque"),
        (Color.RED, "tests.state.test_state_serde.Color"),
        (Level.LOW, "tests.state.test_state_serde.Level"),
        (defaultdict(int), "collections.defaultdict"),
        (OrderedDict(a=1), "collections.OrderedDict"),
        ([1, {"a": (object(),)}], "object"),
        (range(3), "range"),
    ],
    ids=_id,
)
def test_unsupported_types_are_refused_with_their_name(value: Any, type_name: str) -> None:
    with pytest.raises(
        UnserializableValueError,
        match=rf"^type {type_name} is not supported by the default JSON serializer",
    ):
        JsonSerializer().dumps(value)


def test_datetime_with_non_fixed_tzinfo_is_refused() -> None:
    with pytest.raises(UnserializableValueError, match=r"^datetime with tzinfo of type .*Region"):
        to_json(datetime(2024, 1, 1, tzinfo=Region()))  # type: ignore[abstract]  # all it needs


@pytest.mark.parametrize(
    "data",
    [{"$nope": 1}, {"$tuple": 5}, {"$bytes": "!!"}, {"$int": "xyz"}, {"$dict": [[1]]}],
    ids=_id,
)
def test_malformed_tags_raise_value_error(data: Any) -> None:
    with pytest.raises(ValueError):
        from_json(data)


# --- Through the backend ---


def _backend(uid: str = "op-9") -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(uid, KeyGroupRange(0, 127), 128)


def _snapshot_bytes(backend: HeapKeyedStateBackend) -> dict[int, bytes]:
    snapshot = backend.snapshot_sync()
    return {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}


def test_unserializable_value_fails_snapshot_naming_operator_state_and_type() -> None:
    backend = _backend()
    good = backend.get_state(ValueStateDescriptor("good"))
    bad = backend.get_map_state(MapStateDescriptor("bad"))
    backend.set_current_key("k")
    good.update(1)
    bad.put("x", Opaque())
    snapshot = backend.snapshot_sync()
    kg = backend.current_key_group
    assert kg is not None  # a key is set
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot serialize state 'bad' of operator 'op-9': type "
        r"tests\.state\.test_state_serde\.Opaque is not supported by the default JSON "
        r"serializer .* \(at key 'k'\)$",
    ) as info:
        snapshot.serialize_key_group(kg)
    assert info.value.operator_uid == "op-9"
    assert info.value.state_name == "bad"
    assert "Opaque" in info.value.detail


def test_round_trip_through_backend_keeps_types() -> None:
    backend = _backend()
    value = backend.get_state(ValueStateDescriptor("v"))
    entries = backend.get_map_state(MapStateDescriptor("m"))
    stored = {}
    for i, item in enumerate(FAITHFUL_VALUES):
        if isinstance(item, Decimal) and item.is_nan():
            continue
        key = (i, "k") if i % 2 else i
        backend.set_current_key(key)
        if item is not None:
            value.update(item)
        entries.put(i, item)
        entries.put(str(i), [item])
        stored[key] = (i, item)
    restored = _backend()
    restored.restore(_snapshot_bytes(backend))
    value2 = restored.get_state(ValueStateDescriptor("v"))
    entries2 = restored.get_map_state(MapStateDescriptor("m"))
    for key, (i, item) in stored.items():
        restored.set_current_key(key)
        if item is not None:
            assert_same(value2.value(), item)
        assert_same(dict(entries2.items()), {i: item, str(i): [item]})


def test_pickle_serializer_handles_arbitrary_objects() -> None:
    pickle = PickleSerializer()
    backend = _backend()
    value = backend.get_state(ValueStateDescriptor("v", serializer=pickle))
    items = backend.get_list_state(ListStateDescriptor("l", serializer=pickle))
    backend.set_current_key(("k", 1))
    value.update(Opaque())
    items.add_all([Color.RED, Level.LOW])
    chunks = _snapshot_bytes(backend)
    restored = _backend()
    restored.restore(chunks)
    restored.set_current_key(("k", 1))
    assert restored.get_state(ValueStateDescriptor("v", serializer=pickle)).value() == Opaque()
    restored_items = restored.get_list_state(ListStateDescriptor("l", serializer=pickle)).get()
    assert restored_items == [Color.RED, Level.LOW]
    assert type(restored_items[1]) is Level


def test_restore_with_another_serializer_is_refused() -> None:
    backend = _backend()
    backend.get_state(ValueStateDescriptor("v", serializer=PickleSerializer()))
    backend.set_current_key("k")
    backend.get_state(ValueStateDescriptor("v")).update(1)
    restored = _backend()
    restored.restore(_snapshot_bytes(backend))
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot deserialize state 'v' of operator 'op-9': restored data was written "
        r"with serializer 'pickle', but the descriptor uses 'json'$",
    ):
        restored.get_state(ValueStateDescriptor("v"))


class Failing:
    name = "failing"

    def dumps(self, value: Any) -> bytes:
        raise RuntimeError("boom")

    def loads(self, data: bytes) -> Any:  # pragma: no cover - never reached
        return None


class Texty:
    def dumps(self, value: Any) -> str:
        return str(value)

    def loads(self, data: bytes) -> Any:  # pragma: no cover - never reached
        return None


def test_failing_custom_serializer_is_reported() -> None:
    backend = _backend()
    state = backend.get_state(ValueStateDescriptor("v", serializer=Failing()))
    backend.set_current_key("k")
    state.update(1)
    snapshot = backend.snapshot_sync()
    assert backend.current_key_group is not None  # a key is set
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot serialize state 'v' of operator 'op-9': serializer 'failing' failed "
        r"on a value of type int: RuntimeError: boom \(at key 'k'\)$",
    ):
        snapshot.serialize_key_group(backend.current_key_group)


def test_custom_serializer_must_return_bytes() -> None:
    backend = _backend()
    state = backend.get_state(ValueStateDescriptor("v", serializer=Texty()))
    backend.set_current_key("k")
    state.update(1)
    assert backend.current_key_group is not None  # a key is set
    with pytest.raises(
        StateSerializationError, match=r"serializer 'Texty' returned str, not bytes"
    ):
        backend.snapshot_sync().serialize_key_group(backend.current_key_group)


def test_codec_names() -> None:
    assert codec_name(None) == "json"
    assert codec_name(JsonSerializer()) == "json"
    assert codec_name(PickleSerializer()) == "pickle"
    assert codec_name(Texty()) == "Texty"


def test_a_table_encoded_in_chunks_is_the_table_encoded_in_one_piece() -> None:
    cases: list[tuple[list[Any], list[Any]]] = [
        (list(range(10)), [i * 2 for i in range(10)]),
        ([(i, str(i)) for i in range(7)], [(i, i) for i in range(7)]),
        (["a", "b", "c"], [None, True, "x"]),
    ]
    for keys, values in cases:
        table = dict(zip(keys, values, strict=True))
        mode, payload = encode_table(table, None)
        chunks = [
            encode_table_chunk(keys[i : i + 3], values[i : i + 3], None)
            for i in range(0, len(keys), 3)
        ]
        assert all(c is not None and c[0] == mode for c in chunks)
        assert (
            join_table_chunks([c[1] for c in chunks if c], [c[2] for c in chunks if c]) == payload
        )


def test_chunks_the_fast_path_does_not_take_are_refused() -> None:
    assert encode_table_chunk([1], [2**70], None) is None  # beyond 64 bits
    assert encode_table_chunk([1], [[1, 2]], None) is None  # a list: the full checks decide
    assert encode_table_chunk([1], [2], PickleSerializer()) is None  # a custom serializer
