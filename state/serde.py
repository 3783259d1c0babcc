"""Serializers for state: the default orjson one, an opt-in pickle one, and table encoding.

The default serializer is type-faithful (see :mod:`streamlet.state.json_codec`): what a restore
gives back equals what was stored, with the same types. Anything it cannot encode that way fails
the snapshot with :class:`~streamlet.state.errors.StateSerializationError` naming the operator, the
state and the type. Pickle is never the default, because loading a pickle runs code chosen
by whoever wrote the checkpoint directory.

Keyed state is written one *table* at a time: the ``{user key: value}`` dict of one state
in one key group. :func:`encode_table` picks the cheapest encoding that is still faithful:

- ``p`` (plain): the keys (or values) are scalars that JSON round-trips exactly, or lists of
  them, or str-keyed dicts of them. They are dumped by orjson as they are and loaded back
  without a Python-level walk. A cheap C-level type scan decides this.
- ``u`` (tuples): every item is a tuple of plain scalars (composite keys, rolling
  ``(key, count)`` values): written as JSON arrays, rebuilt as tuples at C speed.
- ``t`` (tagged): everything else the default serializer handles, via
  :func:`streamlet.state.json_codec.to_json` (and a walk on restore).
- ``c`` (custom): a descriptor's own :class:`Serializer`; each value (each list element, for
  list state) becomes ``serializer.dumps(value)``, stored as base64 text.

A table's payload is the orjson document ``[keys, values]``; its mode is the two letters for
keys and values (``"pp"``, ``"tt"``, ``"pc"``...), stored by the caller next to the payload.
A large table in the common shapes can also be encoded a chunk at a time
(:func:`encode_table_chunk`, :func:`join_table_chunks`), to exactly the same bytes.
"""

from __future__ import annotations

import base64
import pickle
from itertools import chain
from typing import Any, Protocol, runtime_checkable

import orjson

from .errors import StateSerializationError
from .json_codec import UnserializableValueError, from_json, is_plain_list, to_json

__all__ = [
    "DEFAULT_CODEC",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "UnserializableValueError",
    "codec_name",
    "decode_element",
    "decode_table",
    "encode_element",
    "encode_table",
    "encode_table_chunk",
    "join_table_chunks",
]

#: Codec name recorded in snapshots for the default serializer.
DEFAULT_CODEC = "json"


@runtime_checkable
class Serializer(Protocol):
    """What a state descriptor's ``serializer=`` must provide.

    ``loads(dumps(v))`` must equal ``v``. ``dumps`` gets one state value: a value state's
    value, a reducing state's value, an aggregating state's accumulator, one element of a
    list state, or a whole map of a map state. An optional ``name`` attribute (a str) is
    recorded in snapshots; a restore with a serializer of another name is refused.
    """

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as bytes."""
        ...

    def loads(self, data: bytes) -> Any:
        """Return the value ``data`` was made from."""
        ...


class JsonSerializer:
    """The default serializer: type-faithful tagged JSON through orjson.

    Passing it explicitly is the same as passing nothing.
    """

    name = DEFAULT_CODEC

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` as tagged JSON.

        :raises UnserializableValueError: if ``value`` holds a type that cannot be restored
            faithfully
        """
        try:
            return orjson.dumps(to_json(value))
        except orjson.JSONEncodeError as exc:
            raise UnserializableValueError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        """Return the value ``data`` was made from.

        :raises ValueError: if ``data`` is not valid tagged JSON
        """
        return from_json(orjson.loads(data))


class PickleSerializer:
    """Opt-in pickle serializer: handles any picklable value.

    UNSAFE for checkpoint directories you do not fully trust: restoring a checkpoint loads
    its pickles, and loading a pickle can run arbitrary code. Use it only when only trusted
    processes can write the checkpoint storage.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` pickled."""
        return pickle.dumps(value, protocol=self.protocol)

    def loads(self, data: bytes) -> Any:
        """Return the unpickled value (runs code from ``data``: trusted input only)."""
        return pickle.loads(data)


def codec_name(serializer: Any) -> str:
    """Return the name snapshots record for ``serializer`` (``None`` means the default)."""
    if serializer is None or type(serializer) is JsonSerializer:
        return DEFAULT_CODEC
    name = getattr(serializer, "name", None)
    return name if isinstance(name, str) else type(serializer).__qualname__


