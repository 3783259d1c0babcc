"""State descriptors: PyFlink-shaped constructors and exact validation errors."""

from __future__ import annotations

import pytest

from streamlet.state import (
    AggregateFunction,
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    PickleSerializer,
    ReducingStateDescriptor,
    ValueStateDescriptor,
)


class Count(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: object, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator


def test_pyflink_positional_type_info_is_accepted() -> None:
    assert ValueStateDescriptor("count", "Types.INT()").type_info == "Types.INT()"
    assert ListStateDescriptor("l", "Types.STRING()").name == "l"
    m = MapStateDescriptor("m", "Types.STRING()", "Types.LONG()")
    assert (m.key_type_info, m.value_type_info) == ("Types.STRING()", "Types.LONG()")
    r = ReducingStateDescriptor("r", lambda a, b: a + b, "Types.INT()")
    assert r.reduce(1, 2) == 3
    a = AggregatingStateDescriptor("a", Count(), "Types.INT()")
    assert a.aggregate_function.get_result(3) == 3


def test_keyword_options() -> None:
    serializer = PickleSerializer()
    d = ValueStateDescriptor("v", default_value=0, serializer=serializer)
    assert d.default_value == 0 and d.serializer is serializer
    assert d.kind == "value"
    assert ListStateDescriptor("l").kind == "list"
    assert MapStateDescriptor("m").kind == "map"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: ValueStateDescriptor(""),
            ValueError,
            r"^state name must be a non-empty str, got ''$",
        ),
        (lambda: ListStateDescriptor(None), TypeError, r"^state name must be a str, got None$"),  # type: ignore[arg-type]
        (lambda: MapStateDescriptor(b"m"), TypeError, r"^state name must be a str, got b'm'$"),  # type: ignore[arg-type]
        (
            lambda: ValueStateDescriptor("v", serializer=object),
            TypeError,
            r"^serializer must have dumps\(value\) -> bytes and loads\(bytes\) -> value methods",
        ),
        (
            lambda: ReducingStateDescriptor("r", 3),
            TypeError,
            r"^reduce_function must be a callable or have a reduce\(a, b\) method, got 3$",
        ),
        (
            lambda: AggregatingStateDescriptor("a", lambda x: x),
            TypeError,
            r"^aggregate_function must have create_accumulator\(\), add\(value, accumulator\) "
            r"and get_result\(accumulator\) methods; .* has no create_accumulator\(\)$",
        ),
    ],
)
def test_validation_errors(make, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_aggregate_function_merge_is_optional() -> None:
    with pytest.raises(NotImplementedError, match=r"^Count does not implement merge\(\)$"):
        Count().merge(1, 2)


def test_descriptors_are_frozen() -> None:
    d = ValueStateDescriptor("v")
    with pytest.raises(AttributeError):
        d.name = "w"  # type: ignore[misc]
