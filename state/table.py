"""Storage of one keyed state: a dict per key group, copy-on-write against snapshots.

This is the heap backend's answer to Flink's ``CopyOnWriteStateMap``, at key-group
granularity. A snapshot's synchronous part (:meth:`StateTable.freeze`) hands the current
dict of every non-empty key group to the snapshot and marks it *shared*; the first access to
a shared key group afterwards (read or write) replaces it by a private copy
(:meth:`StateTable.fork`). So the synchronous part is O(key groups), the copying is spread
over the records that follow, and only key groups that are actually touched get copied.

Reads fork too, because a value read from state may be mutated in place by the user (a list
in a ``ValueState``); the copy is deep for the builtin containers (:func:`clone_value`), so
neither reads nor writes after the snapshot can reach the frozen dicts.

Residual rule for users (the same as Flink's heap backend): do not keep a reference to an
object read from or written to state beyond the current record, and mutate it only before the
next ``update``/``put``/``add``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any

from .errors import StateError

__all__ = ["StateTable", "clone_value", "fork_table"]

# Values of these types are immutable, so they are shared, never copied.
_ATOMS = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        complex,
        frozenset,
        Decimal,
        uuid.UUID,
        date,
        datetime,
        time,
        timedelta,
    }
)


def clone_value(value: Any) -> Any:
    """Return a copy of ``value`` that shares no mutable object with it.

    Builtin containers are copied recursively (with a fast path when they hold only
    immutable scalars); immutable scalars are returned as they are; anything else goes
    through :func:`copy.deepcopy`.
    """
    t = type(value)
    if t in _ATOMS:
        return value
    if t is list:
        if set(map(type, value)) <= _ATOMS:
            return value.copy()
        return [clone_value(x) for x in value]
    if t is dict:
        if set(map(type, value.values())) <= _ATOMS:
            return value.copy()
        return {k: clone_value(v) for k, v in value.items()}
    if t is tuple:
        if set(map(type, value)) <= _ATOMS:
            return value
        return tuple([clone_value(x) for x in value])
    if t is set or t is bytearray:
        return value.copy()
    return copy.deepcopy(value)


def fork_table(table: dict[Any, Any]) -> dict[Any, Any]:
    """Return a copy of a key group's table that shares no mutable value with it."""
    values = table.values()
    types = set(map(type, values))
    if types <= _ATOMS:
        return table.copy()
    if types == {tuple} and set(map(type, chain.from_iterable(values))) <= _ATOMS:
        # Tuples of immutable scalars (a rolling (key, count), a composite value) are
        # immutable too: share them. Two C-level passes instead of a clone per value.
        return table.copy()
    return {k: clone_value(v) for k, v in table.items()}


class StateTable:
    """The ``{user key: value}`` dicts of one keyed state, one per key group of the backend.

    :param name: the state's name (for error messages)
    :param size: number of key groups of the backend
    """

    __slots__ = ("name", "tables", "writable")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        #: Current dict per key group index (``key_group - range.start``); read by snapshots.
        self.tables: list[dict[Any, Any]] = [{} for _ in range(size)]
        #: What the state views access: the dict when this table owns it, ``None`` when it
        #: is shared with a snapshot. One extra trailing ``None`` stands for "no current
        #: key", so a view needs no separate check for it.
        # Invariant: writable[i] is tables[i] or None for i < size; writable[size] is None.
        # Invariant: writable[i] is None implies tables[i] is non-empty.
        # Invariant: this list object is never replaced (views hold it).
        self.writable: list[dict[Any, Any] | None] = [*self.tables, None]

    def fork(self, index: int) -> dict[Any, Any]:
        """Make key group ``index`` private again (it was frozen by a snapshot); return it.

        :raises StateError: if ``index`` is the "no current key" slot
        """
        if index >= len(self.tables):
            raise StateError(
                f"no current key: set_current_key() must be called before state "
                f"{self.name!r} is used"
            )
        table = fork_table(self.tables[index])
        self.tables[index] = table
        self.writable[index] = table
        return table

    def freeze(self) -> list[dict[Any, Any] | None]:
        """Return the current dict of every key group (``None`` when empty), now shared.

        O(number of key groups): nothing is copied here. Empty tables are not shared, so
        they stay writable without a copy.
        """
        frozen = [t if t else None for t in self.tables]
        self.writable[: len(frozen)] = [None if t else t for t in self.tables]
        return frozen

    def load(self, index: int, table: dict[Any, Any]) -> None:
        """Replace the table of key group ``index`` (used by restore)."""
        self.tables[index] = table
        self.writable[index] = table

    def size(self) -> int:
        """Return the number of user keys with a value, over all key groups."""
        return sum(map(len, self.tables))