def check_codec(operator_uid: str, state_name: str, written: str, serializer: Any) -> None:
    """Refuse restored data written with another serializer than the descriptor's.

    :raises StateSerializationError: if the codec names differ
    """
    codec = codec_name(serializer)
    if written != codec:
        raise StateSerializationError(
            operator_uid,
            state_name,
            f"restored data was written with serializer {written!r}, but the descriptor "
            f"uses {codec!r}",
            restoring=True,
        )


def _is_default(serializer: Any) -> bool:
    return serializer is None or type(serializer) is JsonSerializer


def _custom_dumps(serializer: Any, value: Any) -> str:
    try:
        data = serializer.dumps(value)
    except Exception as exc:
        raise UnserializableValueError(
            f"serializer {codec_name(serializer)!r} failed on a value of type "
            f"{type(value).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UnserializableValueError(
            f"serializer {codec_name(serializer)!r} returned {type(data).__name__}, not bytes"
        )
    return base64.b64encode(data).decode("ascii")


def _custom_loads(serializer: Any, text: str) -> Any:
    return serializer.loads(base64.b64decode(text.encode("ascii"), validate=True))


# --- Single values (operator state) ---


def encode_element(value: Any, serializer: Any) -> Any:
    """Return ``value`` as a JSON-ready structure, with the default or a custom serializer.

    :raises UnserializableValueError: if ``value`` cannot be serialized
    """
    if _is_default(serializer):
        return to_json(value)
    return _custom_dumps(serializer, value)


def decode_element(data: Any, serializer: Any) -> Any:
    """Undo :func:`encode_element`.

    :raises ValueError: if ``data`` is malformed (a custom serializer may raise anything)
    """
    if _is_default(serializer):
        return from_json(data)
    return _custom_loads(serializer, data)


# --- Tables (keyed state) ---


def _plain_values(values: list[Any]) -> bool:
    types = set(map(type, values))
    if len(types) == 1:
        (only,) = types
        if only is list:
            return is_plain_list(list(chain.from_iterable(values)))
        if only is dict:
            return set(map(type, chain.from_iterable(values))) <= {str} and is_plain_list(
                list(chain.from_iterable(map(dict.values, values)))
            )
    return is_plain_list(values)


def _plain_tuples(items: list[Any]) -> bool:
    return set(map(type, items)) == {tuple} and is_plain_list(list(chain.from_iterable(items)))


#: Scalars that plain JSON round-trips whatever their value (floats need a nan/inf check,
#: ints beyond 64 bits make orjson refuse the document, which the caller handles).
_FAST_SCALARS = frozenset({str, int, bool, type(None)})


def _fast_mode(items: list[Any]) -> str:
    """``"p"`` or ``"u"`` when one or two type passes show the common shapes of keyed state
    (scalars, or tuples of scalars); ``""`` when the full checks must decide.

    State lives scattered in memory, so every pass over a key group costs cache misses:
    this path skips the range and finiteness passes of :func:`is_plain_list`.
    """
    types = set(map(type, items))
    if types <= _FAST_SCALARS:
        return "p"
    if types == {tuple} and set(map(type, chain.from_iterable(items))) <= _FAST_SCALARS:
        return "u"
    return ""


def _encode_part(items: list[Any], plain: bool) -> tuple[str, list[Any]]:
    if plain:
        return "p", items
    if _plain_tuples(items):
        return "u", items  # orjson writes tuples as arrays
    return "t", [to_json(x) for x in items]


def encode_table(
    table: dict[Any, Any], serializer: Any, *, element_wise: bool = False
) -> tuple[str, bytes]:
    """Return ``(mode, payload)`` for one state's table of one key group.

    :param table: ``{user key: value}``
    :param serializer: the descriptor's serializer (``None`` for the default)
    :param element_wise: values are lists whose elements a custom serializer gets one by one
    :raises UnserializableValueError: if a key or value cannot be serialized; the message
        names the type and the user key it belongs to
    """
    keys = list(table)
    values = list(table.values())
    if _is_default(serializer):
        fast = _fast_mode(keys) + _fast_mode(values)
        if len(fast) == 2:
            try:
                return fast, orjson.dumps([keys, values])
            except orjson.JSONEncodeError:
                pass  # an int beyond 64 bits: the checks below decide how to write it
    try:
        key_mode, key_part = _encode_part(keys, is_plain_list(keys))
        if not _is_default(serializer):
            value_mode = "c"
            value_part: list[Any]
            if element_wise:
                value_part = [[_custom_dumps(serializer, x) for x in v] for v in values]
            else:
                value_part = [_custom_dumps(serializer, v) for v in values]
        else:
            value_mode, value_part = _encode_part(values, _plain_values(values))
        try:
            return key_mode + value_mode, orjson.dumps([key_part, value_part])
        except orjson.JSONEncodeError:
            # A plain part orjson still refused (a str with lone surrogates): tag it, which
            # fails again with a better message if it really cannot be written.
            key_mode, key_part = "t", [to_json(x) for x in keys]
            if value_mode in "pu":
                value_mode, value_part = "t", [to_json(x) for x in values]
            return key_mode + value_mode, orjson.dumps([key_part, value_part])
    except (UnserializableValueError, orjson.JSONEncodeError) as exc:
        raise _locate(table, serializer, element_wise, exc) from exc


