"""A type-faithful mapping between Python values and JSON-ready values (for orjson).

JSON alone is not faithful: a tuple comes back as a list, an ``int`` dict key as a ``str``,
``nan`` as ``null``. :func:`to_json` therefore tags everything JSON cannot say, and
:func:`from_json` undoes it, so ``from_json(orjson.loads(orjson.dumps(to_json(v)))) == v``
with the same types all the way down.

The encoding: str, bool, None, finite floats and ints within orjson's 64-bit range are
themselves; a list is a JSON array of encoded items; a dict whose keys are all str is a JSON
object of encoded values. Everything else is a *tag*: a JSON object with exactly one member
whose name starts with ``$`` (``{"$tuple": [...]}``, ``{"$dict": [[k, v], ...]}``,
``{"$bytes": "<base64>"}``, ...). A user dict that would look like a tag (one str key
starting with ``$``) is written as ``{"$dict": ...}``, so user data never collides with tags.

Dataclasses and namedtuples (``collections.namedtuple``, ``typing.NamedTuple``) round-trip
by reference to their class: the class must be importable as ``module.QualName`` at
snapshot time, and on restore it is looked up in ``sys.modules`` only. Restoring never
imports a module and never runs ``__init__``, ``__post_init__`` or a namedtuple's
``__new__`` (fields are set directly, or the tuple is built by ``tuple.__new__``), so a
checkpoint directory cannot make streamlet execute code. Any other type raises
:class:`UnserializableValueError` naming it: nothing is silently converted.
"""

from __future__ import annotations

import base64
import reprlib
import sys
import uuid
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from math import isfinite
from typing import Any

from .row import Row, RowKind

__all__ = [
    "UnserializableValueError",
    "from_json",
    "is_namedtuple_class",
    "is_plain_list",
    "namedtuple_info",
    "to_json",
]

# orjson writes ints in [-2**63, 2**64 - 1] and refuses the rest.
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_NoneType = type(None)
_JSON_SCALARS = frozenset({str, int, float, bool, _NoneType})


class UnserializableValueError(TypeError):
    """A value has no faithful encoding; the message names its type (and where it was)."""


def _type_name(t: type) -> str:
    module = t.__module__
    return t.__qualname__ if module == "builtins" else f"{module}.{t.__qualname__}"


def is_plain_list(items: list[Any]) -> bool:
    """Return whether ``items`` holds only scalars that plain JSON round-trips exactly.

    That is str, bool, None, finite floats and ints in orjson's range. The check is a few
    C-level passes, so callers can afford it before choosing the untagged fast path.
    """
    types = set(map(type, items))
    if not types <= _JSON_SCALARS:
        return False
    if int in types:
        ints = items if len(types) == 1 else [x for x in items if type(x) is int]
        if min(ints) < _INT_MIN or max(ints) > _INT_MAX:
            return False
    if float in types:
        floats = items if len(types) == 1 else [x for x in items if type(x) is float]
        # nan and inf make the sum non-finite; an overflowing sum only costs the fast path.
        if not isfinite(sum(floats)):
            return False
    return True


# --- Encoding ---


