"""Keyed state views: ``ValueState``, ``ListState``, ``MapState``, ``ReducingState``,
``AggregatingState``.

A view is what ``RuntimeContext.get_state(descriptor)`` returns. It holds no data: every call
reads or writes the entry of the backend's *current key* (set by the engine before each
record) in the view's :class:`~streamlet.state.table.StateTable`. Semantics follow Flink's heap
backend: an empty state reads as the descriptor's default (``None``, or ``[]`` for a list), writing
``None`` to a value, reducing or aggregating state clears it, and ``None`` cannot be added to
a list state.

These methods are the per-record hot path, so they are written out flat: two attribute loads
from the backend, one list index, one ``is None`` test for the copy-on-write check, then the
dict operation. Values returned (a list state's list, a map's values) are live: copy them if
you keep them beyond the current record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .table import clone_value

if TYPE_CHECKING:
    from .descriptors import (
        AggregatingStateDescriptor,
        ReducingStateDescriptor,
        StateDescriptor,
        ValueStateDescriptor,
    )
    from .table import StateTable


class CurrentKey(Protocol):
    """What a state view reads of its backend on every call: the current key and the index
    of its key group (``HeapKeyedStateBackend.set_current_key`` keeps both). A Protocol, so
    the views and the backend that creates them do not import each other."""

    _current_key: Any
    _kg_index: int


__all__ = [
    "AggregatingState",
    "KeyedState",
    "ListState",
    "MapState",
    "ReducingState",
    "ValueState",
    "make_value_state",
]


class KeyedState:
    """Common part of the keyed state views: the backend (for the current key) and table.

    :param backend: supplies the current key (``_current_key``) and its key group index
        (``_kg_index``), which :meth:`HeapKeyedStateBackend.set_current_key` maintains
    :param table: where this state's data lives
    :param descriptor: the descriptor the state was registered with
    """

    __slots__ = ("_backend", "_touch", "_writable", "descriptor", "name")

    def __init__(self, backend: CurrentKey, table: StateTable, descriptor: StateDescriptor) -> None:
        self._backend = backend
        self._writable = table.writable
        self._touch = table.touch
        self.descriptor = descriptor
        self.name = descriptor.name

    def _table(self) -> dict[Any, Any]:
        i = self._backend._kg_index
        t = self._writable[i]
        return self._touch(i, self._backend._current_key) if t is None else t

    def clear(self) -> None:
        """Remove the current key's value."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        t.pop(b._current_key, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ValueState(KeyedState):
    """One value per key (Flink's ``ValueState``)."""

    __slots__ = ("_default",)

    def __init__(
        self, backend: CurrentKey, table: StateTable, descriptor: ValueStateDescriptor
    ) -> None:
        super().__init__(backend, table, descriptor)
        self._default = descriptor.default_value

    def value(self) -> Any:
        """Return the current key's value, or the descriptor's default when it has none."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        return t.get(b._current_key, self._default)

    def update(self, value: Any) -> None:
        """Set the current key's value; ``None`` clears it (as in Flink)."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        if value is None:
            t.pop(b._current_key, None)
        else:
            t[b._current_key] = value


class _CopyingDefaultValueState(ValueState):
    """A ``ValueState`` whose default is mutable: each key gets its own copy of it."""

    __slots__ = ()

    def value(self) -> Any:
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        if key in t:
            return t[key]
        return clone_value(self._default)


def make_value_state(
    backend: CurrentKey, table: StateTable, descriptor: ValueStateDescriptor
) -> ValueState:
    """Return the view for ``descriptor``; a mutable default is copied on every miss."""
    default = descriptor.default_value
    if clone_value(default) is default:
        return ValueState(backend, table, descriptor)
    return _CopyingDefaultValueState(backend, table, descriptor)


def _no_none(state: KeyedState, values: Iterable[Any] | None, what: str) -> list[Any]:
    if values is None:
        raise ValueError(f"list state {state.name!r}: {what} got None instead of a list")
    values = list(values)
    if None in values:
        raise ValueError(f"list state {state.name!r} cannot hold None: {what} got {values!r}")
    return values


