"""PyFlink's ``Row`` (``pyflink.common.Row``) and ``RowKind``: a record of positional or
named fields.

It lives in the state layer, the lowest one, because rows are values that state, keys and
checkpoints must handle: :mod:`streamlet.state.json_codec` encodes a row as the tag
``{"$row": [field names or None, [values], kind]}`` and :mod:`streamlet.state.key_groups`
hashes a row by its values, so a row can be a key and survive a checkpoint.

As in PyFlink, ``Row(name="a", n=1)`` has named fields (in the order given), ``Row("a", 1)``
positional ones; ``row.name``, ``row["name"]`` and ``row[0]`` read a field, ``as_dict()``
returns the named fields. A row of names used as a *class*, ``Person = Row("name", "age")``,
makes named rows: ``Person("Alice", 11)``. Equality: a named row equals a named row with
the same fields (in any order) and values, a positional row a positional row with the same
values; rows never equal tuples. Unlike PyFlink, the hash agrees with that equality for
named rows in another field order.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

__all__ = ["Row", "RowKind"]


class RowKind(Enum):
    """The change a row stands for in a changelog (PyFlink's ``RowKind``); DataStream
    programs only ever see INSERT."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def __str__(self) -> str:
        return ("+I", "-U", "+U", "-D")[self.value]


class Row:
    """A row of fields (see the module docstring).

    :raises ValueError: if both positional and named fields are given
    """

    __slots__ = ("_fields", "_row_kind", "_values")

    _fields: list[str] | None
    _values: list[Any]
    _row_kind: RowKind

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ValueError(
                "Row() takes positional fields (Row('a', 1)) or named fields "
                "(Row(name='a', n=1)), not both"
            )
        fields = list(kwargs) if kwargs else None
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_values", list(kwargs.values()) if kwargs else list(args))
        object.__setattr__(self, "_row_kind", RowKind.INSERT)

    @classmethod
    def _make(cls, fields: list[str] | None, values: list[Any], kind: RowKind) -> Row:
        """A row without calling ``__init__`` (the codec's and the class factory's)."""
        row = cls.__new__(cls)
        object.__setattr__(row, "_fields", fields)
        object.__setattr__(row, "_values", values)
        object.__setattr__(row, "_row_kind", kind)
        return row

    @staticmethod
    def of_kind(row_kind: RowKind, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        row.set_row_kind(row_kind)
        return row

    def as_dict(self, recursive: bool = False) -> dict[str, Any]:
        """The named fields as a dict (nested rows too, if ``recursive``).

        :raises TypeError: for a row of positional fields
        """
        if self._fields is None:
            raise TypeError(f"as_dict() needs a row of named fields, got {self!r}")
        if not recursive:
            return dict(zip(self._fields, self._values, strict=True))
        return {n: _as_dict_value(v) for n, v in zip(self._fields, self._values, strict=True)}

    def get_row_kind(self) -> RowKind:
        return self._row_kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        if not isinstance(row_kind, RowKind):
            raise TypeError(f"set_row_kind() needs a RowKind, got {row_kind!r}")
        object.__setattr__(self, "_row_kind", row_kind)

    def set_field_names(self, field_names: list[str]) -> None:
        """Name the fields of this row (as many names as values)."""
        names = list(field_names)
        if len(names) != len(self._values) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"set_field_names() needs {len(self._values)} str names for {self!r}, "
                f"got {field_names!r}"
            )
        object.__setattr__(self, "_fields", names)

    def get_fields_by_names(self, names: list[str]) -> list[Any]:
        return [self[name] for name in names]

    def __call__(self, *args: Any) -> Row:
        """Use this row of names as a row class: ``Person = Row("name", "age");
        Person("Alice", 11)`` is ``Row(name="Alice", age=11)``."""
        if len(args) > len(self._values):
            raise ValueError(
                f"row class {self!r} has {len(self._values)} fields, got {len(args)} values "
                f"{args!r}"
            )
        if not all(isinstance(n, str) for n in self._values):
            raise TypeError(f"only a row of field names can make rows, {self!r} is not one")
        return Row._make(list(self._values), list(args), self._row_kind)

    def _index(self, name: str) -> int:
        if self._fields is None or name not in self._fields:
            raise KeyError(f"{self!r} has no field {name!r}")
        return self._fields.index(name)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, int | slice):
            return self._values[item]
        return self._values[self._index(item)]

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, int | slice):
            self._values[key] = value
        else:
            self._values[self._index(key)] = value

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        fields = self._fields
        if fields is None or item not in fields:
            raise AttributeError(f"{self!r} has no field {item!r}")
        return self._values[fields.index(item)]

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Row fields are set by index or name (row[{key!r}] = ...)")

    def __contains__(self, item: object) -> bool:
        return item in (self._fields if self._fields is not None else self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def _comparable(self) -> tuple[Any, ...]:
        if self._fields is None:
            return (None, tuple(self._values))
        return tuple(sorted(zip(self._fields, self._values, strict=True), key=lambda p: p[0]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return self._row_kind == other._row_kind and self._comparable() == other._comparable()

    def __hash__(self) -> int:
        return hash(self._comparable())

    def __reduce__(self) -> Any:
        return Row._make, (self._fields, list(self._values), self._row_kind)

    def __repr__(self) -> str:
        if self._fields is not None:
            inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self._values, strict=True))
            return f"Row({inner})"
        return f"<Row({', '.join(map(repr, self._values))})>"


def _as_dict_value(value: Any) -> Any:
    if isinstance(value, Row) and value._fields is not None:
        return value.as_dict(recursive=True)
    if isinstance(value, list):
        return [_as_dict_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_dict_value(v) for k, v in value.items()}
    return value
