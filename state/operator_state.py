"""Operator (non-keyed) state: per-subtask list, union list and broadcast state.

Mirrors Flink's ``OperatorStateStore``. Each subtask has one :class:`OperatorStateBackend`.
The three kinds differ only in how a restore redistributes what every old subtask wrote:

- list state (``get_list_state``), *even split*: the old subtasks' lists are concatenated in
  subtask order and cut into ``parallelism`` contiguous parts whose sizes differ by at most
  one (the first parts get the extra elements), Flink's round-robin repartitioning;
- union list state (``get_union_list_state``): every subtask gets the whole concatenation;
- broadcast state (``get_broadcast_state``): a map meant to be identical on every subtask.
  It is checkpointed once: only subtask 0 writes it (the backend knows its subtask index),
  and on restore every new subtask, at any parallelism, gets that copy. Checkpoints written
  before (every subtask wrote a copy) still restore: new subtask ``i`` then gets the copy of
  old subtask ``i % old_parallelism`` (the next one that has a copy, if that one has none).

Operator state is small (source positions, a sink's pending transactions), so the
synchronous part of a snapshot copies it: O(size of the operator state), no copy-on-write.
Restored data stays encoded per state name until ``open()``/``initialize_state`` registers
the descriptor, and a state that is never registered is written back unchanged.

Byte format: the frame of :func:`streamlet.state.snapshot.pack_frames` with magic ``SLO1``; the
header holds ``format`` (1), ``operator_uid`` and ``states`` (``[name, mode, codec]`` each, mode one
of ``split``, ``union``, ``broadcast``). A list state's payload is the JSON array of its
elements encoded one by one (:func:`streamlet.state.serde.encode_element`), so a restore can split
it without decoding; a broadcast state's payload is its whole map encoded as one element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .descriptors import ListStateDescriptor, MapStateDescriptor, StateDescriptor
from .errors import StateError, StateSerializationError
from .serde import UnserializableValueError, check_codec, codec_name, decode_element, encode_element
from .snapshot import pack_frames, unpack_frames
from .table import clone_value

__all__ = [
    "OPERATOR_MAGIC",
    "BroadcastState",
    "OperatorListState",
    "OperatorStateBackend",
    "OperatorStateSnapshot",
    "ReadOnlyBroadcastState",
    "even_split",
]

OPERATOR_MAGIC = b"SLO1"
_FORMAT = 1
_SPLIT, _UNION, _BROADCAST = "split", "union", "broadcast"
_MODE_NAMES = {_SPLIT: "list", _UNION: "union list", _BROADCAST: "broadcast"}


def even_split(items: Sequence[Any], index: int, parallelism: int) -> list[Any]:
    """Return part ``index`` of ``items`` cut into ``parallelism`` contiguous near-equal parts.

    The first ``len(items) % parallelism`` parts have one element more than the others.
    """
    base, extra = divmod(len(items), parallelism)
    start = index * base + min(index, extra)
    return list(items[start : start + base + (1 if index < extra else 0)])


class OperatorListState:
    """A subtask's list (Flink's operator ``ListState``); ``None`` elements are refused."""

    __slots__ = ("_values", "descriptor", "mode", "name")

    def __init__(self, descriptor: ListStateDescriptor, mode: str, values: list[Any]) -> None:
        self.descriptor = descriptor
        self.name = descriptor.name
        self.mode = mode
        self._values = values

    def _checked(self, values: Iterable[Any] | None, what: str) -> list[Any]:
        if values is None:
            raise ValueError(f"list state {self.name!r}: {what} got None instead of a list")
        values = list(values)
        if None in values:
            raise ValueError(f"list state {self.name!r} cannot hold None: {what} got {values!r}")
        return values

    def get(self) -> list[Any]:
        """Return the list (live: copy it to keep it)."""
        return self._values

    def add(self, value: Any) -> None:
        """Append ``value``.

        :raises ValueError: if ``value`` is ``None``
        """
        if value is None:
            raise ValueError(f"list state {self.name!r} cannot hold None: add() got None")
        self._values.append(value)

    def add_all(self, values: Iterable[Any]) -> None:
        """Append every element of ``values``.

        :raises ValueError: if ``values`` is ``None`` or holds ``None``
        """
        self._values.extend(self._checked(values, "add_all()"))

    def update(self, values: Iterable[Any]) -> None:
        """Replace the list by ``values``.

        :raises ValueError: if ``values`` is ``None`` or holds ``None``
        """
        self._values[:] = self._checked(values, "update()")

    def clear(self) -> None:
        """Remove every element."""
        self._values.clear()

    def __repr__(self) -> str:
        return f"<OperatorListState {self.name!r} ({_MODE_NAMES[self.mode]})>"


class BroadcastState:
    """A map that the job keeps identical on every subtask (Flink's ``BroadcastState``)."""

    __slots__ = ("_map", "descriptor", "name")

    def __init__(self, descriptor: MapStateDescriptor, entries: dict[Any, Any]) -> None:
        self.descriptor = descriptor
        self.name = descriptor.name
        self._map = entries

    def get(self, key: Any) -> Any:
        """Return the value of ``key``, ``None`` if absent."""
        return self._map.get(key)

    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``."""
        self._map[key] = value

    def put_all(self, entries: Mapping[Any, Any]) -> None:
        """Set every entry of ``entries``."""
        self._map.update(entries)

    def remove(self, key: Any) -> None:
        """Remove ``key`` if present."""
        self._map.pop(key, None)

    def contains(self, key: Any) -> bool:
        """Return whether ``key`` is present."""
        return key in self._map

    def keys(self) -> list[Any]:
        """Return the keys."""
        return list(self._map)

    def values(self) -> list[Any]:
        """Return the values."""
        return list(self._map.values())

    def items(self) -> list[tuple[Any, Any]]:
        """Return the entries as ``(key, value)`` pairs."""
        return list(self._map.items())

    def is_empty(self) -> bool:
        """Return whether the map has no entries."""
        return not self._map

    def clear(self) -> None:
        """Remove every entry."""
        self._map.clear()

    def __contains__(self, key: Any) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._map))

    def __repr__(self) -> str:
        return f"<BroadcastState {self.name!r}>"


class ReadOnlyBroadcastState:
    """A read-only view of a :class:`BroadcastState` (Flink's ``ReadOnlyBroadcastState``).

    What a broadcast function sees while processing the non-broadcast side: the same map,
    readable, but never writable there. Only the broadcast side, which every subtask
    receives whole and in the same order, may write, so the map stays identical on every
    subtask. Values are live: do not mutate them either.

    ``get(key)`` returns the value of ``key``, ``None`` if absent (it is the map's own
    ``get``: the read of the per-record path costs one call).

    :param state: the broadcast state viewed
    :param writer: where writes belong, named in the error a write raises
    """

    __slots__ = ("_map", "_writer", "get", "name")

    #: Return the value of ``key``, ``None`` if absent.
    get: Callable[[Any], Any]

    def __init__(self, state: BroadcastState, writer: str = "process_broadcast_element()") -> None:
        # The view holds the map itself; BroadcastState changes its map in place, and
        # restore replaces it only before the operator opens (before views are made).
        self._map = state._map
        self.get = state._map.get
        self._writer = writer
        self.name = state.name

    def contains(self, key: Any) -> bool:
        """Return whether ``key`` is present."""
        return key in self._map

    def keys(self) -> list[Any]:
        """Return the keys."""
        return list(self._map)

    def values(self) -> list[Any]:
        """Return the values."""
        return list(self._map.values())

    def items(self) -> list[tuple[Any, Any]]:
        """Return the entries as ``(key, value)`` pairs."""
        return list(self._map.items())

    def is_empty(self) -> bool:
        """Return whether the map has no entries."""
        return not self._map

    def __contains__(self, key: Any) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._map))

    def __len__(self) -> int:
        return len(self._map)

    def _refuse(self, method: str) -> StateError:
        return StateError(
            f"broadcast state {self.name!r} is read-only here: {method}() is refused on the "
            f"non-broadcast side, where each subtask sees different records and a write "
            f"would make the subtasks' copies differ; write it in {self._writer}, which "
            f"every subtask runs for every broadcast element"
        )

    def put(self, key: Any, value: Any) -> None:
        """Refused: raises :class:`StateError`."""
        raise self._refuse("put")

    def put_all(self, entries: Mapping[Any, Any]) -> None:
        """Refused: raises :class:`StateError`."""
        raise self._refuse("put_all")

    def remove(self, key: Any) -> None:
        """Refused: raises :class:`StateError`."""
        raise self._refuse("remove")

    def clear(self) -> None:
        """Refused: raises :class:`StateError`."""
        raise self._refuse("clear")

    def __repr__(self) -> str:
        return f"<ReadOnlyBroadcastState {self.name!r}>"


@dataclass(frozen=True, slots=True)
class _Encoded:
    """Restored state not registered yet: this subtask's share, still encoded."""

    mode: str
    codec: str
    data: Any  # list of encoded elements (split, union), or the encoded map (broadcast)


@dataclass(slots=True)
class OperatorStateSnapshot:
    """A copy of a subtask's operator state, taken by :meth:`OperatorStateBackend.snapshot_sync`.

    :param operator_uid: uid of the operator
    :param states: ``(name, mode, serializer, copied value)`` per registered state
    :param pending: restored states not registered yet, written back unchanged
    """

    operator_uid: str
    states: list[tuple[str, str, Any, Any]]
    pending: dict[str, _Encoded] = field(default_factory=dict)

    def serialize(self) -> bytes:
        """Return the bytes of this subtask's operator state; pure CPU.

        :raises StateSerializationError: if a value cannot be serialized; it names the
            operator uid, the state and the offending type
        """
        entries: list[list[str]] = []
        payloads: list[bytes] = []
        for name, mode, serializer, value in self.states:
            try:
                if mode == _BROADCAST:
                    encoded = encode_element(value, serializer)
                else:
                    encoded = [encode_element(x, serializer) for x in value]
                payloads.append(orjson.dumps(encoded))
            except (UnserializableValueError, orjson.JSONEncodeError) as exc:
                raise StateSerializationError(self.operator_uid, name, str(exc)) from exc
            entries.append([name, mode, codec_name(serializer)])
        for name, enc in self.pending.items():
            entries.append([name, enc.mode, enc.codec])
            payloads.append(orjson.dumps(enc.data))
        header = {"format": _FORMAT, "operator_uid": self.operator_uid, "states": entries}
        return pack_frames(OPERATOR_MAGIC, header, payloads)


class OperatorStateBackend:
    """The operator state of one subtask.

    :param operator_uid: uid of the operator (named in errors and written into snapshots)
    :param subtask_index: the subtask's index; only subtask 0 writes broadcast state into
        its snapshots (the other subtasks hold the same map, so one copy restores all)
    :raises ValueError: if ``operator_uid`` is not a non-empty str, or ``subtask_index``
        not an int >= 0
    """

    __slots__ = ("_pending", "_restored", "_states", "operator_uid", "subtask_index")

    def __init__(self, operator_uid: str, subtask_index: int = 0) -> None:
        if not isinstance(operator_uid, str) or not operator_uid:
            raise ValueError(f"operator_uid must be a non-empty str, got {operator_uid!r}")
        if (
            not isinstance(subtask_index, int)
            or isinstance(subtask_index, bool)
            or subtask_index < 0
        ):
            raise ValueError(f"subtask_index must be an int >= 0, got {subtask_index!r}")
        self.operator_uid = operator_uid
        self.subtask_index = subtask_index
        self._states: dict[str, OperatorListState | BroadcastState] = {}
        self._pending: dict[str, _Encoded] = {}
        self._restored = False

    def get_list_state(self, descriptor: ListStateDescriptor) -> OperatorListState:
        """Return the list state for ``descriptor``, redistributed by even split on restore.

        :raises TypeError: if ``descriptor`` is not a :class:`ListStateDescriptor`
        :raises StateError: if the name is registered (or was restored) as another kind, or
            the descriptor has a time-to-live (keyed state only)
        :raises StateSerializationError: if restored data cannot be decoded
        """
        return self._register(descriptor, ListStateDescriptor, _SPLIT)  # type: ignore[return-value]

    def get_union_list_state(self, descriptor: ListStateDescriptor) -> OperatorListState:
        """Return the list state for ``descriptor``; on restore every subtask gets all of it.

        Raises as :meth:`get_list_state`.
        """
        return self._register(descriptor, ListStateDescriptor, _UNION)  # type: ignore[return-value]

    def get_broadcast_state(self, descriptor: MapStateDescriptor) -> BroadcastState:
        """Return the broadcast state for ``descriptor``; raises as :meth:`get_list_state`."""
        return self._register(descriptor, MapStateDescriptor, _BROADCAST)  # type: ignore[return-value]

    def _register(
        self, descriptor: StateDescriptor, expected: type, mode: str
    ) -> OperatorListState | BroadcastState:
        if not isinstance(descriptor, expected):
            raise TypeError(
                f"operator {_MODE_NAMES[mode]} state needs a {expected.__name__}, "
                f"got {descriptor!r}"
            )
        name = descriptor.name
        if descriptor.ttl_config is not None:
            raise StateError(
                f"operator {_MODE_NAMES[mode]} state {name!r} of operator "
                f"{self.operator_uid!r} cannot have a time-to-live: as in Flink, TTL is for "
                f"keyed state only; do not call enable_time_to_live() on this descriptor, or "
                f"use keyed state"
            )
        state = self._states.get(name)
        if state is not None:
            current = state.mode if isinstance(state, OperatorListState) else _BROADCAST
            if current != mode:
                raise StateError(
                    f"operator state {name!r} of operator {self.operator_uid!r} is registered "
                    f"as {_MODE_NAMES[current]} state; it cannot also be {_MODE_NAMES[mode]} "
                    f"state"
                )
            return state
        value = self._materialize(descriptor, mode)
        if mode == _BROADCAST:
            state = BroadcastState(descriptor, value)  # type: ignore[arg-type]
        else:
            state = OperatorListState(descriptor, mode, value)  # type: ignore[arg-type]
        self._pending.pop(name, None)
        self._states[name] = state
        return state

    def _materialize(self, descriptor: StateDescriptor, mode: str) -> Any:
        name = descriptor.name
        enc = self._pending.get(name)
        if enc is None:
            return {} if mode == _BROADCAST else []
        if enc.mode != mode:
            raise StateError(
                f"operator state {name!r} of operator {self.operator_uid!r} was restored as "
                f"{_MODE_NAMES[enc.mode]} state but is registered as {_MODE_NAMES[mode]} state"
            )
        serializer = descriptor.serializer  # type: ignore[attr-defined]
        check_codec(self.operator_uid, name, enc.codec, serializer)
        try:
            if mode == _BROADCAST:
                value = decode_element(enc.data, serializer)
                if type(value) is not dict:
                    raise ValueError(f"broadcast state holds a {type(value).__name__}, not a dict")
                return value
            return [decode_element(x, serializer) for x in enc.data]
        except Exception as exc:  # a custom serializer may raise anything
            raise StateSerializationError(
                self.operator_uid, name, f"{type(exc).__name__}: {exc}", restoring=True
            ) from exc

    def snapshot_sync(self) -> OperatorStateSnapshot:
        """Return a copy of the operator state; O(its size), which is small by design.

        Broadcast state (registered or restored and not registered yet) is in it only on
        subtask 0: it is identical on every subtask, so one copy restores every subtask.
        """
        writes_broadcast = self.subtask_index == 0
        states = []
        for name, state in self._states.items():
            if isinstance(state, BroadcastState):
                if writes_broadcast:
                    states.append(
                        (name, _BROADCAST, state.descriptor.serializer, clone_value(state._map))
                    )
            else:
                states.append(
                    (name, state.mode, state.descriptor.serializer, clone_value(state._values))
                )
        pending = {
            name: enc
            for name, enc in self._pending.items()
            if writes_broadcast or enc.mode != _BROADCAST
        }
        return OperatorStateSnapshot(self.operator_uid, states, pending)

    def restore(self, serialized: Sequence[bytes], subtask_index: int, parallelism: int) -> None:
        """Load this subtask's share of the operator state every old subtask wrote.

        :param serialized: the bytes of every old subtask, in old subtask order
        :param subtask_index: this subtask's index at the new parallelism
        :param parallelism: the new parallelism
        :raises ValueError: if ``subtask_index`` is not in ``[0, parallelism)``
        :raises StateError: if the data is malformed, or one state name was written with
            different kinds or serializers by different subtasks
        :raises StateSerializationError: if data of an already registered state cannot be
            decoded
        """
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be an int >= 1, got {parallelism!r}")
        if not isinstance(subtask_index, int) or not 0 <= subtask_index < parallelism:
            raise ValueError(f"subtask_index must be in [0, {parallelism}), got {subtask_index!r}")
        collected = self._collect(serialized)
        old = len(serialized)
        for name, (mode, codec, parts) in collected.items():
            if mode == _BROADCAST:
                # Written by old subtask 0 only (or, in older checkpoints, by every
                # subtask): the first copy from old subtask ``index % old`` on.
                order = [*parts[subtask_index % old :], *parts[: subtask_index % old]]
                data = next(p for p in order if p is not None)
            else:
                everything = [x for p in parts if p is not None for x in p]
                if mode == _UNION:
                    data = everything
                else:
                    data = even_split(everything, subtask_index, parallelism)
            self._pending[name] = _Encoded(mode, codec, data)
            state = self._states.get(name)
            if state is not None:
                value = self._materialize(state.descriptor, mode)
                self._pending.pop(name)
                if isinstance(state, BroadcastState):
                    state._map = value
                else:
                    state._values = value
        self._restored = True

    def _collect(self, serialized: Sequence[bytes]) -> dict[str, tuple[str, str, list[Any]]]:
        collected: dict[str, tuple[str, str, list[Any]]] = {}
        for old_index, blob in enumerate(serialized):
            try:
                header, payloads = unpack_frames(OPERATOR_MAGIC, blob)
                if header.get("format") != _FORMAT:
                    raise ValueError(f"unknown operator state format {header.get('format')!r}")
                for (name, mode, codec), payload in zip(header["states"], payloads, strict=True):
                    if mode not in _MODE_NAMES:
                        raise ValueError(f"unknown operator state mode {mode!r}")
                    entry = collected.setdefault(name, (mode, codec, [None] * len(serialized)))
                    if entry[:2] != (mode, codec):
                        raise StateError(
                            f"operator state {name!r} of operator {self.operator_uid!r} was "
                            f"written as {entry[:2]} by one subtask and as {(mode, codec)} by "
                            f"subtask {old_index}"
                        )
                    entry[2][old_index] = orjson.loads(payload)
            except (TypeError, ValueError, KeyError) as exc:
                raise StateError(
                    f"cannot restore operator state of operator {self.operator_uid!r} from old "
                    f"subtask {old_index}: {exc}"
                ) from exc
        return collected

    def is_restored(self) -> bool:
        """Return whether state was restored (Flink's ``context.is_restored()``)."""
        return self._restored

    def state_size(self) -> int:
        """Return the number of list elements and map entries held."""
        return sum(
            len(s._map) if isinstance(s, BroadcastState) else len(s._values)
            for s in self._states.values()
        )

    def has_state(self) -> bool:
        """Return whether a snapshot would hold anything: a registered state (even an empty
        one) or restored data no descriptor has claimed yet (broadcast state counts on
        subtask 0 only, the one that writes it)."""
        if self.subtask_index == 0:
            return bool(self._states or self._pending)
        return any(not isinstance(s, BroadcastState) for s in self._states.values()) or any(
            enc.mode != _BROADCAST for enc in self._pending.values()
        )