class ListState(KeyedState):
    """A list of values per key (Flink's ``ListState``); ``None`` elements are refused."""

    __slots__ = ()

    def get(self) -> list[Any]:
        """Return the current key's list (live; ``[]``, a fresh list, when empty)."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        values = t.get(b._current_key)
        return [] if values is None else values

    def add(self, value: Any) -> None:
        """Append ``value`` to the current key's list.

        :raises ValueError: if ``value`` is ``None``
        """
        if value is None:
            raise ValueError(f"list state {self.name!r} cannot hold None: add() got None")
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        values = t.get(key)
        if values is None:
            t[key] = [value]
        else:
            values.append(value)

    def add_all(self, values: Iterable[Any]) -> None:
        """Append every element of ``values`` to the current key's list.

        :raises ValueError: if ``values`` is ``None`` or holds ``None``
        """
        values = _no_none(self, values, "add_all()")
        if not values:
            return
        t = self._table()
        key = self._backend._current_key
        existing = t.get(key)
        if existing is None:
            t[key] = values
        else:
            existing.extend(values)

    def update(self, values: Iterable[Any]) -> None:
        """Replace the current key's list by ``values`` (an empty one clears it).

        :raises ValueError: if ``values`` is ``None`` or holds ``None``
        """
        values = _no_none(self, values, "update()")
        t = self._table()
        if values:
            t[self._backend._current_key] = values
        else:
            t.pop(self._backend._current_key, None)


class MapState(KeyedState):
    """A dict per key (Flink's ``MapState``). Absent entries read as ``None``.

    ``keys()``, ``values()`` and ``items()`` return lists, so the state may be changed while
    iterating over them.
    """

    __slots__ = ()

    def _map(self) -> dict[Any, Any] | None:
        return self._table().get(self._backend._current_key)

    def get(self, key: Any) -> Any:
        """Return the value of map entry ``key`` for the current key, ``None`` if absent."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        m = t.get(b._current_key)
        return None if m is None else m.get(key)

    def put(self, key: Any, value: Any) -> None:
        """Set map entry ``key`` to ``value`` for the current key."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        m = t.get(b._current_key)
        if m is None:
            t[b._current_key] = {key: value}
        else:
            m[key] = value

    def put_all(self, entries: Mapping[Any, Any]) -> None:
        """Set every entry of ``entries`` for the current key."""
        if not entries:
            return
        t = self._table()
        m = t.get(self._backend._current_key)
        if m is None:
            t[self._backend._current_key] = dict(entries)
        else:
            m.update(entries)

    def remove(self, key: Any) -> None:
        """Remove map entry ``key`` (if present) for the current key."""
        t = self._table()
        m = t.get(self._backend._current_key)
        if m is not None:
            m.pop(key, None)
            if not m:
                # Invariant: no empty dicts are stored, so is_empty() is a membership test.
                del t[self._backend._current_key]

    def contains(self, key: Any) -> bool:
        """Return whether map entry ``key`` exists for the current key."""
        m = self._map()
        return m is not None and key in m

    def keys(self) -> list[Any]:
        """Return the current key's map keys."""
        m = self._map()
        return [] if m is None else list(m)

    def values(self) -> list[Any]:
        """Return the current key's map values."""
        m = self._map()
        return [] if m is None else list(m.values())

    def items(self) -> list[tuple[Any, Any]]:
        """Return the current key's map entries as ``(key, value)`` pairs."""
        m = self._map()
        return [] if m is None else list(m.items())

    def is_empty(self) -> bool:
        """Return whether the current key's map has no entries."""
        return self._backend._current_key not in self._table()

    def __getitem__(self, key: Any) -> Any:
        m = self._map()
        if m is None or key not in m:
            raise KeyError(key)
        return m[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.contains(key):
            raise KeyError(key)
        self.remove(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class ReducingState(KeyedState):
    """Values folded with the descriptor's reduce function (Flink's ``ReducingState``)."""

    __slots__ = ("_reduce",)

    def __init__(
        self,
        backend: CurrentKey,
        table: StateTable,
        descriptor: ReducingStateDescriptor,
    ) -> None:
        super().__init__(backend, table, descriptor)
        self._reduce = descriptor.reduce

    def get(self) -> Any:
        """Return the current key's reduced value, ``None`` when empty."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        return t.get(b._current_key)

    def add(self, value: Any) -> None:
        """Fold ``value`` into the current key's value; ``None`` clears it (as in Flink)."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        if value is None:
            t.pop(key, None)
            return
        current = t.get(key)
        if current is not None:
            value = self._reduce(current, value)
        if value is None:
            t.pop(key, None)
        else:
            t[key] = value


class AggregatingState(KeyedState):
    """Values folded into an accumulator (Flink's ``AggregatingState``).

    The accumulator is what is stored and checkpointed; :meth:`get` returns
    ``get_result(accumulator)``.
    """

    __slots__ = ("_add", "_create", "_result")

    def __init__(
        self,
        backend: CurrentKey,
        table: StateTable,
        descriptor: AggregatingStateDescriptor,
    ) -> None:
        super().__init__(backend, table, descriptor)
        fn = descriptor.aggregate_function
        self._create = fn.create_accumulator
        self._add = fn.add
        self._result = fn.get_result

    def get(self) -> Any:
        """Return the result for the current key's accumulator, ``None`` when empty."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        acc = t.get(b._current_key)
        return None if acc is None else self._result(acc)

    def add(self, value: Any) -> None:
        """Add ``value`` to the current key's accumulator; ``None`` clears it (as in Flink)."""
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        if value is None:
            t.pop(key, None)
            return
        acc = t.get(key)
        if acc is None:
            acc = self._create()
        t[key] = self._add(value, acc)
