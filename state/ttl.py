"""Keyed state time-to-live: Flink's ``StateTtlConfig`` and the views of states that expire.

``StateTtlConfig.new_builder(Time.minutes(5)).build()`` passed to a keyed descriptor's
``enable_time_to_live`` makes its entries expire: each entry (a value state's value, each
element of a list state, each entry of a map state, a reducing or aggregating state's value)
carries the processing time of its last access that counts, per the update type (creation
and writes; or reads as well). An entry is expired once ``last_access + ttl <= now``
(Flink's ``TtlUtils.expired``). Reading an expired entry removes it; it is returned anyway
only with ``ReturnExpiredIfNotCleanedUp``.

Time is the backend's :attr:`~streamlet.state.heap_backend.HeapKeyedStateBackend.ttl_time_provider`,
a callable returning epoch milliseconds (the wall clock unless the engine sets its job's
processing-time clock).

Storage: a TTL state keeps ``(value, timestamp)`` tuples in its table where a state without
TTL keeps ``value`` (for a list state, a list of such tuples; for a map state, a dict of
them), so states without TTL run exactly the code they ran before and TTL states have their
own views (:class:`TtlValueState` and the others), chosen once at registration. The
timestamps are part of what is checkpointed (restore keeps them, as Flink does); the
snapshot records the state's codec as ``"ttl:" + codec``, so restoring with TTL switched on
or off is refused. With the default serializer the tuples are written as they are; a custom
serializer is wrapped (:class:`TtlSerializer`) so it still sees only the user's values.

Cleanup: besides reads, ``cleanup_full_snapshot()`` leaves expired entries out of snapshots,
and incremental cleanup (the heap backend's default: 5 entries per state access) walks the
state's keys with a cursor and drops what expired, optionally also once per record (the
engine calls :meth:`HeapKeyedStateBackend.ttl_cleanup_step`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .keyed import (
    AggregatingState,
    ListState,
    MapState,
    ReducingState,
    ValueState,
    _no_none,
)
from .table import MISSING, clone_value
from .ttl_config import StateTtlConfig, _StateVisibility, _UpdateType

if TYPE_CHECKING:
    from .descriptors import StateDescriptor
    from .table import StateTable

__all__ = [
    "TTL_CODEC_PREFIX",
    "StateTtlConfig",
    "TtlAggregatingState",
    "TtlCleanup",
    "TtlListState",
    "TtlMapState",
    "TtlReducingState",
    "TtlSerializer",
    "TtlValueState",
    "expired_filter",
]

#: Put before the codec name that a snapshot records for a TTL state (``"ttl:json"``).
TTL_CODEC_PREFIX = "ttl:"


# --- Expiry of stored entries: (value, timestamp) tuples ---


def _clean_entry(kind: str, stored: Any, limit: int) -> Any:
    """Return ``stored`` without what expired (``ts <= limit``): the same object when nothing
    did, ``MISSING`` when nothing is left."""
    if kind == "list":
        if all(e[1] > limit for e in stored):
            return stored
        kept = [e for e in stored if e[1] > limit]
        return kept if kept else MISSING
    if kind == "map":
        if all(e[1] > limit for e in stored.values()):
            return stored
        kept_map = {k: e for k, e in stored.items() if e[1] > limit}
        return kept_map if kept_map else MISSING
    return stored if stored[1] > limit else MISSING


def expired_filter(
    kind: str, ttl_ms: int, now: int
) -> Callable[[Mapping[Any, Any]], dict[Any, Any]]:
    """Return a function that copies a table of a TTL state of ``kind`` without the entries
    expired at ``now`` (for ``cleanup_full_snapshot``); the table itself is not changed."""
    limit = now - ttl_ms

    def keep_unexpired(table: Mapping[Any, Any]) -> dict[Any, Any]:
        out = {}
        for key, stored in table.items():
            cleaned = _clean_entry(kind, stored, limit)
            if cleaned is not MISSING:
                out[key] = cleaned
        return out

    return keep_unexpired


class TtlCleanup:
    """Incremental cleanup of one TTL state: a cursor over its key groups' dicts.

    Each :meth:`step` checks up to ``cleanup_size`` keys and drops what expired, going on
    where the last step stopped, so the whole state is visited again and again. The keys of
    a key group are listed when the cursor enters it (keys added later wait for the next
    lap). Writes go through copy-on-write like every access: a key group a pending snapshot
    still needs has the old value recorded for the snapshot first.
    """

    __slots__ = ("_clock", "_group", "_keys", "_kind", "_pos", "_size", "_table", "_ttl")

    def __init__(
        self, table: StateTable, kind: str, ttl_ms: int, size: int, clock: Callable[[], int]
    ) -> None:
        self._table = table
        self._kind = kind
        self._ttl = ttl_ms
        self._size = size
        self._clock = clock
        self._group = -1
        self._keys: list[Any] = []
        self._pos = 0

    def step(self, entries: int | None = None, skips: int | None = None) -> int:
        """Check up to ``entries`` keys (default: the cleanup size), passing over at most
        ``skips`` empty key groups (default: as many as ``entries``, so that a step on a
        sparse state stays as cheap as on a dense one); return how many keys were removed
        entirely."""
        budget = self._size if entries is None else entries
        skips = budget if skips is None else skips
        table = self._table
        tables = table.tables
        groups = len(tables)
        if not groups:  # a subtask that owns no key group
            return 0
        limit = self._clock() - self._ttl
        kind = self._kind
        removed = 0
        while budget > 0:
            if self._pos >= len(self._keys):
                # The next key group; its keys are listed once, on entering it.
                self._group = group = (self._group + 1) % groups
                self._pos = 0
                if not tables[group]:
                    self._keys = []
                    skips -= 1
                    if skips <= 0:
                        break
                    continue
                self._keys = list(tables[group])
            group = self._group
            key = self._keys[self._pos]
            self._pos += 1
            budget -= 1
            live = tables[group]
            stored = live.get(key, MISSING)
            if stored is MISSING:
                continue
            cleaned = _clean_entry(kind, stored, limit)
            if cleaned is stored:
                continue
            if table.writable[group] is None:
                live = table.touch(group, key)
            if cleaned is MISSING:
                del live[key]
                removed += 1
            else:
                live[key] = cleaned
        return removed

    def step_for_records(self, records: int) -> None:
        """The per-record cleanup of ``records`` records: a step of ``cleanup_size`` entries
        each, at most one lap over the state's entries and key groups."""
        if records > 0:
            work = self._size * records
            table = self._table
            self.step(min(work, table.size()), min(work, len(table.tables)))


