"""PyFlink's type information (``pyflink.common.typeinfo``): ``Types.STRING()``,
``Types.TUPLE([...])``, ``Types.ROW_NAMED([...], [...])`` and the rest.

PyFlink needs a type to serialize records between Python and Java. streamlet runs in one
process and never serializes records in flight, so a type information is accepted wherever
PyFlink takes ``output_type`` / ``type_info`` / ``key_type`` and is used for what is cheap
and useful:

* ``from_collection(data, type_info)`` checks every element against it (at build time,
  naming the element and the type) and, as PyFlink does, turns tuples into :class:`Row`
  objects for a ``ROW`` / ``ROW_NAMED`` type, lists into tuples for a ``TUPLE`` type;
* elsewhere (``map(f, output_type)``, ``key_by(f, key_type)``, state descriptors, window
  functions) it is accepted, checked to be a type information, and not enforced on
  records: checking every record would cost on the hot path, and streamlet needs no type
  to move or checkpoint a record.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from streamlet.state.row import Row, RowKind

__all__ = [
    "BasicArrayTypeInfo",
    "BasicTypeInfo",
    "ListTypeInfo",
    "MapTypeInfo",
    "ObjectArrayTypeInfo",
    "PickledBytesTypeInfo",
    "PrimitiveArrayTypeInfo",
    "RowTypeInfo",
    "SqlTimeTypeInfo",
    "TupleTypeInfo",
    "TypeInformation",
    "Types",
    "check_type_info",
    "conform_collection",
    "java_string",
]


class TypeInformation:
    """The type of a record or field. :meth:`problem` says why a value does not fit."""

    name = "TypeInformation"

    def problem(self, value: Any) -> str | None:
        """``None`` if ``value`` fits this type, else why not (for error messages)."""
        return None

    def conform(self, value: Any) -> Any:
        """``value`` as the Python object this type gives a job (a Row for a ROW type, a
        tuple for a TUPLE type); call after :meth:`problem` returned None."""
        return value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return self.name


class BasicTypeInfo(TypeInformation):
    """A scalar type: STRING, BOOLEAN, BYTE, SHORT, INT, LONG, FLOAT, DOUBLE, CHAR, BIG_INT,
    BIG_DEC, INSTANT. Integer types check their range as Java's types have it."""

    def __init__(
        self, name: str, types: tuple[type, ...], bits: int | None = None, char: bool = False
    ) -> None:
        self.name = name
        self._types = types
        self._bits = bits
        self._char = char

    def conform(self, value: Any) -> Any:
        # A FLOAT is a Java float: PyFlink hands back the value rounded to 32 bits.
        if self.name == "FLOAT":
            return _float32(float(value))
        if self.name == "DOUBLE":
            return float(value)
        return value

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) and bool not in self._types:
            return f"a bool is not a {self.name}"
        if not isinstance(value, self._types):
            return f"a {type(value).__name__} is not a {self.name}"
        checked: Any = value  # isinstance with a tuple of types narrows to object
        bits = self._bits
        if bits is not None and not -(1 << (bits - 1)) <= checked < 1 << (bits - 1):
            return f"{value} is outside the range of a {self.name} ({bits}-bit)"
        if self._char and len(checked) != 1:
            return f"a CHAR is a str of length 1, got length {len(checked)}"
        return None

    STRING_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("STRING", (str,)))
    BOOLEAN_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("BOOLEAN", (bool,)))
    BYTE_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("BYTE", (int,), 8))
    SHORT_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("SHORT", (int,), 16))
    INT_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("INT", (int,), 32))
    LONG_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("LONG", (int,), 64))
    FLOAT_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("FLOAT", (float, int)))
    DOUBLE_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("DOUBLE", (float, int)))
    CHAR_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("CHAR", (str,), char=True))
    BIG_INT_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("BIG_INT", (int,)))
    BIG_DEC_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("BIG_DEC", (Decimal,)))
    INSTANT_TYPE_INFO = staticmethod(lambda: BasicTypeInfo("INSTANT", (datetime,)))