def encode_table_chunk(
    keys: list[Any], values: list[Any], serializer: Any
) -> tuple[str, bytes, bytes] | None:
    """Encode one chunk of a table as :func:`encode_table`'s fast path encodes a whole one.

    Return ``(mode, keys document, values document)``, or ``None`` when that path does not
    take the chunk (a custom serializer, a shape the type scans do not settle, an int beyond
    64 bits). Chunks that all have the same mode, joined by :func:`join_table_chunks`, give
    exactly the payload :func:`encode_table` writes for their concatenation (orjson writes
    arrays without spaces, and the type scans hold for a list when they hold for each of
    its parts). Otherwise the table must be encoded in one piece by :func:`encode_table`.

    :param keys: a chunk of the table's keys
    :param values: their values, in the same order
    :param serializer: the descriptor's serializer (``None`` for the default)
    """
    if not _is_default(serializer):
        return None
    mode = _fast_mode(keys) + _fast_mode(values)
    if len(mode) != 2:
        return None
    try:
        return mode, orjson.dumps(keys), orjson.dumps(values)
    except orjson.JSONEncodeError:
        return None


def join_table_chunks(key_chunks: list[bytes], value_chunks: list[bytes]) -> bytes:
    """Return the payload ``[keys, values]`` of chunks from :func:`encode_table_chunk`."""
    keys = b",".join([chunk[1:-1] for chunk in key_chunks if chunk != b"[]"])
    values = b",".join([chunk[1:-1] for chunk in value_chunks if chunk != b"[]"])
    return b"[[" + keys + b"],[" + values + b"]]"


def _locate(
    table: dict[Any, Any], serializer: Any, element_wise: bool, exc: Exception
) -> UnserializableValueError:
    """Return an error naming the first user key whose entry cannot be written (slow path)."""
    for key, value in table.items():
        try:
            orjson.dumps(to_json(key))
            if _is_default(serializer):
                orjson.dumps(to_json(value))
            elif element_wise:
                for x in value:
                    _custom_dumps(serializer, x)
            else:
                _custom_dumps(serializer, value)
        except (UnserializableValueError, orjson.JSONEncodeError) as entry_exc:
            return UnserializableValueError(f"{entry_exc} (at key {key!r})")
    return UnserializableValueError(str(exc))


def decode_table(
    mode: str, payload: bytes, serializer: Any, *, element_wise: bool = False
) -> dict[Any, Any]:
    """Undo :func:`encode_table`.

    :raises ValueError: if ``payload`` is malformed or ``mode`` is unknown (a custom
        serializer's ``loads`` may raise anything)
    """
    if len(mode) != 2 or mode[0] not in "ptu" or mode[1] not in "ptuc":
        raise ValueError(f"unknown table mode {mode!r}")
    keys, values = orjson.loads(payload)
    if len(keys) != len(values):
        raise ValueError(f"table has {len(keys)} keys but {len(values)} values")
    if mode[0] == "t":
        keys = [from_json(k) for k in keys]
    elif mode[0] == "u":
        keys = list(map(tuple, keys))
    if mode[1] == "t":
        values = [from_json(v) for v in values]
    elif mode[1] == "u":
        values = list(map(tuple, values))
    elif mode[1] == "c":
        if element_wise:
            values = [[_custom_loads(serializer, x) for x in v] for v in values]
        else:
            values = [_custom_loads(serializer, v) for v in values]
    return dict(zip(keys, values, strict=True))