# --- Serialization with a custom serializer ---

_TS = struct.Struct("<q")
_COUNT = struct.Struct("<I")


class TtlSerializer:
    """Wraps a descriptor's own serializer so that it sees only the user's values.

    The user's serializer gets what it would get without TTL (a value, a list element, a
    whole map); the timestamps go in front of its bytes: one int64 (little endian) for a
    value or element; for a map, the entry count (uint32) and one int64 per entry, in the
    order of the dict given to the user's serializer, which must keep a map's order (as
    pickle and JSON do).

    :param serializer: the descriptor's serializer
    :param kind: the state's kind ("map" stores a dict of entries per key)
    """

    __slots__ = ("_inner", "_map", "name")

    def __init__(self, serializer: Any, kind: str) -> None:
        from .serde import codec_name

        self._inner = serializer
        self._map = kind == "map"
        self.name = TTL_CODEC_PREFIX + codec_name(serializer)

    def dumps(self, stored: Any) -> bytes:
        if self._map:
            items = list(stored.items())
            head = _COUNT.pack(len(items)) + b"".join(_TS.pack(e[1]) for _, e in items)
            return head + bytes(self._inner.dumps({k: e[0] for k, e in items}))
        value, ts = stored
        return _TS.pack(ts) + bytes(self._inner.dumps(value))

    def loads(self, data: bytes) -> Any:
        if self._map:
            (count,) = _COUNT.unpack_from(data, 0)
            start = _COUNT.size + count * _TS.size
            stamps = [_TS.unpack_from(data, _COUNT.size + i * _TS.size)[0] for i in range(count)]
            user = self._inner.loads(data[start:])
            if not isinstance(user, dict) or len(user) != count:
                raise ValueError(
                    f"TTL map state: serializer {self._inner!r} gave back {type(user).__name__} "
                    f"of {len(user) if isinstance(user, dict) else '?'} entries for {count} "
                    f"timestamps"
                )
            return {k: (v, ts) for (k, v), ts in zip(user.items(), stamps, strict=True)}
        (ts,) = _TS.unpack_from(data, 0)
        return (self._inner.loads(data[_TS.size :]), ts)