class SqlTimeTypeInfo(TypeInformation):
    """SQL_DATE (``datetime.date``), SQL_TIME (``datetime.time``), SQL_TIMESTAMP
    (``datetime.datetime``)."""

    def __init__(self, name: str, t: type) -> None:
        self.name = name
        self._type = t

    def problem(self, value: Any) -> str | None:
        t = self._type
        if not isinstance(value, t) or (t is date and isinstance(value, datetime)):
            return f"a {type(value).__name__} is not a {self.name} ({t.__name__})"
        return None

    DATE = staticmethod(lambda: SqlTimeTypeInfo("SQL_DATE", date))
    TIME = staticmethod(lambda: SqlTimeTypeInfo("SQL_TIME", time))
    TIMESTAMP = staticmethod(lambda: SqlTimeTypeInfo("SQL_TIMESTAMP", datetime))


class PickledBytesTypeInfo(TypeInformation):
    """Any Python object (PyFlink pickles it; streamlet keeps it as it is)."""

    name = "PICKLED_BYTE_ARRAY"


class _ElementsTypeInfo(TypeInformation):
    """A list of elements of one type (the array types and LIST)."""

    kind = "LIST"

    def __init__(self, element_type: TypeInformation) -> None:
        self.element_type = check_type_info(element_type, f"{self.kind}(element_type)")
        self.name = f"{self.kind}({element_type!r})"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, list | tuple):
            return f"a {type(value).__name__} is not a {self.name} (a list)"
        for i, item in enumerate(value):
            why = self.element_type.problem(item)
            if why is not None:
                return f"element {i} ({item!r}): {why}"
        return None

    def conform(self, value: Any) -> Any:
        return [self.element_type.conform(x) for x in value]


class PrimitiveArrayTypeInfo(_ElementsTypeInfo):
    kind = "PRIMITIVE_ARRAY"

    def problem(self, value: Any) -> str | None:
        if self.element_type == BasicTypeInfo.BYTE_TYPE_INFO() and isinstance(value, bytes):
            return None  # PyFlink's PRIMITIVE_ARRAY(BYTE()) is bytes
        return super().problem(value)

    def conform(self, value: Any) -> Any:
        return value if isinstance(value, bytes) else super().conform(value)


class BasicArrayTypeInfo(_ElementsTypeInfo):
    kind = "BASIC_ARRAY"


class ObjectArrayTypeInfo(_ElementsTypeInfo):
    kind = "OBJECT_ARRAY"


class ListTypeInfo(_ElementsTypeInfo):
    kind = "LIST"


class MapTypeInfo(TypeInformation):
    """A dict with keys of one type and values of another."""

    def __init__(self, key_type_info: TypeInformation, value_type_info: TypeInformation) -> None:
        self.key_type = check_type_info(key_type_info, "MAP(key_type_info)")
        self.value_type = check_type_info(value_type_info, "MAP(value_type_info)")
        self.name = f"MAP({key_type_info!r}, {value_type_info!r})"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"a {type(value).__name__} is not a {self.name} (a dict)"
        for k, v in value.items():
            why = self.key_type.problem(k) or self.value_type.problem(v)
            if why is not None:
                return f"entry {k!r}: {why}"
        return None


class TupleTypeInfo(TypeInformation):
    """A tuple of fields of the given types (a list of the right length is accepted and
    becomes a tuple, as PyFlink's serializer makes it)."""

    def __init__(self, field_types: Sequence[TypeInformation]) -> None:
        self.field_types = _field_types(field_types, "TUPLE")
        self.name = f"TUPLE([{', '.join(map(repr, self.field_types))}])"

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_arity(self) -> int:
        return len(self.field_types)

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, tuple | list | Row):
            return f"a {type(value).__name__} is not a tuple"
        return _fields_problem(value, self.field_types)

    def conform(self, value: Any) -> Any:
        return tuple(t.conform(x) for t, x in zip(self.field_types, value, strict=True))


