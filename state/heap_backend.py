"""The heap keyed state backend: keyed state in dicts, one dict per key group and state.

Mirrors Flink's ``HeapKeyedStateBackend``. One backend serves one subtask of one keyed
operator and owns a contiguous :class:`~streamlet.state.key_groups.KeyGroupRange`. The engine calls
:meth:`HeapKeyedStateBackend.set_current_key` before each record; the state views
(:mod:`streamlet.state.keyed`) then read and write that key's entries. Work that folds one value per
record into a value state (keyed ``reduce``) takes the whole batch in one call instead
(:meth:`HeapKeyedStateBackend.reduce_values`), so no operator needs the tables themselves.

Checkpointing: :meth:`~HeapKeyedStateBackend.snapshot_sync` freezes every state's per-key-group
dicts in O(key groups) (copy-on-write, see :mod:`streamlet.state.table`) and returns a
:class:`~streamlet.state.snapshot.KeyedStateSnapshot` to serialize key group by key group while
processing goes on. Restoring loads key groups; a restore may come before the user's
``open()`` registers its descriptors, so restored data stays undecoded per state name until
the descriptor (with its serializer) is registered.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, NoReturn

from .descriptors import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    ValueStateDescriptor,
)
from .errors import StateError, StateSerializationError
from .key_group_memo import DEFAULT_KEY_MEMO_SIZE, KeyGroupMemo, KeyOutOfRangeError
from .key_groups import KeyGroupRange, assign_to_key_group, check_parallelism
from .keyed import (
    AggregatingState,
    KeyedState,
    ListState,
    MapState,
    ReducingState,
    ValueState,
    make_value_state,
)
from .keyed_batch import KeyedBatch
from .serde import JsonSerializer, check_codec, codec_name, decode_table
from .snapshot import FrozenState, KeyedStateSnapshot, RawTable, read_key_group
from .table import StateTable
from .ttl import (
    TTL_CODEC_PREFIX,
    TTL_VIEWS,
    TtlCleanup,
    TtlSerializer,
    expired_filter,
)
from .ttl_config import StateTtlConfig

__all__ = ["TIMER_STATE_PREFIX", "HeapKeyedStateBackend"]

#: Names of keyed state that streamlet keeps for itself: the timers of
#: :mod:`streamlet.state.timers` (Flink's names, ``_timer_state/event_user-timers``). A user
#: descriptor with such a name is refused, so it can never read, overwrite or collide with them.
TIMER_STATE_PREFIX = "_timer_state/"


_ViewFactory = Callable[[Any, StateTable, Any], KeyedState]


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds: the default TTL time provider."""
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while restored state is decoded.

    Everything a restore creates stays alive (it is the state), yet every object counts
    toward the collector's thresholds: decoding 1M keys ran about 2,000 collections, 15 of
    them over the whole heap, 0.35 s of a 0.6 s restore (and 0.15 s or 0.6 s from run to
    run, as the thresholds fell). The decoding is synchronous, so no other code of the
    loop runs meanwhile; the collector is enabled again after it (if it was before).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class HeapKeyedStateBackend:
    """Keyed state of one operator subtask, kept on the heap.

    :param operator_uid: uid of the operator (named in errors and written into snapshots)
    :param key_group_range: the key groups this subtask owns
    :param max_parallelism: the number of key groups of the operator
    :param key_cache_size: the most entries the key -> key group memo holds
    :param ttl_time_provider: what states with a time-to-live (see :mod:`streamlet.state.ttl`)
        read as the current processing time: a callable returning epoch milliseconds;
        ``None`` means the wall clock. Also settable later as :attr:`ttl_time_provider`.
    :raises TypeError: if an argument has the wrong type
    :raises ValueError: if ``operator_uid`` is empty, ``max_parallelism`` is invalid, or
        the range is not within ``[0, max_parallelism)``
    """

    __slots__ = (
        "_current_key",
        "_generations",
        "_kg_index",
        "_memo",
        "_pending",
        "_size",
        "_start",
        "_tables",
        "_tracking",
        "_ttl_cleanups",
        "_ttl_configs",
        "_ttl_record_cleanups",
        "_views",
        "key_group_range",
        "max_parallelism",
        "operator_uid",
        "restored",
        "ttl_time_provider",
    )

    def __init__(
        self,
        operator_uid: str,
        key_group_range: KeyGroupRange,
        max_parallelism: int,
        *,
        key_cache_size: int = DEFAULT_KEY_MEMO_SIZE,
        ttl_time_provider: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(operator_uid, str) or not operator_uid:
            raise ValueError(f"operator_uid must be a non-empty str, got {operator_uid!r}")
        if not isinstance(key_group_range, KeyGroupRange):
            raise TypeError(f"key_group_range must be a KeyGroupRange, got {key_group_range!r}")
        check_parallelism(1, max_parallelism)
        if len(key_group_range) and not (
            0 <= key_group_range.start and key_group_range.end < max_parallelism
        ):
            raise ValueError(
                f"key_group_range {key_group_range} is not within [0, {max_parallelism})"
            )
        if not isinstance(key_cache_size, int) or key_cache_size < 1:
            raise ValueError(f"key_cache_size must be an int >= 1, got {key_cache_size!r}")
        if ttl_time_provider is not None and not callable(ttl_time_provider):
            raise TypeError(
                f"ttl_time_provider must be a callable returning epoch milliseconds (such as "
                f"a clock's now_ms), got {ttl_time_provider!r}"
            )
        self.operator_uid = operator_uid
        self.key_group_range = key_group_range
        self.max_parallelism = max_parallelism
        #: Whether restore data was loaded (Flink's ``isRestored``).
        self.restored = False
        self._start = key_group_range.start
        self._size = len(key_group_range)
        # The views read these two on every call. _kg_index == _size means "no current
        # key": it selects the trailing None slot of every StateTable.writable.
        self._current_key: Any = None
        self._kg_index = self._size
        # key -> index of its key group in our range: only keys of our range get in, so
        # a hit needs no check, and the per-record loops try hits first.
        self._memo = KeyGroupMemo(max_parallelism, key_cache_size, key_group_range)
        self._views: dict[str, KeyedState] = {}
        self._tables: dict[str, StateTable] = {}
        self._pending: dict[str, dict[int, list[RawTable]]] = {}
        #: Whether every state records the keys accessed, for incremental snapshots.
        self._tracking = False
        #: The keys each snapshot since the last confirmed one took, per state name and key
        #: group index: (checkpoint id, changes), oldest first. An incremental snapshot
        #: writes their union, the changes since the confirmed base (see
        #: :meth:`snapshot_sync`), so an aborted snapshot loses no change.
        self._generations: list[tuple[int, dict[str, list[set[Any]]]]] = []
        #: The processing time (epoch ms) that states with a time-to-live read: the wall
        #: clock unless the engine sets its job's clock (``clock.now_ms``) here; tests set
        #: a manual one. States registered already read the new one from their next access.
        self.ttl_time_provider: Callable[[], int] = ttl_time_provider or wall_clock_ms
        # TTL states: the config each was registered with, their incremental cleanups, and
        # those of them that also clean up once per record (ttl_cleanup_step).
        self._ttl_configs: dict[str, StateTtlConfig] = {}
        self._ttl_cleanups: dict[str, TtlCleanup] = {}
        self._ttl_record_cleanups: list[TtlCleanup] = []

    # --- The current key ---

    def set_current_key(self, key: Any) -> None:
        """Make ``key`` the key that state views read and write.

        :raises TypeError: if ``key`` has no stable hash (see :func:`streamlet.state.stable_hash`)
        :raises StateError: if ``key``'s key group is not in this backend's range (a routing
            bug: the record reached the wrong subtask)
        """
        try:
            index = self._memo.get(key, -1)
        except TypeError:  # unhashable: key_group() raises the error naming it
            index = -1
        if index < 0:
            try:
                index = self._memo.key_group(key)
            except KeyOutOfRangeError:
                self._foreign(key)
        self._kg_index = index
        self._current_key = key

    def _foreign(self, key: Any) -> NoReturn:
        raise StateError(
            f"key {key!r} belongs to key group {assign_to_key_group(key, self.max_parallelism)}"
            f", which is not in the range {self.key_group_range} of operator "
            f"{self.operator_uid!r}"
        )

    def resolve(
        self, batch: list[Any] | KeyedBatch, key_selector: Callable[[Any], Any]
    ) -> tuple[list[Any], list[Any], list[int]]:
        """Return ``(records, keys, indexes)`` of a batch: each record's key and the index
        of its key group in this backend's range, the form :meth:`each_record` and
        :meth:`reduce_values` work in.

        A :class:`KeyedBatch` (from the key_by partitioner) brings both; only its indexes'
        bounds are checked. For a plain list, the key selector runs once per record and the
        key groups come from the memo, the misses computed per batch.

        :raises TypeError: if a key has no stable hash (see :func:`streamlet.state.stable_hash`)
        :raises StateError: if a key's key group is not in this backend's range (a routing
            bug); nothing of the batch is processed then
        """
        if type(batch) is KeyedBatch:
            indexes = batch.indexes
            if indexes and (min(indexes) < 0 or max(indexes) >= self._size):
                bad = next(i for i, index in enumerate(indexes) if not 0 <= index < self._size)
                self._foreign(batch.keys[bad])
            return batch.records, batch.keys, indexes
        records: list[Any] = batch  # type: ignore[assignment]
        return self._locate(records, [key_selector(record) for record in records])

    def _rest(
        self, records: list[Any], first_key: Any, key_selector: Callable[[Any], Any]
    ) -> tuple[list[Any], list[Any], list[int]]:
        """:meth:`resolve` for the records from a memo miss on, whose first key is known."""
        keys = [first_key]
        keys.extend(map(key_selector, islice(records, 1, None)))
        return self._locate(records, keys)

    def _locate(
        self, records: list[Any], keys: list[Any]
    ) -> tuple[list[Any], list[Any], list[int]]:
        try:
            return records, keys, self._memo.key_groups(keys)
        except KeyOutOfRangeError as exc:
            self._foreign(exc.key)

    def each_record(
        self, batch: list[Any] | KeyedBatch, key_selector: Callable[[Any], Any]
    ) -> Iterator[Any]:
        """Yield the records of ``batch`` in order, each with its key current.

        The loop of a keyed operator that calls user code per record: the key is set before
        the record is yielded and stays current until the next one is, so state views read
        and write that record's key (also across an ``await`` in the loop's body).

        :raises TypeError, StateError: as :meth:`resolve`, before the record whose key is
            refused is yielded
        """
        if type(batch) is list and not self._memo.bypassed:
            # Memo hits first, record by record; from the first miss on, the rest of the
            # batch is resolved at once (its misses hashed together).
            memo = self._memo
            get = memo.get
            for done, record in enumerate(batch):
                key = key_selector(record)
                try:
                    index = get(key, -1)
                except TypeError:  # unhashable: resolve() raises the error naming it
                    index = -1
                if index < 0:
                    memo.note_hits(done)
                    records, keys, indexes = self._rest(batch[done:], key, key_selector)
                    break
                self._kg_index = index
                self._current_key = key
                yield record
            else:
                memo.note_hits(len(batch))
                return
        else:
            records, keys, indexes = self.resolve(batch, key_selector)
        for record, key, index in zip(records, keys, indexes, strict=True):
            self._kg_index = index
            self._current_key = key
            yield record

    def clear_current_key(self) -> None:
        """Leave no key current: state views raise :class:`StateError` until a key is set
        again (a broadcast element has no key, and must not see the last record's)."""
        self._kg_index = self._size
        self._current_key = None

    def get_current_key(self) -> Any:
        """Return the current key (``None`` before the first :meth:`set_current_key`)."""
        return self._current_key

    @property
    def current_key_group(self) -> int | None:
        """The key group of the current key (``None`` before the first key is set)."""
        index = self._kg_index
        return None if index >= self._size else self._start + index

    # --- Registering state ---

    def get_state(self, descriptor: ValueStateDescriptor) -> ValueState:
        """Return the :class:`ValueState` for ``descriptor`` (the same one on every call).

        :raises TypeError: if ``descriptor`` is not a :class:`ValueStateDescriptor`
        :raises StateError: if the name is registered with another kind of descriptor, or
            restored data of this name is of another kind
        :raises StateSerializationError: if restored data of this name cannot be decoded
        """
        return self._register(descriptor, ValueStateDescriptor, make_value_state, "get_state")  # type: ignore[return-value]

    def reduce_values(
        self,
        descriptor: ValueStateDescriptor,
        values: list[Any] | KeyedBatch,
        key_of: Callable[[Any], Any],
        reduce: Callable[[Any, Any], Any],
    ) -> list[Any]:
        """Fold each of ``values`` into its key's value in state ``descriptor``, in order.

        The per-batch form of, for every ``value``::

            set_current_key(key_of(value))
            old = state.value()
            state.update(value if old is None else reduce(old, value))

        without a method call per record: the rolling reduce of Flink's
        ``KeyedStream.reduce``. Pending snapshots keep the old values (copy-on-write, as for
        every access), and the current key is not changed. A ``None`` result is stored as it
        is (testing for it would cost keyed reduce a step per record) and reads as no value,
        so the key's next value starts afresh.

        :param descriptor: the value state to fold into, registered as by :meth:`get_state`;
            it has no default value (a fold starts from its first value)
        :param values: the records, in order (a list, or a :class:`KeyedBatch` that brings
            their keys and key groups)
        :param key_of: the key of a record (the key selector of the stream)
        :param reduce: ``reduce(old, value) -> new``
        :return: the key's value after each record, one per record
        :raises ValueError: if ``descriptor`` has a default value or a time-to-live
        :raises TypeError: if a key has no stable hash (see :func:`streamlet.state.stable_hash`)
        :raises StateError: if a key's key group is not in this backend's range (a routing
            bug). Values before the failing one may stay folded, as they do when ``reduce``
            raises (a failed batch fails its job, which restores from a checkpoint).
        """
        if descriptor.default_value is not None:
            raise ValueError(
                f"reduce_values() needs a ValueStateDescriptor without a default value, got "
                f"{descriptor!r}; a fold starts from the first value of each key"
            )
        if descriptor.ttl_config is not None:
            raise ValueError(
                f"reduce_values() needs a ValueStateDescriptor without a time-to-live, got "
                f"{descriptor!r} with {descriptor.ttl_config!r}; use the state's view "
                f"(get_state) to fold into a state with TTL"
            )
        self.get_state(descriptor)
        table = self._tables[descriptor.name]
        if table.changed is not None:
            return self._reduce_values_tracked(table, values, key_of, reduce)
        # The loops are written out flat: this is keyed reduce's whole per-record cost.
        writable = table.writable
        touch = table.touch
        out: list[Any] = []
        append = out.append
        if type(values) is list and not self._memo.bypassed:
            # Memo hits first, as in each_record; from the first miss on, the rest of the
            # batch is resolved at once. out has one value per record folded so far.
            memo = self._memo
            get = memo.get
            for value in values:
                key = key_of(value)
                try:
                    index = get(key, -1)
                except TypeError:  # unhashable: resolve() raises the error naming it
                    index = -1
                if index < 0:
                    memo.note_hits(len(out))
                    records, keys, indexes = self._rest(values[len(out) :], key, key_of)
                    break
                t = writable[index]
                if t is None:
                    t = touch(index, key)
                acc = t.get(key)
                acc = value if acc is None else reduce(acc, value)
                t[key] = acc
                append(acc)
            else:
                memo.note_hits(len(out))
                return out
        else:
            records, keys, indexes = self.resolve(values, key_of)
        for value, key, index in zip(records, keys, indexes, strict=True):
            t = writable[index]
            if t is None:
                t = touch(index, key)
            acc = t.get(key)
            acc = value if acc is None else reduce(acc, value)
            t[key] = acc
            append(acc)
        return out

    def _reduce_values_tracked(
        self,
        table: StateTable,
        values: list[Any] | KeyedBatch,
        key_of: Callable[[Any], Any],
        reduce: Callable[[Any, Any], Any],
    ) -> list[Any]:
        """:meth:`reduce_values` with change tracking on: the keys are recorded here, in
        the loop, rather than by a call of ``touch`` per record (which a pending snapshot's
        key groups still take, for their copy-on-write)."""
        changed = table.changed
        assert changed is not None
        captured = table.captured
        tables = table.tables
        touch = table.touch
        out: list[Any] = []
        append = out.append
        if type(values) is list and not self._memo.bypassed:
            memo = self._memo
            get = memo.get
            for value in values:
                key = key_of(value)
                try:
                    index = get(key, -1)
                except TypeError:  # unhashable: resolve() raises the error naming it
                    index = -1
                if index < 0:
                    memo.note_hits(len(out))
                    records, keys, indexes = self._rest(values[len(out) :], key, key_of)
                    break
                if captured[index]:
                    t = touch(index, key)
                else:
                    changed[index].add(key)
                    t = tables[index]
                acc = t.get(key)
                acc = value if acc is None else reduce(acc, value)
                t[key] = acc
                append(acc)
            else:
                memo.note_hits(len(out))
                return out
        else:
            records, keys, indexes = self.resolve(values, key_of)
        for value, key, index in zip(records, keys, indexes, strict=True):
            if captured[index]:
                t = touch(index, key)
            else:
                changed[index].add(key)
                t = tables[index]
            acc = t.get(key)
            acc = value if acc is None else reduce(acc, value)
            t[key] = acc
            append(acc)
        return out

    def get_list_state(self, descriptor: ListStateDescriptor) -> ListState:
        """Return the :class:`ListState` for ``descriptor``; raises as :meth:`get_state`."""
        return self._register(descriptor, ListStateDescriptor, ListState, "get_list_state")  # type: ignore[return-value]

    def get_map_state(self, descriptor: MapStateDescriptor) -> MapState:
        """Return the :class:`MapState` for ``descriptor``; raises as :meth:`get_state`."""
        return self._register(descriptor, MapStateDescriptor, MapState, "get_map_state")  # type: ignore[return-value]

    def get_reducing_state(self, descriptor: ReducingStateDescriptor) -> ReducingState:
        """Return the :class:`ReducingState` for ``descriptor``; raises as :meth:`get_state`."""
        return self._register(  # type: ignore[return-value]
            descriptor, ReducingStateDescriptor, ReducingState, "get_reducing_state"
        )

    def get_aggregating_state(self, descriptor: AggregatingStateDescriptor) -> AggregatingState:
        """Return the :class:`AggregatingState` for ``descriptor``; raises as :meth:`get_state`."""
        return self._register(  # type: ignore[return-value]
            descriptor, AggregatingStateDescriptor, AggregatingState, "get_aggregating_state"
        )

    def _internal_value_table(self, descriptor: ValueStateDescriptor) -> StateTable:
        """Register value state ``descriptor`` for streamlet itself; return its table.

        The way in for state under the reserved :data:`TIMER_STATE_PREFIX`, which
        :meth:`get_state` refuses. It is otherwise a value state like any other:
        snapshots, restore (restored data waits undecoded until this call, as for user
        states), rescaling and copy-on-write treat it alike.

        :raises StateError: as :meth:`get_state`
        :raises StateSerializationError: if restored data of this name cannot be decoded
        """
        self._register(
            descriptor, ValueStateDescriptor, make_value_state, "get_state", internal=True
        )
        return self._tables[descriptor.name]

    def _register(
        self,
        descriptor: Any,
        expected: type[StateDescriptor],
        factory: _ViewFactory,
        method: str,
        *,
        internal: bool = False,
    ) -> KeyedState:
        if not isinstance(descriptor, expected):
            raise TypeError(f"{method}() needs a {expected.__name__}, got {descriptor!r}")
        name = descriptor.name
        if not internal and name.startswith(TIMER_STATE_PREFIX):
            raise StateError(
                f"state name {name!r} of operator {self.operator_uid!r} is reserved: names "
                f"starting with {TIMER_STATE_PREFIX!r} hold streamlet's timers; pick another name"
            )
        ttl = descriptor.ttl_config
        view = self._views.get(name)
        if view is not None:
            if view.descriptor.kind != descriptor.kind:
                raise StateError(
                    f"state {name!r} of operator {self.operator_uid!r} is registered as "
                    f"{view.descriptor.kind} state; it cannot also be {descriptor.kind} state"
                )
            if self._ttl_configs.get(name) != ttl:
                raise StateError(
                    f"state {name!r} of operator {self.operator_uid!r} is registered with "
                    f"time-to-live {self._ttl_configs.get(name)!r}; it cannot be registered "
                    f"again with {ttl!r}: call enable_time_to_live() before the first "
                    f"registration, with the same config every time"
                )
            return view
        table = StateTable(name, self._size)
        # Decode everything first: on failure the raw data stays pending, nothing is lost.
        raws = self._pending.get(name, {})
        with _collector_paused():
            decoded = {
                index: self._decode_all(descriptor, index, chain) for index, chain in raws.items()
            }
        for index, data in decoded.items():
            table.load(index, data)
        self._pending.pop(name, None)
        if self._tracking:
            table.track_changes()
        if ttl is None:
            view = factory(self, table, descriptor)
        else:
            view = self._ttl_view(table, descriptor, ttl)
        self._views[name] = view
        self._tables[name] = table
        return view

    def _ttl_view(
        self, table: StateTable, descriptor: StateDescriptor, ttl: StateTtlConfig
    ) -> KeyedState:
        """The view of a state with a time-to-live, and its incremental cleanup."""
        strategy = ttl.get_cleanup_strategies().get_incremental_cleanup_strategy()
        cleanup = None
        if strategy is not None:
            cleanup = TtlCleanup(
                table, descriptor.kind, ttl.ttl_ms, strategy.get_cleanup_size(), self._ttl_now
            )
            self._ttl_cleanups[descriptor.name] = cleanup
            if strategy.run_cleanup_for_every_record():
                self._ttl_record_cleanups.append(cleanup)
        self._ttl_configs[descriptor.name] = ttl
        view: KeyedState = TTL_VIEWS[descriptor.kind](self, table, descriptor, cleanup)
        return view

    def _ttl_now(self) -> int:
        return self.ttl_time_provider()

    def _codec_serializer(self, descriptor: StateDescriptor) -> Any:
        """What encodes and decodes ``descriptor``'s tables: its serializer, or for a state
        with TTL and a serializer of its own, that one wrapped to carry the timestamps."""
        serializer = descriptor.serializer  # type: ignore[attr-defined]
        if (
            descriptor.ttl_config is None
            or serializer is None
            or type(serializer) is JsonSerializer
        ):
            return serializer
        return TtlSerializer(serializer, descriptor.kind)

    def _decode_all(
        self, descriptor: StateDescriptor, index: int, chain: list[RawTable]
    ) -> dict[Any, Any]:
        """Decode a base and the changes after it into one table."""
        table: dict[Any, Any] = {}
        for raw in chain:
            if raw.op == "full":
                table = self._decode(descriptor, index, raw)
            elif raw.op == "put":
                table.update(self._decode(descriptor, index, raw))
            else:
                for key in self._decode(descriptor, index, raw):
                    table.pop(key, None)
        return table

    def _decode(self, descriptor: StateDescriptor, index: int, raw: RawTable) -> dict[Any, Any]:
        name = descriptor.name
        if raw.kind != descriptor.kind:
            raise StateError(
                f"state {name!r} of operator {self.operator_uid!r} was restored as {raw.kind} "
                f"state but is registered with a {type(descriptor).__name__}"
            )
        serializer = descriptor.serializer  # type: ignore[attr-defined]
        ttl = descriptor.ttl_config is not None
        if raw.codec.startswith(TTL_CODEC_PREFIX) != ttl:
            had, has = ("with", "without") if not ttl else ("without", "with")
            raise StateError(
                f"state {name!r} of operator {self.operator_uid!r} was checkpointed {had} a "
                f"time-to-live but is registered {has} one; as in Flink, TTL cannot be switched "
                f"on or off for restored state: register it as it was checkpointed "
                f"({'call' if not ttl else 'do not call'} enable_time_to_live()), or give the "
                f"state a new name (its old data is then dropped)"
            )
        codec = raw.codec.removeprefix(TTL_CODEC_PREFIX) if ttl else raw.codec
        check_codec(self.operator_uid, name, codec, serializer)
        # The keys of a "remove" entry have placeholder values, written without serializer.
        serializer = None if raw.op == "remove" else self._codec_serializer(descriptor)
        try:
            return decode_table(
                raw.mode,
                raw.payload,
                serializer,
                element_wise=raw.kind == "list" and raw.op != "remove",
            )
        except Exception as exc:  # a custom serializer may raise anything
            raise StateSerializationError(
                self.operator_uid,
                name,
                f"key group {self._start + index}: {type(exc).__name__}: {exc}",
                restoring=True,
            ) from exc

    # --- Snapshot and restore ---

    def enable_change_tracking(self) -> None:
        """Record, from now on, the keys accessed in every state, so that
        :meth:`snapshot_sync` can take incremental snapshots (``incremental=True``).

        Every state access then takes the copy-on-write path (a set insert more per
        access). The engine calls it when incremental checkpointing is enabled.
        """
        self._tracking = True
        for table in self._tables.values():
            table.track_changes()

    @property
    def tracks_changes(self) -> bool:
        """Whether :meth:`enable_change_tracking` was called."""
        return self._tracking

    def snapshot_sync(
        self, checkpoint_id: int = 0, *, incremental: bool = False
    ) -> KeyedStateSnapshot:
        """Freeze the current state and return it; O(states x key groups), not O(keys).

        Nothing is copied: while the snapshot is pending, the first access to each key of a
        captured key group records its old value for the snapshot (per-entry copy-on-write),
        so later changes never reach the snapshot and no access copies a whole key group.

        With change tracking on, the keys accessed since the previous snapshot are kept
        under ``checkpoint_id`` until :meth:`notify_checkpoint_complete` confirms it or a
        later one. An incremental snapshot holds only the keys accessed since the last
        confirmed snapshot (the base it extends), as "put" and "remove" entries.

        :param checkpoint_id: the checkpoint this snapshot is for (needed with tracking)
        :param incremental: write only the changes since the last confirmed snapshot
        :raises StateError: if ``incremental`` is asked without change tracking
        """
        if incremental and not self._tracking:
            raise StateError(
                f"operator {self.operator_uid!r}: an incremental snapshot needs change "
                f"tracking; call enable_change_tracking() before the state is used"
            )
        if self._tracking:
            taken: dict[str, list[set[Any]]] = {}
            for name, table in self._tables.items():
                changes = table.take_changes()
                if changes is not None:
                    taken[name] = changes
            self._generations.append((checkpoint_id, taken))
        if incremental:
            states = [
                self._frozen(name, view.descriptor, self._changes_of(name))
                for name, view in self._views.items()
            ]
            return KeyedStateSnapshot(
                self.operator_uid,
                self.key_group_range,
                self.max_parallelism,
                states,
                {},
                incremental=True,
            )
        states = [self._frozen(name, view.descriptor) for name, view in self._views.items()]
        pending = {
            name: {index: list(chain) for index, chain in raws.items()}
            for name, raws in self._pending.items()
        }
        return KeyedStateSnapshot(
            self.operator_uid, self.key_group_range, self.max_parallelism, states, pending
        )

    def _changes_of(self, name: str) -> list[set[Any]]:
        """The keys of state ``name`` accessed since the last confirmed snapshot."""
        parts = [taken[name] for _, taken in self._generations if name in taken]
        if len(parts) == 1:
            return parts[0]
        merged: list[set[Any]] = [set() for _ in range(self._size)]
        for part in parts:
            for index, keys in enumerate(part):
                if keys:
                    merged[index] |= keys
        return merged

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Snapshot ``checkpoint_id`` is durable and the base of the next incremental one:
        forget the changes taken up to it (Flink's ``CheckpointListener``)."""
        self._generations = [g for g in self._generations if g[0] > checkpoint_id]

    def _frozen(
        self, name: str, descriptor: StateDescriptor, changed_keys: list[set[Any]] | None = None
    ) -> FrozenState:
        table = self._tables[name]
        changed = None
        if changed_keys is None:
            shadows = table.freeze()
        else:
            # O(changed keys): their values are copied now, so nothing is captured and no
            # access pays copy-on-write while the changes are written.
            shadows = [None] * self._size
            changed = table.copy_entries(changed_keys)
        ttl = descriptor.ttl_config
        if ttl is None:
            return FrozenState(
                name,
                descriptor.kind,
                descriptor.serializer,  # type: ignore[attr-defined]
                table,
                shadows,
                changed=changed,
            )
        keep = None
        if changed is None and ttl.get_cleanup_strategies().in_full_snapshot():
            # Expired as of the cut: the time is read once, here.
            keep = expired_filter(descriptor.kind, ttl.ttl_ms, self.ttl_time_provider())
        return FrozenState(
            name,
            descriptor.kind,
            self._codec_serializer(descriptor),
            table,
            shadows,
            codec=TTL_CODEC_PREFIX + codec_name(descriptor.serializer),  # type: ignore[attr-defined]
            keep_unexpired=keep,
            changed=changed,
        )

    def ttl_cleanup_step(self, records: int = 1) -> None:
        """Run the per-record incremental cleanup of the TTL states that asked for it
        (``cleanup_incrementally(size, run_cleanup_for_every_record=True)``), for
        ``records`` records at once: each such state checks ``size`` entries per record (at
        most all of its entries once). Does nothing when no state asked for it.

        The engine calls it once per batch a keyed operator processes, with the batch's
        length (Flink runs it on every key selection).
        """
        for cleanup in self._ttl_record_cleanups:
            cleanup.step_for_records(records)

    def restore_key_group(self, key_group: int, data: bytes) -> None:
        """Load every state of ``key_group`` from ``data`` (as written by a snapshot).

        A full entry replaces what the backend held for that state and key group; the
        changes of an incremental snapshot apply on top of it (restore a base, then each
        later change, in order). States not registered yet keep the data undecoded until
        they are.

        :raises StateError: if ``key_group`` is not in this backend's range, or ``data`` is
            malformed or for another key group or max parallelism
        :raises StateSerializationError: if data of a registered state cannot be decoded
        """
        if key_group not in self.key_group_range:
            raise StateError(
                f"cannot restore key group {key_group!r}: operator {self.operator_uid!r} "
                f"owns key groups {self.key_group_range}"
            )
        try:
            entries = read_key_group(data, key_group, self.max_parallelism)
        except (TypeError, ValueError) as exc:
            raise StateError(
                f"cannot restore key group {key_group} of operator {self.operator_uid!r}: {exc}"
            ) from exc
        index = key_group - self._start
        for name, raw in entries:
            view = self._views.get(name)
            if view is None:
                chains = self._pending.setdefault(name, {})
                if raw.op == "full":
                    chains[index] = [raw]
                else:
                    chains.setdefault(index, []).append(raw)
                continue
            table = self._tables[name]
            decoded = self._decode(view.descriptor, index, raw)
            if raw.op == "full":
                table.load(index, decoded)
            elif raw.op == "put":
                table.apply_changes(index, decoded, None)
            else:
                table.apply_changes(index, None, decoded)
        self.restored = True

    def restore(self, chunks: Mapping[int, bytes]) -> None:
        """Restore the key groups of ``chunks`` this backend owns; ignore the others.

        Passing the chunks of every old subtask restores at any new parallelism.

        :raises StateError: as :meth:`restore_key_group`
        """
        with _collector_paused():
            for key_group, data in chunks.items():
                if key_group in self.key_group_range:
                    self.restore_key_group(key_group, data)
        self.restored = True

    def restore_changes(self, changes: Mapping[int, Sequence[bytes]]) -> None:
        """Apply, after :meth:`restore` of their bases, the changes of incremental snapshots
        of the key groups this backend owns, oldest first per key group; ignore the others.

        :raises StateError: as :meth:`restore_key_group`
        """
        with _collector_paused():
            for key_group, blobs in changes.items():
                if key_group in self.key_group_range:
                    for data in blobs:
                        self.restore_key_group(key_group, data)
        self.restored = True

    def has_state_named(self, name: str) -> bool:
        """Return whether state ``name`` is registered or waits restored, undecoded."""
        return name in self._views or name in self._pending

    def has_state(self) -> bool:
        """Return whether a snapshot would hold anything (registered or restored states)."""
        return bool(self._views or self._pending)

    def is_restored(self) -> bool:
        """Return whether restore data was loaded into this backend."""
        return self.restored

    def keys(self, state_name: str) -> list[Any]:
        """Return the keys that have a value in state ``state_name``, by key group.

        :raises StateError: if no state of that name is registered
        """
        table = self._tables.get(state_name)
        if table is None:
            raise StateError(
                f"operator {self.operator_uid!r} has no registered state {state_name!r}"
            )
        return [key for t in table.tables for key in t]

    def state_size(self) -> int:
        """Return the number of (state, key) entries held, not counting undecoded data."""
        return sum(table.size() for table in self._tables.values())