# --- Views ---


class TtlContext(Protocol):
    """What a TTL view reads of its backend: the current key, its key group index, and
    the processing-time provider (epoch ms)."""

    _current_key: Any
    _kg_index: int
    ttl_time_provider: Callable[[], int]


def _init_ttl(view: Any, descriptor: StateDescriptor, cleanup: TtlCleanup | None) -> None:
    config = descriptor.ttl_config
    assert config is not None
    view._ttl = config.ttl_ms
    view._on_read = config.update_type is _UpdateType.OnReadAndWrite
    view._return_expired = config.state_visibility is _StateVisibility.ReturnExpiredIfNotCleanedUp
    view._cleanup = cleanup


_TTL_SLOTS = ("_cleanup", "_on_read", "_return_expired", "_ttl")


def _read_single(self: Any) -> Any:
    """The current key's value per the TTL rules, ``MISSING`` when none is returned."""
    if self._cleanup is not None:
        self._cleanup.step()
    b = self._backend
    i = b._kg_index
    t = self._writable[i]
    if t is None:
        t = self._touch(i, b._current_key)
    key = b._current_key
    stored = t.get(key)
    if stored is None:
        return MISSING
    now = b.ttl_time_provider()
    if stored[1] + self._ttl <= now:
        del t[key]
        return stored[0] if self._return_expired else MISSING
    if self._on_read:
        t[key] = (stored[0], now)
    return stored[0]


class TtlValueState(ValueState):
    """A :class:`~streamlet.state.keyed.ValueState` whose value expires."""

    __slots__ = _TTL_SLOTS
    _backend: TtlContext
    _cleanup: TtlCleanup | None
    _on_read: bool
    _return_expired: bool
    _ttl: int

    def __init__(
        self, backend: Any, table: StateTable, descriptor: Any, cleanup: TtlCleanup | None
    ) -> None:
        super().__init__(backend, table, descriptor)
        _init_ttl(self, descriptor, cleanup)

    _read = _read_single

    def value(self) -> Any:
        value = self._read()
        if value is MISSING:
            return clone_value(self._default)
        return value

    def update(self, value: Any) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        if value is None:
            t.pop(b._current_key, None)
        else:
            t[b._current_key] = (value, b.ttl_time_provider())

    def clear(self) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().clear()


class TtlReducingState(ReducingState):
    """A :class:`~streamlet.state.keyed.ReducingState` whose value expires."""

    __slots__ = _TTL_SLOTS
    _backend: TtlContext
    _cleanup: TtlCleanup | None
    _on_read: bool
    _return_expired: bool
    _ttl: int

    def __init__(
        self, backend: Any, table: StateTable, descriptor: Any, cleanup: TtlCleanup | None
    ) -> None:
        super().__init__(backend, table, descriptor)
        _init_ttl(self, descriptor, cleanup)

    _read = _read_single

    def get(self) -> Any:
        value = self._read()
        return None if value is MISSING else value

    def add(self, value: Any) -> None:
        """Fold ``value`` into the current key's value; an expired value is not folded in
        (unless ``ReturnExpiredIfNotCleanedUp``); ``None`` clears the state."""
        if self._cleanup is not None:
            self._cleanup.step()
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        if value is None:
            t.pop(key, None)
            return
        now = b.ttl_time_provider()
        stored = t.get(key)
        if stored is not None and (self._return_expired or stored[1] + self._ttl > now):
            value = self._reduce(stored[0], value)
        if value is None:
            t.pop(key, None)
        else:
            t[key] = (value, now)

    def clear(self) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().clear()


