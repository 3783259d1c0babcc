"""Storage of one keyed state: a dict per key group, copy-on-write per entry against snapshots.

This is the heap backend's answer to Flink's ``CopyOnWriteStateMap``. A snapshot's synchronous
part (:meth:`StateTable.freeze`) copies nothing: it marks every non-empty key group as
*captured* and gives the snapshot an empty *shadow* dict per captured group. While a group is
captured, every access to a key in it (read or write) first records that key's old value in
the shadow (:meth:`StateTable.touch`), once per key and snapshot; the live dict is then
changed in place. Serializing a group (:meth:`StateTable.view_of`) overlays the shadow on the
live dict, which gives exactly the state at the snapshot, and releases the group
(:meth:`StateTable.release`), after which accesses take the fast path again.

So the synchronous part is O(key groups), and no access ever pays for copying a whole key
group: the cost after a snapshot is one small dict insert per key touched before its group
was written, spread over the records that touch them. Old values are recorded with
:func:`clone_value` (deep for builtin containers, free for immutable values), because a value
read from state may be mutated in place by the user (a list in a ``ValueState``).

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

__all__ = ["MISSING", "StateTable", "clone_value"]

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


def _immutable(values: list[Any]) -> bool:
    """Whether every value is an immutable scalar (or :data:`MISSING`), or a tuple of them:
    type scans at C speed, so the common values of keyed state need no copy."""
    types = set(map(type, values))
    types.discard(object)  # MISSING
    if types <= _ATOMS:
        return True
    if types - _ATOMS != {tuple}:
        return False
    tuples = [v for v in values if type(v) is tuple]
    return set(map(type, chain.from_iterable(tuples))) <= _ATOMS


#: Marks, in a shadow, a key that had no value when the snapshot was taken.
MISSING: Any = object()


class StateTable:
    """The ``{user key: value}`` dicts of one keyed state, one per key group of the backend.

    :param name: the state's name (for error messages)
    :param size: number of key groups of the backend
    """

    __slots__ = ("_captured", "changed", "name", "tables", "writable")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        #: The live dict per key group index (``key_group - range.start``).
        self.tables: list[dict[Any, Any]] = [{} for _ in range(size)]
        #: What state views access directly: the live dict, or ``None`` while a pending
        #: snapshot still needs the group (then :meth:`touch` is the way in). One extra
        #: trailing ``None`` stands for "no current key", so a view needs no separate check.
        # Invariant: writable[i] is tables[i] if _captured[i] is empty and changes are not
        #            tracked, else None;
        #            writable[size] is None.
        # Invariant: this list object is never replaced (views hold it).
        self.writable: list[dict[Any, Any] | None] = [*self.tables, None]
        #: Per key group, the shadows of the snapshots that captured it and have not
        #: serialized it yet.
        self._captured: list[list[dict[Any, Any]]] = [[] for _ in range(size)]
        #: With change tracking on (:meth:`track_changes`, for incremental checkpoints),
        #: per key group the keys accessed since the changes were last taken
        #: (:meth:`take_changes`); ``None`` when off.
        # Invariant: while tracking, writable[i] is None for every i (every access goes
        #            through touch, which records the key).
        self.changed: list[set[Any]] | None = None

    @property
    def captured(self) -> list[list[dict[Any, Any]]]:
        """Per key group, the shadows of pending snapshots (empty: none needs the group)."""
        return self._captured

    def track_changes(self) -> None:
        """Record, from now on, every key accessed (read or written: a value read may be
        mutated in place) per key group, for incremental snapshots. Every access then
        takes :meth:`touch`, the path accesses take while a snapshot is pending."""
        if self.changed is None:
            self.changed = [set() for _ in self.tables]
            for index in range(len(self.tables)):
                self.writable[index] = None

    def take_changes(self) -> list[set[Any]] | None:
        """Return the keys accessed per key group since the last call, and start afresh;
        ``None`` when changes are not tracked."""
        changed = self.changed
        if changed is None:
            return None
        self.changed = [set() for _ in self.tables]
        return changed

    def touch(self, index: int, key: Any) -> dict[Any, Any]:
        """Record ``key``'s value in every pending shadow of group ``index``; return the
        live dict of the group (the slow path of an access while a snapshot is pending).

        :raises StateError: if ``index`` is the "no current key" slot
        """
        if index >= len(self.tables):
            raise StateError(
                f"no current key: set_current_key() must be called before state "
                f"{self.name!r} is used"
            )
        table = self.tables[index]
        captured = self._captured[index]
        if captured:
            old = table.get(key, MISSING)
            for shadow in captured:
                if key not in shadow:
                    shadow[key] = old if old is MISSING else clone_value(old)
        changed = self.changed
        if changed is not None:
            changed[index].add(key)
        return table

    def freeze(self) -> list[dict[Any, Any] | None]:
        """Capture every non-empty key group for a new snapshot; return its shadows.

        O(number of key groups): nothing is copied. The result has one entry per key
        group: a (still empty) shadow dict for a captured group, ``None`` for an empty one.
        """
        shadows: list[dict[Any, Any] | None] = []
        writable = self.writable
        for index, (table, captured) in enumerate(zip(self.tables, self._captured, strict=True)):
            if table:
                shadow: dict[Any, Any] = {}
                captured.append(shadow)
                writable[index] = None
                shadows.append(shadow)
            else:
                shadows.append(None)
        return shadows

    def copy_entries(self, keys: list[set[Any]]) -> list[dict[Any, Any] | None]:
        """Return, per key group, a copy of the entries of ``keys`` (:data:`MISSING` for a
        key without a value), or ``None`` where the set is empty."""
        out: list[dict[Any, Any] | None] = []
        for table, group in zip(self.tables, keys, strict=True):
            if not group:
                out.append(None)
                continue
            get = table.get
            values = [get(key, MISSING) for key in group]
            if not _immutable(values):
                values = [v if v is MISSING else clone_value(v) for v in values]
            out.append(dict(zip(group, values, strict=True)))
        return out

    def view_of(self, index: int, shadow: dict[Any, Any]) -> dict[Any, Any]:
        """Return group ``index`` as it was when ``shadow``'s snapshot was taken.

        Read it before the event loop runs anything else: it may be the live dict itself.
        """
        table = self.tables[index]
        if not shadow:
            return table
        data = dict(table)
        for key, old in shadow.items():
            if old is MISSING:
                data.pop(key, None)
            else:
                data[key] = old
        return data

    def release(self, index: int, shadow: dict[Any, Any]) -> None:
        """The snapshot of ``shadow`` no longer needs group ``index``."""
        captured = self._captured[index]
        for position, pending in enumerate(captured):
            if pending is shadow:
                del captured[position]
                break
        if not captured and self.changed is None:
            self.writable[index] = self.tables[index]

    def load(self, index: int, table: dict[Any, Any]) -> None:
        """Replace the table of key group ``index`` (used by restore)."""
        self.tables[index] = table
        self._captured[index].clear()
        self.writable[index] = table if self.changed is None else None

    def apply_changes(
        self, index: int, upserts: dict[Any, Any] | None, removals: dict[Any, Any] | None
    ) -> None:
        """Apply an incremental snapshot's changes to key group ``index`` (used by restore):
        set the keys of ``upserts`` to their values, remove the keys of ``removals``."""
        table = self.tables[index]
        if upserts:
            table.update(upserts)
        if removals:
            for key in removals:
                table.pop(key, None)

    def size(self) -> int:
        """Return the number of user keys with a value, over all key groups."""
        return sum(map(len, self.tables))