class RowTypeInfo(TypeInformation):
    """A :class:`Row` of fields of the given types; named fields with ``field_names``
    (``Types.ROW_NAMED``), positional ones without (``Types.ROW``)."""

    def __init__(
        self, field_types: Sequence[TypeInformation], field_names: Sequence[str] | None = None
    ) -> None:
        self.field_types = _field_types(field_types, "ROW")
        self.field_names: list[str] | None = None
        if field_names is not None:
            names = list(field_names)
            if len(names) != len(self.field_types) or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    f"ROW_NAMED needs one str name per field type ({len(self.field_types)}), "
                    f"got {field_names!r}"
                )
            if len(set(names)) != len(names):
                raise ValueError(f"ROW_NAMED field names must be distinct, got {names!r}")
            self.field_names = names
            inner = ", ".join(f"{n}: {t!r}" for n, t in zip(names, self.field_types, strict=True))
            self.name = f"ROW_NAMED([{inner}])"
        else:
            self.name = f"ROW([{', '.join(map(repr, self.field_types))}])"

    def get_field_names(self) -> list[str]:
        return self.field_names or [f"f{i}" for i in range(len(self.field_types))]

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_arity(self) -> int:
        return len(self.field_types)

    def problem(self, value: Any) -> str | None:
        if isinstance(value, Row) and self.field_names is not None and value._fields is not None:
            if sorted(value._fields) != sorted(self.field_names):
                return f"its fields {value._fields} are not {self.field_names}"
            value = value.get_fields_by_names(self.field_names)
        elif not isinstance(value, tuple | list | Row):
            return f"a {type(value).__name__} is not a row (a Row, tuple or list)"
        return _fields_problem(value, self.field_types)

    def conform(self, value: Any) -> Any:
        if isinstance(value, Row) and self.field_names is not None and value._fields is not None:
            value = value.get_fields_by_names(self.field_names)
        values = [t.conform(x) for t, x in zip(self.field_types, value, strict=True)]
        if self.field_names is None:
            return Row(*values)
        return Row._make(list(self.field_names), values, _row_kind(value))


def _row_kind(value: Any) -> RowKind:
    return value.get_row_kind() if isinstance(value, Row) else RowKind.INSERT


def _field_types(field_types: Any, what: str) -> list[TypeInformation]:
    if not isinstance(field_types, list | tuple):
        raise TypeError(
            f"{what}() needs a list of field types, e.g. Types.{what}([Types.STRING(), "
            f"Types.INT()]), got {field_types!r}"
        )
    return [check_type_info(t, f"{what} field {i}") for i, t in enumerate(field_types)]


def _fields_problem(value: Any, types: list[TypeInformation]) -> str | None:
    if len(value) != len(types):
        return f"it has {len(value)} fields, the type {len(types)}"
    for i, (t, x) in enumerate(zip(types, value, strict=True)):
        why = t.problem(x)
        if why is not None:
            return f"field {i} ({x!r}): {why}"
    return None


def check_type_info(type_info: Any, what: str) -> TypeInformation:
    """``type_info`` if it is a TypeInformation.

    :raises TypeError: naming ``what``, for anything else (e.g. ``Types.INT`` without the
        call)
    """
    if isinstance(type_info, TypeInformation):
        return type_info
    hint = " (call it: Types.INT(), not Types.INT)" if callable(type_info) else ""
    raise TypeError(
        f"{what} must be a type information such as Types.INT(){hint}, got {type_info!r}"
    )


def conform_collection(collection: Sequence[Any], type_info: Any) -> list[Any]:
    """The elements of ``collection`` checked against ``type_info`` and converted as
    PyFlink's ``from_collection`` does (tuples to Rows for a ROW type).

    :raises TypeError: naming the first element that does not fit, and the type
    """
    info = check_type_info(type_info, "from_collection(type_info)")
    out = []
    for i, element in enumerate(collection):
        why = info.problem(element)
        if why is not None:
            raise TypeError(
                f"from_collection(): element {i}, {element!r}, does not fit type_info "
                f"{info!r}: {why}"
            )
        out.append(info.conform(element))
    return out