class TtlAggregatingState(AggregatingState):
    """An :class:`~streamlet.state.keyed.AggregatingState` whose accumulator expires."""

    __slots__ = _TTL_SLOTS
    _backend: TtlContext
    _cleanup: TtlCleanup | None
    _on_read: bool
    _return_expired: bool
    _ttl: int

    def __init__(
        self, backend: Any, table: StateTable, descriptor: Any, cleanup: TtlCleanup | None
    ) -> None:
        super().__init__(backend, table, descriptor)
        _init_ttl(self, descriptor, cleanup)

    _read = _read_single

    def get(self) -> Any:
        acc = self._read()
        return None if acc is MISSING else self._result(acc)

    def add(self, value: Any) -> None:
        """Add ``value`` to the current key's accumulator; an expired accumulator starts
        afresh (unless ``ReturnExpiredIfNotCleanedUp``); ``None`` clears the state."""
        if self._cleanup is not None:
            self._cleanup.step()
        b = self._backend
        i = b._kg_index
        t = self._writable[i]
        if t is None:
            t = self._touch(i, b._current_key)
        key = b._current_key
        if value is None:
            t.pop(key, None)
            return
        now = b.ttl_time_provider()
        stored = t.get(key)
        if stored is not None and (self._return_expired or stored[1] + self._ttl > now):
            acc = stored[0]
        else:
            acc = self._create()
        t[key] = (self._add(value, acc), now)

    def clear(self) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().clear()


class TtlListState(ListState):
    """A :class:`~streamlet.state.keyed.ListState` whose elements expire one by one.

    Unlike a list state without TTL, :meth:`get` returns a new list: change the state with
    :meth:`add`, :meth:`add_all` or :meth:`update`.
    """

    __slots__ = _TTL_SLOTS
    _backend: TtlContext
    _cleanup: TtlCleanup | None
    _on_read: bool
    _return_expired: bool
    _ttl: int

    def __init__(
        self, backend: Any, table: StateTable, descriptor: Any, cleanup: TtlCleanup | None
    ) -> None:
        super().__init__(backend, table, descriptor)
        _init_ttl(self, descriptor, cleanup)

    def _entries(self) -> tuple[dict[Any, Any], int]:
        if self._cleanup is not None:
            self._cleanup.step()
        return self._table(), self._backend.ttl_time_provider()

    def get(self) -> list[Any]:
        """Return the current key's unexpired elements (a new list); expired ones are
        removed, and returned too with ``ReturnExpiredIfNotCleanedUp``."""
        t, now = self._entries()
        key = self._backend._current_key
        stored = t.get(key)
        if stored is None:
            return []
        limit = now - self._ttl
        kept = [e for e in stored if e[1] > limit]
        out = [e[0] for e in (stored if self._return_expired else kept)]
        if self._on_read:
            kept = [(e[0], now) for e in kept]
        if not kept:
            del t[key]
        elif len(kept) != len(stored) or self._on_read:
            t[key] = kept
        return out

    def add(self, value: Any) -> None:
        if value is None:
            raise ValueError(f"list state {self.name!r} cannot hold None: add() got None")
        t, now = self._entries()
        key = self._backend._current_key
        stored = t.get(key)
        if stored is None:
            t[key] = [(value, now)]
        else:
            stored.append((value, now))

    def add_all(self, values: Iterable[Any]) -> None:
        values = _no_none(self, values, "add_all()")
        if not values:
            return
        t, now = self._entries()
        key = self._backend._current_key
        entries = [(v, now) for v in values]
        stored = t.get(key)
        if stored is None:
            t[key] = entries
        else:
            stored.extend(entries)

    def update(self, values: Iterable[Any]) -> None:
        values = _no_none(self, values, "update()")
        t, now = self._entries()
        if values:
            t[self._backend._current_key] = [(v, now) for v in values]
        else:
            t.pop(self._backend._current_key, None)

    def clear(self) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().clear()