def to_json(value: Any) -> Any:
    """Return a JSON-ready structure that :func:`from_json` turns back into ``value``.

    :raises UnserializableValueError: if ``value`` (or anything inside it) has a type the
        encoding cannot restore faithfully
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        # hex, not str: decimal conversion of huge ints is capped by sys.int_info.
        return value if _INT_MIN <= value <= _INT_MAX else {"$int": hex(value)}
    if t is float:
        return value if isfinite(value) else {"$float": repr(value)}
    if t is list:
        return value if is_plain_list(value) else [to_json(x) for x in value]
    if t is dict:
        return _dict_to_json(value)
    if t is tuple:
        return {"$tuple": value if is_plain_list(value) else [to_json(x) for x in value]}
    encode = _ENCODERS.get(t)
    if encode is not None:
        return encode(value)
    if is_dataclass(value):
        return _dataclass_to_json(value)
    if is_namedtuple_class(t):
        return _namedtuple_to_json(value)
    raise UnserializableValueError(
        f"type {_type_name(t)} is not supported by the default JSON serializer (it handles "
        f"str, int, float, bool, None, bytes, list, tuple, dict, set, frozenset, Decimal, "
        f"UUID, date/time types, Row, dataclasses and namedtuples of those); pass another "
        f"serializer to the state descriptor"
    )


def _dict_to_json(value: dict[Any, Any]) -> Any:
    if set(map(type, value)) <= {str} and not (
        len(value) == 1 and next(iter(value)).startswith("$")
    ):
        values = list(value.values())
        if is_plain_list(values):
            return value
        return {k: to_json(v) for k, v in value.items()}
    return {"$dict": [[to_json(k), to_json(v)] for k, v in value.items()]}


def _b64(data: bytes | bytearray) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_tz(value: datetime | time) -> None:
    tz = value.tzinfo
    if tz is not None and type(tz) is not timezone:
        raise UnserializableValueError(
            f"{type(value).__name__} with tzinfo of type {_type_name(type(tz))} is not "
            f"supported by the default JSON serializer (only None or datetime.timezone "
            f"offsets round-trip exactly)"
        )


def _datetime_to_json(value: datetime) -> Any:
    _check_tz(value)
    return {"$datetime": [value.isoformat(), value.fold]}


def _time_to_json(value: time) -> Any:
    _check_tz(value)
    return {"$time": [value.isoformat(), value.fold]}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    bytes: lambda v: {"$bytes": _b64(v)},
    bytearray: lambda v: {"$bytearray": _b64(v)},
    set: lambda v: {"$set": [to_json(x) for x in v]},
    frozenset: lambda v: {"$frozenset": [to_json(x) for x in v]},
    complex: lambda v: {"$complex": [to_json(v.real), to_json(v.imag)]},
    Decimal: lambda v: {"$decimal": str(v)},
    uuid.UUID: lambda v: {"$uuid": str(v)},
    date: lambda v: {"$date": v.isoformat()},
    datetime: _datetime_to_json,
    time: _time_to_json,
    timedelta: lambda v: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    Row: lambda v: {"$row": [v._fields, [to_json(x) for x in v._values], v._row_kind.value]},
}

# Per dataclass: (reference "module:QualName", field names). Filled on first use.
_DATACLASS_INFO: dict[type, tuple[str, tuple[str, ...]]] = {}


def _find_class(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _dataclass_info(cls: type) -> tuple[str, tuple[str, ...]]:
    info = _DATACLASS_INFO.get(cls)
    if info is None:
        if _find_class(cls.__module__, cls.__qualname__) is not cls:
            raise UnserializableValueError(
                f"dataclass {_type_name(cls)} cannot be found by its module and qualified "
                f"name (is it defined inside a function?), so it could not be restored"
            )
        info = (f"{cls.__module__}:{cls.__qualname__}", tuple(f.name for f in fields(cls)))
        _DATACLASS_INFO[cls] = info
    return info


def _dataclass_to_json(value: Any) -> Any:
    ref, names = _dataclass_info(type(value))
    extra = getattr(value, "__dict__", {}).keys() - set(names)
    if extra:
        raise UnserializableValueError(
            f"dataclass {_type_name(type(value))} instance has attributes that are not "
            f"fields ({', '.join(sorted(extra))}), which would be lost"
        )
    return {"$dataclass": [ref, {n: to_json(getattr(value, n)) for n in names}]}


def is_namedtuple_class(cls: type) -> bool:
    """Return whether ``cls`` is a namedtuple class (a tuple subclass with ``_fields``)."""
    fields_ = getattr(cls, "_fields", None)
    return (
        issubclass(cls, tuple)
        and type(fields_) is tuple
        and all(type(name) is str for name in fields_)
    )


# Per namedtuple class: (reference "module:QualName", field names). Filled on first use.
_NAMEDTUPLE_INFO: dict[type, tuple[str, tuple[str, ...]]] = {}


def namedtuple_info(cls: type) -> tuple[str, tuple[str, ...]]:
    """Return ``(reference, field names)`` of the namedtuple class ``cls``.

    :raises UnserializableValueError: if ``cls`` cannot be found again by its module and
        qualified name (defined inside a function), so state holding it could not be
        restored
    """
    info = _NAMEDTUPLE_INFO.get(cls)
    if info is None:
        if _find_class(cls.__module__, cls.__qualname__) is not cls:
            raise UnserializableValueError(
                f"namedtuple {_type_name(cls)} cannot be found by its module and qualified "
                f"name (is it defined inside a function?), so it could not be restored"
            )
        info = (f"{cls.__module__}:{cls.__qualname__}", tuple(cls._fields))
        _NAMEDTUPLE_INFO[cls] = info
    return info


def _namedtuple_to_json(value: Any) -> Any:
    ref, names = namedtuple_info(type(value))
    if getattr(value, "__dict__", None):
        raise UnserializableValueError(
            f"namedtuple {_type_name(type(value))} instance has attributes that are not "
            f"fields ({', '.join(sorted(value.__dict__))}), which would be lost"
        )
    return {"$namedtuple": [ref, {n: to_json(x) for n, x in zip(names, value, strict=True)}]}


# --- Decoding ---


def from_json(data: Any) -> Any:
    """Undo :func:`to_json` on the output of ``orjson.loads``.

    :raises ValueError: if ``data`` holds an unknown or malformed tag, or names a dataclass
        that is not loaded or whose fields changed
    """
    t = type(data)
    if t is list:
        if set(map(type, data)) <= _JSON_SCALARS:
            return data
        return [from_json(x) for x in data]
    if t is dict:
        if len(data) == 1:
            ((name, inner),) = data.items()
            if name[:1] == "$":
                decode = _DECODERS.get(name)
                if decode is None:
                    raise ValueError(f"unknown tag {name!r} in serialized state")
                try:
                    return decode(inner)
                except _RestoreError:
                    raise
                except (TypeError, ValueError, KeyError, IndexError) as exc:
                    raise ValueError(
                        f"malformed {name} value {reprlib.repr(inner)}: {exc}"
                    ) from exc
        if set(map(type, data.values())) <= _JSON_SCALARS:
            return data
        return {k: from_json(v) for k, v in data.items()}
    return data


class _RestoreError(ValueError):
    """A well-formed tag that cannot be restored here (its dataclass is missing or changed)."""


def _from_b64(data: str) -> bytes:
    return base64.b64decode(data.encode("ascii"), validate=True)


def _loaded_class(ref: str, kind: str, is_kind: Callable[[type], bool]) -> type:
    """The class ``module:QualName`` names, found in ``sys.modules`` only (never imported)."""
    module, _, qualname = ref.partition(":")
    cls = _find_class(module, qualname)
    if not (isinstance(cls, type) and is_kind(cls)):
        raise _RestoreError(
            f"cannot restore {kind} {ref}: it is not loaded (import the module that "
            f"defines it before restoring)"
        )
    return cls


def _dataclass_from_json(inner: list[Any]) -> Any:
    ref, values = inner
    cls = _loaded_class(ref, "dataclass", is_dataclass)
    names = [f.name for f in fields(cls)]
    if set(values) != set(names):
        raise _RestoreError(
            f"cannot restore dataclass {ref}: it has fields {names} but the state holds "
            f"{sorted(values)}"
        )
    obj: Any = object.__new__(cls)
    for name in names:
        # object.__setattr__ also works for frozen and slotted dataclasses.
        object.__setattr__(obj, name, from_json(values[name]))
    return obj


def _namedtuple_from_json(inner: list[Any]) -> Any:
    ref, values = inner
    cls = _loaded_class(ref, "namedtuple", is_namedtuple_class)
    names = list(cls._fields)  # type: ignore[attr-defined]  # is_namedtuple_class saw _fields
    if not isinstance(values, dict) or list(values) != names:
        raise _RestoreError(
            f"cannot restore namedtuple {ref}: it has fields {names} but the state holds "
            f"{list(values) if isinstance(values, dict) else values!r}"
        )
    # tuple.__new__, not cls(...): a class's own __new__ is code the checkpoint must not run.
    return tuple.__new__(cls, [from_json(values[n]) for n in names])


def _row_from_json(inner: list[Any]) -> Row:
    fields, values, kind = inner
    return Row._make(fields, [from_json(x) for x in values], RowKind(kind))


def _datetime_from_json(inner: list[Any]) -> datetime:
    return datetime.fromisoformat(inner[0]).replace(fold=inner[1])


def _time_from_json(inner: list[Any]) -> time:
    return time.fromisoformat(inner[0]).replace(fold=inner[1])


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$int": lambda v: int(v, 16),
    "$float": float,
    "$tuple": lambda v: tuple(from_json(v)),
    "$dict": lambda v: {from_json(k): from_json(x) for k, x in v},
    "$bytes": _from_b64,
    "$bytearray": lambda v: bytearray(_from_b64(v)),
    "$set": lambda v: {from_json(x) for x in v},
    "$frozenset": lambda v: frozenset(from_json(x) for x in v),
    "$complex": lambda v: complex(from_json(v[0]), from_json(v[1])),
    "$decimal": Decimal,
    "$uuid": uuid.UUID,
    "$date": date.fromisoformat,
    "$datetime": _datetime_from_json,
    "$time": _time_from_json,
    "$timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$dataclass": _dataclass_from_json,
    "$namedtuple": _namedtuple_from_json,
    "$row": _row_from_json,
}