class Types:
    """Factories of type information, PyFlink's names (``Types.STRING()``, ...)."""

    STRING = BasicTypeInfo.STRING_TYPE_INFO
    BYTE = BasicTypeInfo.BYTE_TYPE_INFO
    BOOLEAN = BasicTypeInfo.BOOLEAN_TYPE_INFO
    SHORT = BasicTypeInfo.SHORT_TYPE_INFO
    INT = BasicTypeInfo.INT_TYPE_INFO
    LONG = BasicTypeInfo.LONG_TYPE_INFO
    FLOAT = BasicTypeInfo.FLOAT_TYPE_INFO
    DOUBLE = BasicTypeInfo.DOUBLE_TYPE_INFO
    CHAR = BasicTypeInfo.CHAR_TYPE_INFO
    BIG_INT = BasicTypeInfo.BIG_INT_TYPE_INFO
    BIG_DEC = BasicTypeInfo.BIG_DEC_TYPE_INFO
    INSTANT = BasicTypeInfo.INSTANT_TYPE_INFO
    SQL_DATE = SqlTimeTypeInfo.DATE
    SQL_TIME = SqlTimeTypeInfo.TIME
    SQL_TIMESTAMP = SqlTimeTypeInfo.TIMESTAMP

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return PickledBytesTypeInfo()

    @staticmethod
    def ROW(field_types: list[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types)

    @staticmethod
    def ROW_NAMED(field_names: list[str], field_types: list[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def TUPLE(field_types: list[TypeInformation]) -> TupleTypeInfo:
        return TupleTypeInfo(field_types)

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return PrimitiveArrayTypeInfo(element_type)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return BasicArrayTypeInfo(element_type)

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return ObjectArrayTypeInfo(element_type)

    @staticmethod
    def MAP(key_type_info: TypeInformation, value_type_info: TypeInformation) -> TypeInformation:
        return MapTypeInfo(key_type_info, value_type_info)

    @staticmethod
    def LIST(element_type_info: TypeInformation) -> TypeInformation:
        return ListTypeInfo(element_type_info)


# --- how Flink prints typed records (``print()`` of a stream with a type) ---
#
# A PyFlink stream with a type other than PICKLED_BYTE_ARRAY reaches Flink's print sink as
# Java objects, so it prints what Java's toString says: ``(the,15)`` for a Tuple2, ``+I[1,
# hi]`` for a Row, ``1.0E7`` for a double. A stream without a type prints Python's str().


def java_string(type_info: TypeInformation | None) -> Callable[[Any], str]:
    """The function that prints a record of ``type_info`` as Flink's print sink would
    (``str`` for no type or PICKLED_BYTE_ARRAY)."""
    if type_info is None:
        return str
    return _formatter(type_info)


def _formatter(info: TypeInformation) -> Callable[[Any], str]:
    if isinstance(info, TupleTypeInfo):
        fields = [_formatter(t) for t in info.field_types]
        return lambda value: "(" + ",".join(f(x) for f, x in zip(fields, value, strict=False)) + ")"
    if isinstance(info, RowTypeInfo):
        fields = [_formatter(t) for t in info.field_types]

        def row(value: Any) -> str:
            kind = value.get_row_kind() if isinstance(value, Row) else RowKind.INSERT
            inner = ", ".join(f(x) for f, x in zip(fields, value, strict=False))
            return f"{_ROW_KIND_SHORT.get(kind.name, '+I')}[{inner}]"

        return row
    if isinstance(info, MapTypeInfo):
        key, item = _formatter(info.key_type), _formatter(info.value_type)
        return lambda value: "{" + ", ".join(f"{key(k)}={item(v)}" for k, v in value.items()) + "}"
    if isinstance(info, BasicTypeInfo):
        if info.name == "FLOAT":
            return _java_float
        if info.name == "DOUBLE":
            return _java_double
        if info.name == "BOOLEAN":
            return lambda value: "true" if value else "false"
    return _java_scalar


_ROW_KIND_SHORT = {
    "INSERT": "+I",
    "UPDATE_BEFORE": "-U",
    "UPDATE_AFTER": "+U",
    "DELETE": "-D",
}


def _java_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)


def _java_double(value: Any) -> str:
    """Java's ``Double.toString``: plain between 1e-3 and 1e7, else ``d.dddE±n``."""
    return _java_decimal(float(value), repr(float(value)))


def _java_float(value: Any) -> str:
    """Java's ``Float.toString``: the shortest decimal that reads back as the same float."""
    f = _float32(float(value))
    for digits in range(1, 10):
        text = f"{f:.{digits}g}"
        if _float32(float(text)) == f:
            return _java_decimal(f, text)
    return _java_decimal(f, repr(f))  # pragma: no cover - 9 digits always round-trip


def _java_decimal(value: float, shortest: str) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign, digits, exponent = Decimal(shortest).normalize().as_tuple()
    text = "".join(map(str, digits))
    # value = 0.text * 10**point
    point = len(text) + int(exponent)
    minus = "-" if sign else ""
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{text}"
        if point >= len(text):
            return f"{minus}{text}{'0' * (point - len(text))}.0"
        return f"{minus}{text[:point]}.{text[point:]}"
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{minus}{mantissa}E{point - 1}"


def _float32(value: float) -> float:
    """``value`` rounded to a 32-bit float, as a Java float holds it."""
    return struct.unpack("<f", struct.pack("<f", value))[0]