class TtlMapState(MapState):
    """A :class:`~streamlet.state.keyed.MapState` whose entries expire one by one.

    Every read (``get``, ``contains``, ``keys``, ``values``, ``items``, ``is_empty``) removes
    the expired entries it meets; ``OnReadAndWrite`` refreshes the entries it returns
    (``is_empty`` returns none, so refreshes none).
    """

    __slots__ = _TTL_SLOTS
    _backend: TtlContext
    _cleanup: TtlCleanup | None
    _on_read: bool
    _return_expired: bool
    _ttl: int

    def __init__(
        self, backend: Any, table: StateTable, descriptor: Any, cleanup: TtlCleanup | None
    ) -> None:
        super().__init__(backend, table, descriptor)
        _init_ttl(self, descriptor, cleanup)

    def _access(self) -> tuple[dict[Any, Any], int]:
        if self._cleanup is not None:
            self._cleanup.step()
        return self._table(), self._backend.ttl_time_provider()

    def _entry(self, key: Any) -> Any:
        """The value of map entry ``key`` per the TTL rules, ``MISSING`` when none."""
        t, now = self._access()
        user_key = self._backend._current_key
        m = t.get(user_key)
        if m is None:
            return MISSING
        stored = m.get(key)
        if stored is None:
            return MISSING
        if stored[1] + self._ttl <= now:
            del m[key]
            if not m:
                del t[user_key]
            return stored[0] if self._return_expired else MISSING
        if self._on_read:
            m[key] = (stored[0], now)
        return stored[0]

    def _read_all(self, refresh: bool) -> list[tuple[Any, Any]]:
        """Every entry returned per the TTL rules, as ``(key, value)``; the expired ones
        are removed from the state."""
        t, now = self._access()
        user_key = self._backend._current_key
        m = t.get(user_key)
        if m is None:
            return []
        limit = now - self._ttl
        if self._return_expired:
            out = [(k, e[0]) for k, e in m.items()]
        else:
            out = [(k, e[0]) for k, e in m.items() if e[1] > limit]
        expired = [k for k, e in m.items() if e[1] <= limit]
        for k in expired:
            del m[k]
        if refresh and self._on_read:
            for k, e in m.items():
                m[k] = (e[0], now)
        if not m:
            del t[user_key]
        return out

    def get(self, key: Any) -> Any:
        value = self._entry(key)
        return None if value is MISSING else value

    def put(self, key: Any, value: Any) -> None:
        t, now = self._access()
        m = t.get(self._backend._current_key)
        if m is None:
            t[self._backend._current_key] = {key: (value, now)}
        else:
            m[key] = (value, now)

    def put_all(self, entries: Mapping[Any, Any]) -> None:
        if not entries:
            return
        t, now = self._access()
        new = {k: (v, now) for k, v in entries.items()}
        m = t.get(self._backend._current_key)
        if m is None:
            t[self._backend._current_key] = new
        else:
            m.update(new)

    def remove(self, key: Any) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().remove(key)

    def contains(self, key: Any) -> bool:
        return self._entry(key) is not MISSING

    def keys(self) -> list[Any]:
        return [k for k, _ in self._read_all(True)]

    def values(self) -> list[Any]:
        return [v for _, v in self._read_all(True)]

    def items(self) -> list[tuple[Any, Any]]:
        return self._read_all(True)

    def is_empty(self) -> bool:
        return not self._read_all(False)

    def __getitem__(self, key: Any) -> Any:
        value = self._entry(key)
        if value is MISSING:
            raise KeyError(key)
        return value

    def clear(self) -> None:
        if self._cleanup is not None:
            self._cleanup.step()
        super().clear()


#: The TTL view of each state kind.
TTL_VIEWS: dict[str, type] = {
    "value": TtlValueState,
    "list": TtlListState,
    "map": TtlMapState,
    "reducing": TtlReducingState,
    "aggregating": TtlAggregatingState,
}
