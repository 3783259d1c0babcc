"""Keyed state time-to-live (Flink's ``StateTtlConfig``): expiry, visibility, refresh on read,
cleanup (on read, incremental, in full snapshots), snapshot/restore of the timestamps.

Time is a manual clock given to the backend as its ``ttl_time_provider``; nothing sleeps.
"""

from __future__ import annotations

import pickle
import time
from datetime import timedelta
from typing import Any

import anyio
import pytest

from streamlet.operators.time import Duration, Time
from streamlet.state import (
    AggregateFunction,
    AggregatingState,
    AggregatingStateDescriptor,
    HeapKeyedStateBackend,
    KeyGroupRange,
    ListState,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    OperatorStateBackend,
    PickleSerializer,
    ReducingState,
    ReducingStateDescriptor,
    StateDescriptor,
    StateError,
    StateTtlConfig,
    ValueState,
    ValueStateDescriptor,
    assign_to_key_group,
    key_group_range_for_subtask,
)
from streamlet.state.snapshot import KEYED_MAGIC, unpack_frames
from streamlet.state.ttl import (
    TtlAggregatingState,
    TtlListState,
    TtlMapState,
    TtlReducingState,
    TtlValueState,
)

MAXP = 128
TTL = 100
UpdateType = StateTtlConfig.UpdateType
Visibility = StateTtlConfig.StateVisibility


class Clock:
    """A manual processing-time provider (epoch ms)."""

    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Sum(AggregateFunction):
    def create_accumulator(self) -> list[int]:
        return [0]

    def add(self, value: int, accumulator: list[int]) -> list[int]:
        accumulator[0] += value
        return accumulator

    def get_result(self, accumulator: list[int]) -> int:
        return accumulator[0]


class Recording:
    """A custom serializer that refuses to see the TTL timestamps."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def dumps(self, value: Any) -> bytes:
        self.seen.append(value)
        assert not isinstance(value, tuple), f"the serializer got a TTL pair: {value!r}"
        if isinstance(value, dict):
            assert not any(isinstance(v, tuple) for v in value.values()), value
        return pickle.dumps(value)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


def make_backend(
    clock: Clock, subtask: int = 0, parallelism: int = 1, uid: str = "op"
) -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(
        uid,
        key_group_range_for_subtask(subtask, parallelism, MAXP),
        MAXP,
        ttl_time_provider=clock,
    )


def config(
    update: Any = UpdateType.OnCreateAndWrite,
    visibility: Any = Visibility.NeverReturnExpired,
    *,
    ttl: Any = TTL,
    background: bool = False,
    full_snapshot: bool = False,
    incremental: tuple[int, bool] | None = None,
) -> StateTtlConfig:
    """A TTL config; background cleanup is off unless asked, so that only the accesses a
    test makes remove entries."""
    builder = (
        StateTtlConfig.new_builder(ttl).set_update_type(update).set_state_visibility(visibility)
    )
    if not background:
        builder.disable_cleanup_in_background()
    if full_snapshot:
        builder.cleanup_full_snapshot()
    if incremental is not None:
        builder.cleanup_incrementally(*incremental)
    return builder.build()


def with_ttl(descriptor: StateDescriptor, ttl_config: StateTtlConfig) -> Any:
    descriptor.enable_time_to_live(ttl_config)
    return descriptor


def snapshot_bytes(backend: HeapKeyedStateBackend) -> dict[int, bytes]:
    return anyio.run(backend.snapshot_sync().serialize_all)


def stored(backend: HeapKeyedStateBackend, name: str, key: Any) -> Any:
    """What the backend's table holds for ``key`` (``None``: nothing)."""
    table = backend._tables[name]
    index = assign_to_key_group(key, MAXP) - backend.key_group_range.start
    return table.tables[index].get(key)


# --- Value-like states (value, reducing, aggregating): one entry per key ---


class ValueLike:
    """Write and read one value-like state through its own API."""

    def __init__(self, kind: str, backend: HeapKeyedStateBackend, cfg: StateTtlConfig) -> None:
        self.kind = kind
        self.name = kind
        if kind == "value":
            self.state: Any = backend.get_state(with_ttl(ValueStateDescriptor(kind), cfg))
        elif kind == "reducing":
            d = with_ttl(ReducingStateDescriptor(kind, lambda a, b: a + b), cfg)
            self.state = backend.get_reducing_state(d)
        else:
            d = with_ttl(AggregatingStateDescriptor(kind, Sum()), cfg)
            self.state = backend.get_aggregating_state(d)

    def write(self, value: int) -> None:
        if self.kind == "value":
            self.state.update(value)
        else:
            self.state.add(value)

    def read(self) -> Any:
        return self.state.value() if self.kind == "value" else self.state.get()


VALUE_KINDS = ["value", "reducing", "aggregating"]


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("visibility", list(Visibility))
def test_value_like_expires_at_last_write_plus_ttl(kind: str, visibility: Any) -> None:
    clock = Clock(1_000)
    backend = make_backend(clock)
    s = ValueLike(kind, backend, config(visibility=visibility))
    backend.set_current_key("k")
    s.write(7)
    clock.now = 1_000 + TTL - 1
    assert s.read() == 7  # not yet: expired means last_access + ttl <= now
    clock.now = 1_000 + TTL
    if visibility is Visibility.NeverReturnExpired:
        assert s.read() is None
    else:
        assert s.read() == 7  # still there, so returned; the read removes it
        assert s.read() is None
    assert stored(backend, kind, "k") is None


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_value_like_read_refreshes_only_on_read_and_write(kind: str) -> None:
    for update in (UpdateType.OnCreateAndWrite, UpdateType.OnReadAndWrite):
        clock = Clock(0)
        backend = make_backend(clock)
        s = ValueLike(kind, backend, config(update))
        backend.set_current_key("k")
        s.write(1)
        clock.now = 60
        assert s.read() == 1
        clock.now = 120  # 0 + 100 <= 120, but 60 + 100 > 120
        expected = 1 if update is UpdateType.OnReadAndWrite else None
        assert s.read() == expected, update


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_value_like_write_refreshes(kind: str) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    s = ValueLike(kind, backend, config())
    backend.set_current_key("k")
    s.write(1)
    clock.now = 90
    s.write(1)
    clock.now = 150
    assert s.read() is not None
    assert stored(backend, kind, "k")[1] == 90


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_expired_read_removes_only_that_key(kind: str) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    s = ValueLike(kind, backend, config())
    for key in ("a", "b"):
        backend.set_current_key(key)
        s.write(1)
    clock.now = 200
    backend.set_current_key("a")
    assert stored(backend, kind, "a") is not None  # expired but not cleaned up yet
    assert s.read() is None
    assert stored(backend, kind, "a") is None
    assert stored(backend, kind, "b") is not None  # never read: still there


def test_value_state_expired_reads_default() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", default_value=[]), config()))
    backend.set_current_key("k")
    state.update([1])
    clock.now = TTL
    first = state.value()
    assert first == []
    first.append(5)
    assert state.value() == []  # a mutable default is copied per miss


def test_value_state_update_none_clears() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_state(with_ttl(ValueStateDescriptor("v"), config()))
    backend.set_current_key("k")
    state.update(3)
    state.update(None)
    assert stored(backend, "v", "k") is None
    state.update(4)
    state.clear()
    assert state.value() is None


@pytest.mark.parametrize("visibility", list(Visibility))
def test_reducing_state_folds_expired_value_only_if_returned(visibility: Any) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    d = with_ttl(ReducingStateDescriptor("r", lambda a, b: a + b), config(visibility=visibility))
    state = backend.get_reducing_state(d)
    backend.set_current_key("k")
    state.add(5)
    clock.now = TTL
    state.add(1)  # as Flink's TtlReduceFunction: an expired value is dropped unless returned
    assert state.get() == (1 if visibility is Visibility.NeverReturnExpired else 6)
    assert stored(backend, "r", "k")[1] == TTL


@pytest.mark.parametrize("visibility", list(Visibility))
def test_aggregating_state_expired_accumulator_starts_afresh(visibility: Any) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    d = with_ttl(AggregatingStateDescriptor("a", Sum()), config(visibility=visibility))
    state = backend.get_aggregating_state(d)
    backend.set_current_key("k")
    state.add(5)
    clock.now = TTL
    state.add(1)
    assert state.get() == (1 if visibility is Visibility.NeverReturnExpired else 6)


# --- List state: each element expires on its own ---


@pytest.mark.parametrize("visibility", list(Visibility))
def test_list_state_elements_expire_one_by_one(visibility: Any) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_list_state(
        with_ttl(ListStateDescriptor("l"), config(visibility=visibility))
    )
    backend.set_current_key("k")
    state.add("a")
    clock.now = 50
    state.add_all(["b", "c"])
    clock.now = 100  # "a" expired, "b" and "c" not
    if visibility is Visibility.NeverReturnExpired:
        assert state.get() == ["b", "c"]
    else:
        assert state.get() == ["a", "b", "c"]
        assert state.get() == ["b", "c"]  # the read removed "a"
    assert stored(backend, "l", "k") == [("b", 50), ("c", 50)]
    clock.now = 150
    if visibility is Visibility.ReturnExpiredIfNotCleanedUp:
        assert state.get() == ["b", "c"]
    assert state.get() == []
    assert stored(backend, "l", "k") is None  # no empty list left behind


def test_list_state_read_refreshes_on_read_and_write() -> None:
    for update in (UpdateType.OnCreateAndWrite, UpdateType.OnReadAndWrite):
        clock = Clock(0)
        backend = make_backend(clock)
        state = backend.get_list_state(with_ttl(ListStateDescriptor("l"), config(update)))
        backend.set_current_key("k")
        state.add(1)
        clock.now = 30
        state.add(2)
        clock.now = 60
        assert state.get() == [1, 2]
        clock.now = 120
        expected = [1, 2] if update is UpdateType.OnReadAndWrite else [2]
        assert state.get() == expected, update


def test_list_state_update_restamps_everything() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_list_state(with_ttl(ListStateDescriptor("l"), config()))
    backend.set_current_key("k")
    state.add(1)
    clock.now = 80
    state.update([1, 2])
    clock.now = 150
    assert state.get() == [1, 2]
    state.update([])
    assert stored(backend, "l", "k") is None
    with pytest.raises(ValueError, match="cannot hold None"):
        state.add(None)
    with pytest.raises(ValueError, match="cannot hold None"):
        state.update([1, None])


# --- Map state: each entry expires on its own ---


def map_state(
    clock: Clock, cfg: StateTtlConfig, **kwargs: Any
) -> tuple[HeapKeyedStateBackend, MapState]:
    backend = make_backend(clock)
    state = backend.get_map_state(with_ttl(MapStateDescriptor("m", **kwargs), cfg))
    backend.set_current_key("k")
    state.put("old", 1)
    clock.now += 50
    state.put_all({"new": 2})
    clock.now += 50  # "old" expired now, "new" not
    return backend, state


def test_map_state_never_return_expired_every_read() -> None:
    reads: dict[str, Any] = {
        "get": lambda s: s.get("old") is None and s.get("new") == 2,
        "contains": lambda s: not s.contains("old") and "new" in s,
        "keys": lambda s: s.keys() == ["new"] and list(s) == ["new"],
        "values": lambda s: s.values() == [2],
        "items": lambda s: s.items() == [("new", 2)],
        "is_empty": lambda s: s.is_empty() is False,
    }
    for name, check in reads.items():
        clock = Clock(0)
        backend, state = map_state(clock, config())
        assert check(state), name
        assert "old" not in stored(backend, "m", "k"), f"{name}() did not remove the expired entry"
        with pytest.raises(KeyError):
            state["old"]
        assert state["new"] == 2


def test_map_state_return_expired_if_not_cleaned_up() -> None:
    clock = Clock(0)
    _, state = map_state(clock, config(visibility=Visibility.ReturnExpiredIfNotCleanedUp))
    assert state.items() == [("old", 1), ("new", 2)]
    assert state.items() == [("new", 2)]
    clock.now = 0
    _, state = map_state(clock, config(visibility=Visibility.ReturnExpiredIfNotCleanedUp))
    assert state.get("old") == 1
    assert state.get("old") is None


def test_map_state_all_expired_is_empty_and_leaves_no_dict() -> None:
    clock = Clock(0)
    backend, state = map_state(clock, config())
    clock.now += 50
    assert state.is_empty()
    assert stored(backend, "m", "k") is None
    assert state.keys() == [] and state.values() == [] and state.items() == []


def test_map_state_reads_refresh_on_read_and_write() -> None:
    clock = Clock(0)
    backend, state = map_state(clock, config(UpdateType.OnReadAndWrite))
    assert stored(backend, "m", "k") == {"old": (1, 0), "new": (2, 50)}
    assert state.contains("new")  # contains reads the entry: refreshed at 100
    assert stored(backend, "m", "k") == {"old": (1, 0), "new": (2, 100)}
    clock.now = 190
    assert state.get("new") == 2
    clock.now = 0
    backend, state = map_state(clock, config(UpdateType.OnCreateAndWrite))
    state.contains("new")
    clock.now = 190
    assert state.get("new") is None


def test_map_state_is_empty_does_not_refresh() -> None:
    clock = Clock(0)
    backend, state = map_state(clock, config(UpdateType.OnReadAndWrite))
    assert not state.is_empty()
    assert stored(backend, "m", "k") == {"new": (2, 50)}
    state.values()
    assert stored(backend, "m", "k") == {"new": (2, 100)}


def test_map_state_put_none_value_and_remove() -> None:
    clock = Clock(0)
    backend, state = map_state(clock, config())
    state.put("none", None)
    assert state.contains("none") and state.get("none") is None
    assert state["none"] is None
    del state["none"]
    state.remove("new")
    assert stored(backend, "m", "k") == {"old": (1, 0)}  # removed only by a read of it
    state.clear()
    assert stored(backend, "m", "k") is None


# --- The views are chosen at registration; states without TTL are untouched ---


def test_states_without_ttl_keep_their_views() -> None:
    backend = make_backend(Clock())
    assert type(backend.get_state(ValueStateDescriptor("v"))) is ValueState
    assert type(backend.get_list_state(ListStateDescriptor("l"))) is ListState
    assert type(backend.get_map_state(MapStateDescriptor("m"))) is MapState
    r = backend.get_reducing_state(ReducingStateDescriptor("r", max))
    assert type(r) is ReducingState
    a = backend.get_aggregating_state(AggregatingStateDescriptor("a", Sum()))
    assert type(a) is AggregatingState
    backend.set_current_key("k")
    backend.get_state(ValueStateDescriptor("v")).update(1)
    assert stored(backend, "v", "k") == 1


def test_ttl_states_get_ttl_views() -> None:
    backend = make_backend(Clock())
    cfg = config()
    assert isinstance(backend.get_state(with_ttl(ValueStateDescriptor("v"), cfg)), TtlValueState)
    assert isinstance(backend.get_list_state(with_ttl(ListStateDescriptor("l"), cfg)), TtlListState)
    assert isinstance(backend.get_map_state(with_ttl(MapStateDescriptor("m"), cfg)), TtlMapState)
    r = backend.get_reducing_state(with_ttl(ReducingStateDescriptor("r", max), cfg))
    assert isinstance(r, TtlReducingState) and isinstance(r, ReducingState)
    a = backend.get_aggregating_state(with_ttl(AggregatingStateDescriptor("a", Sum()), cfg))
    assert isinstance(a, TtlAggregatingState)


def test_registering_again_with_another_ttl_is_refused() -> None:
    backend = make_backend(Clock())
    backend.get_state(with_ttl(ValueStateDescriptor("v"), config()))
    backend.get_state(with_ttl(ValueStateDescriptor("v"), config()))  # the same config: fine
    with pytest.raises(StateError, match=r"'v'.*time-to-live"):
        backend.get_state(ValueStateDescriptor("v"))
    with pytest.raises(StateError, match=r"'v'.*time-to-live"):
        backend.get_state(with_ttl(ValueStateDescriptor("v"), config(ttl=5)))


def test_reduce_values_refuses_a_ttl_state() -> None:
    backend = make_backend(Clock())
    d = with_ttl(ValueStateDescriptor("v"), config())
    with pytest.raises(ValueError, match="time-to-live"):
        backend.reduce_values(d, [1, 2], lambda x: x, max)


def test_operator_state_refuses_ttl() -> None:
    backend = OperatorStateBackend("op")
    for register, descriptor in (
        (backend.get_list_state, ListStateDescriptor("l")),
        (backend.get_union_list_state, ListStateDescriptor("u")),
        (backend.get_broadcast_state, MapStateDescriptor("b")),
    ):
        with pytest.raises(StateError, match=r"time-to-live.*keyed state only"):
            register(with_ttl(descriptor, config()))


def test_time_provider_defaults_to_wall_clock_and_can_be_set_later() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, MAXP - 1), MAXP)
    assert abs(backend.ttl_time_provider() - time.time() * 1000) < 5_000
    state = backend.get_state(with_ttl(ValueStateDescriptor("v"), config()))
    backend.set_current_key("k")
    state.update(1)
    clock = Clock(time.time_ns() // 1_000_000 + 10 * TTL)
    backend.ttl_time_provider = clock  # registered views read the new provider
    assert state.value() is None
    with pytest.raises(TypeError, match="ttl_time_provider"):
        HeapKeyedStateBackend("op", KeyGroupRange(0, 1), MAXP, ttl_time_provider=5)  # type: ignore[arg-type]


# --- Snapshot and restore ---


def fill_all_kinds(backend: HeapKeyedStateBackend, cfg: StateTtlConfig, serializer: Any) -> None:
    """Write every kind of state for keys 0..19 at the clock's time."""
    for key in range(20):
        backend.set_current_key(key)
        register_all(backend, cfg, serializer)
        states = register_all(backend, cfg, serializer)
        states["value"].update({"n": key})
        states["list"].add_all([key, key + 1])
        states["map"].put(f"e{key}", [key])
        states["reducing"].add(key)
        states["aggregating"].add(key)


def register_all(
    backend: HeapKeyedStateBackend, cfg: StateTtlConfig, serializer: Any
) -> dict[str, Any]:
    kw = {"serializer": serializer}
    return {
        "value": backend.get_state(with_ttl(ValueStateDescriptor("value", **kw), cfg)),
        "list": backend.get_list_state(with_ttl(ListStateDescriptor("list", **kw), cfg)),
        "map": backend.get_map_state(with_ttl(MapStateDescriptor("map", **kw), cfg)),
        "reducing": backend.get_reducing_state(
            with_ttl(ReducingStateDescriptor("reducing", lambda a, b: a + b, **kw), cfg)
        ),
        "aggregating": backend.get_aggregating_state(
            with_ttl(AggregatingStateDescriptor("aggregating", Sum(), **kw), cfg)
        ),
    }


def read_all_kinds(backend: HeapKeyedStateBackend, states: dict[str, Any], key: int) -> list[Any]:
    backend.set_current_key(key)
    return [
        states["value"].value(),
        states["list"].get(),
        states["map"].items(),
        states["reducing"].get(),
        states["aggregating"].get(),
    ]


@pytest.mark.parametrize("serializer", [None, PickleSerializer(), "recording"])
@pytest.mark.parametrize("parallelism", [1, 3])
def test_restore_keeps_timestamps(serializer: Any, parallelism: int) -> None:
    if serializer == "recording":
        serializer = Recording()
    cfg = config(visibility=Visibility.ReturnExpiredIfNotCleanedUp)
    clock = Clock(1_000)
    old = make_backend(clock)
    fill_all_kinds(old, cfg, serializer)
    clock.now = 1_040
    for key in range(0, 20, 2):  # even keys written again later
        old.set_current_key(key)
        register_all(old, cfg, serializer)["value"].update({"n": -key})
    data = snapshot_bytes(old)
    new_clock = Clock(1_000 + TTL - 1)  # a restore happens later, on another clock
    backends = [make_backend(new_clock, i, parallelism) for i in range(parallelism)]
    for backend in backends:
        backend.restore(data)
    for key in range(20):
        (backend,) = [b for b in backends if assign_to_key_group(key, MAXP) in b.key_group_range]
        states = register_all(backend, cfg, serializer)
        for name in states:
            expected_ts = 1_040 if name == "value" and key % 2 == 0 else 1_000
            entry = stored(backend, name, key)
            if name == "list":
                assert [ts for _, ts in entry] == [expected_ts] * 2
            elif name == "map":
                assert [ts for _, ts in entry.values()] == [expected_ts]
            else:
                assert entry[1] == expected_ts, (name, key)
        expected = [
            {"n": -key if key % 2 == 0 else key},
            [key, key + 1],
            [(f"e{key}", [key])],
            key,
            key,
        ]
        assert read_all_kinds(backend, states, key) == expected
    if isinstance(serializer, Recording):
        assert serializer.seen  # it did the work, never seeing a timestamp (asserted inside)


def test_snapshot_records_a_ttl_codec_and_plain_states_unchanged() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    plain = backend.get_state(ValueStateDescriptor("plain"))
    ttl = backend.get_state(with_ttl(ValueStateDescriptor("ttl"), config()))
    custom = backend.get_state(
        with_ttl(ValueStateDescriptor("custom", serializer=PickleSerializer()), config())
    )
    backend.set_current_key("k")
    plain.update(1)
    ttl.update(1)
    custom.update(1)
    (blob,) = snapshot_bytes(backend).values()
    header, payloads = unpack_frames(KEYED_MAGIC, blob)
    states = {name: (codec, mode) for name, _, codec, mode in header["states"]}
    assert states == {
        "plain": ("json", "pp"),
        "ttl": ("ttl:json", "pu"),
        "custom": ("ttl:pickle", "pc"),
    }
    assert payloads[0] == b'[["k"],[1]]'
    assert payloads[1] == b'[["k"],[[1,0]]]'


@pytest.mark.parametrize("direction", ["on", "off"])
@pytest.mark.parametrize("register_first", [True, False])
def test_switching_ttl_on_or_off_at_restore_is_refused(
    direction: str, register_first: bool
) -> None:
    clock = Clock(0)
    old = make_backend(clock)
    d_old = ValueStateDescriptor("v")
    if direction == "off":
        d_old = with_ttl(d_old, config())
    old.set_current_key("k")
    old.get_state(d_old).update(1)
    data = snapshot_bytes(old)
    d_new = ValueStateDescriptor("v")
    if direction == "on":
        d_new = with_ttl(d_new, config())
    new = make_backend(clock)
    if register_first:
        new.get_state(d_new)
        with pytest.raises(StateError, match=r"'v'.*time-to-live.*enable_time_to_live"):
            new.restore(data)
    else:
        new.restore(data)
        with pytest.raises(StateError, match=r"'v'.*time-to-live.*enable_time_to_live"):
            new.get_state(d_new)
        assert new.has_state_named("v")  # the data waits, not lost


# --- Cleanup in full snapshots ---


@pytest.mark.parametrize("step_entries", [1024, 4])
def test_full_snapshot_cleanup_leaves_expired_out(step_entries: int) -> None:
    for full_snapshot in (True, False):
        cfg = config(visibility=Visibility.ReturnExpiredIfNotCleanedUp, full_snapshot=full_snapshot)
        clock = Clock(0)
        backend = make_backend(clock)
        states = register_all(backend, cfg, None)
        # Put many keys in one key group, so that it is serialized in chunks.
        keys = [k for k in range(3000) if assign_to_key_group(k, MAXP) == 7][:15]
        for n, key in enumerate(keys):
            clock.now = 0 if n < 9 else 50  # the first 9 expire by 100
            backend.set_current_key(key)
            states["value"].update(key)
            states["list"].add(key)
            states["map"].put("x", key)
            states["reducing"].add(key)
            states["aggregating"].add(key)
        backend.set_current_key(keys[0])
        clock.now = 50
        states["list"].add(-1)  # one element of this list outlives the other
        states["map"].put("y", -1)
        clock.now = 100
        snapshot = backend.snapshot_sync()
        snapshot.step_entries = step_entries
        data = anyio.run(snapshot.serialize_all)
        assert backend.state_size() == 5 * 15  # the live state keeps what expired
        restored = make_backend(clock)
        restored.restore(data)
        rstates = register_all(restored, cfg, None)
        for n, key in enumerate(keys):
            got = read_all_kinds(restored, rstates, key)
            if not full_snapshot:
                assert got[0] == key  # returned: still there, not cleaned up
            elif n == 0:
                assert got == [None, [-1], [("y", -1)], None, None]
            elif n < 9:
                assert got == [None, [], [], None, None], key
            else:
                assert got == [key, [key], [("x", key)], key, key]


def test_full_snapshot_cleanup_with_every_entry_expired_in_chunks() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    cfg = config(full_snapshot=True)
    state = backend.get_state(with_ttl(ValueStateDescriptor("v"), cfg))
    for key in range(2000):
        backend.set_current_key(key)
        state.update(key)
    clock.now = TTL
    snapshot = backend.snapshot_sync()
    snapshot.step_entries = 2
    data = anyio.run(snapshot.serialize_all)
    restored = make_backend(clock)
    restored.restore(data)
    restored.get_state(with_ttl(ValueStateDescriptor("v"), cfg))
    assert restored.state_size() == 0


# --- Incremental cleanup ---


def test_incremental_cleanup_on_access_removes_every_expired_entry() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    cfg = config(incremental=(5, False))
    state = backend.get_state(with_ttl(ValueStateDescriptor("v"), cfg))
    for key in range(300):
        backend.set_current_key(key)
        state.update(key)
    clock.now = 50
    for key in range(300, 310):  # these live on
        backend.set_current_key(key)
        state.update(key)
    clock.now = TTL
    backend.set_current_key("other")
    accesses = 0
    while backend.state_size() > 10:
        state.value()  # only the key "other" is read
        accesses += 1
        assert accesses < 300, "incremental cleanup did not get through the state"
    assert sorted(backend.keys("v")) == list(range(300, 310))
    assert accesses >= 300 // 5


@pytest.mark.parametrize("kind", ["list", "map"])
def test_incremental_cleanup_drops_expired_elements(kind: str) -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    cfg = config(incremental=(5, False))
    states = register_all(backend, cfg, None)
    for key in range(40):
        backend.set_current_key(key)
        if kind == "list":
            states["list"].add("old")
        else:
            states["map"].put("old", 1)
    clock.now = 50
    for key in range(0, 40, 2):
        backend.set_current_key(key)
        if kind == "list":
            states["list"].add("new")
        else:
            states["map"].put("new", 2)
    clock.now = TTL
    backend.set_current_key("other")
    for _ in range(200):
        states[kind].is_empty() if kind == "map" else states[kind].get()
    for key in range(40):
        entry = stored(backend, kind, key)
        if key % 2:
            assert entry is None
        elif kind == "list":
            assert entry == [("new", 50)]
        else:
            assert entry == {"new": (2, 50)}


def test_incremental_cleanup_is_the_default_and_can_be_disabled() -> None:
    for background in (True, False):
        clock = Clock(0)
        backend = make_backend(clock)
        state = backend.get_state(
            with_ttl(ValueStateDescriptor("v"), config(background=background))
        )
        for key in range(100):
            backend.set_current_key(key)
            state.update(key)
        clock.now = TTL
        backend.set_current_key("other")
        for _ in range(200):
            state.value()
        assert backend.state_size() == (0 if background else 100)


def test_per_record_cleanup_runs_without_any_access() -> None:
    for every_record in (True, False):
        clock = Clock(0)
        # One key group, so that every step checks as many entries as it may.
        backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 0), 1, ttl_time_provider=clock)
        cfg = config(incremental=(5, every_record))
        state = backend.get_state(with_ttl(ValueStateDescriptor("v"), cfg))
        for key in range(100):
            backend.set_current_key(key)
            state.update(key)
        clock.now = TTL - 1
        backend.ttl_cleanup_step(1000)
        assert backend.state_size() == 100  # nothing expired yet
        clock.now = TTL
        backend.ttl_cleanup_step(2)
        assert backend.state_size() == (90 if every_record else 100)  # 2 records: 10 entries
        backend.ttl_cleanup_step(10**9)  # at most one lap over the state, not 5e9 checks
        assert backend.state_size() == (0 if every_record else 100)


def test_incremental_cleanup_on_a_sparse_state_and_without_key_groups() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_state(with_ttl(ValueStateDescriptor("v"), config(incremental=(1, True))))
    backend.set_current_key("gone")
    state.update(1)
    clock.now = TTL
    backend.set_current_key("other")
    for _ in range(MAXP):  # a step passes over at most as many empty groups as it checks keys
        state.value()
    assert backend.keys("v") == []
    empty = HeapKeyedStateBackend("op", KeyGroupRange(0, -1), MAXP, ttl_time_provider=clock)
    empty.get_state(with_ttl(ValueStateDescriptor("v"), config(incremental=(5, True))))
    empty.ttl_cleanup_step(3)


def test_cleanup_keeps_what_a_pending_snapshot_holds() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    cfg = config(visibility=Visibility.ReturnExpiredIfNotCleanedUp, incremental=(5, True))
    states = register_all(backend, cfg, None)
    for key in range(50):
        backend.set_current_key(key)
        states["value"].update([key])
        states["map"].put("e", key)
    snapshot = backend.snapshot_sync()  # taken before anything expired
    clock.now = TTL
    for _ in range(100):
        backend.ttl_cleanup_step(10)
    assert backend.state_size() == 0
    data = anyio.run(snapshot.serialize_all)
    restored = make_backend(Clock(0))
    restored.restore(data)
    rstates = register_all(restored, cfg, None)
    for key in range(50):
        restored.set_current_key(key)
        assert rstates["value"].value() == [key]
        assert rstates["map"].items() == [("e", key)]


def test_view_writes_keep_what_a_pending_snapshot_holds() -> None:
    clock = Clock(0)
    backend = make_backend(clock)
    cfg = config(UpdateType.OnReadAndWrite)
    states = register_all(backend, cfg, None)
    backend.set_current_key("k")
    states["value"].update([1])
    states["list"].add(1)
    states["map"].put("a", 1)
    snapshot = backend.snapshot_sync()
    clock.now = 10
    states["value"].value().append(2)  # refreshed by the read, then mutated in place
    states["list"].get()
    states["map"].get("a")
    data = anyio.run(snapshot.serialize_all)
    restored = make_backend(clock)
    restored.restore(data)
    register_all(restored, cfg, None)
    assert stored(restored, "value", "k") == ([1], 0)
    assert stored(restored, "list", "k") == [(1, 0)]
    assert stored(restored, "map", "k") == {"a": (1, 0)}
    assert stored(backend, "value", "k") == ([1, 2], 10)


# --- The config and its builder ---


def test_builder_defaults_as_flink() -> None:
    cfg = StateTtlConfig.new_builder(Time.seconds(1)).build()
    assert cfg.get_update_type() is UpdateType.OnCreateAndWrite
    assert cfg.get_state_visibility() is Visibility.NeverReturnExpired
    assert cfg.get_ttl() == timedelta(seconds=1)
    assert cfg.is_enabled()
    strategies = cfg.get_cleanup_strategies()
    assert strategies.is_cleanup_in_background()
    assert not strategies.in_full_snapshot()
    incremental = strategies.get_incremental_cleanup_strategy()
    assert incremental is not None
    assert incremental.get_cleanup_size() == 5
    assert incremental.run_cleanup_for_every_record() is False
    assert cfg.get_ttl_time_characteristic() is StateTtlConfig.TtlTimeCharacteristic.ProcessingTime


def test_builder_setters_chain() -> None:
    cfg = (
        StateTtlConfig.new_builder(timedelta(minutes=1))
        .update_ttl_on_read_and_write()
        .return_expired_if_not_cleaned_up()
        .set_ttl(Duration.of_seconds(2))
        .cleanup_full_snapshot()
        .cleanup_incrementally(10, True)
        .disable_cleanup_in_background()
        .use_processing_time()
        .build()
    )
    assert cfg.get_update_type() is UpdateType.OnReadAndWrite
    assert cfg.get_state_visibility() is Visibility.ReturnExpiredIfNotCleanedUp
    assert cfg.ttl_ms == 2_000
    strategies = cfg.get_cleanup_strategies()
    assert strategies.in_full_snapshot() and not strategies.is_cleanup_in_background()
    incremental = strategies.get_incremental_cleanup_strategy()
    assert incremental is not None
    assert (incremental.get_cleanup_size(), incremental.run_cleanup_for_every_record()) == (
        10,
        True,
    )
    again = (
        StateTtlConfig.new_builder(1)
        .update_ttl_on_create_and_write()
        .never_return_expired()
        .disable_cleanup_in_background()
        .build()
    )
    assert again.get_update_type() is UpdateType.OnCreateAndWrite
    assert again.get_state_visibility() is Visibility.NeverReturnExpired
    assert again.get_cleanup_strategies().get_incremental_cleanup_strategy() is None
    assert (
        not StateTtlConfig.new_builder(1).set_update_type(UpdateType.Disabled).build().is_enabled()
    )


@pytest.mark.parametrize("ttl", ["10s", 1.5, True, None, object()])
def test_ttl_of_a_wrong_type_is_refused(ttl: Any) -> None:
    with pytest.raises(TypeError, match=r"ttl must be a Time .*int of milliseconds"):
        StateTtlConfig.new_builder(ttl)
    with pytest.raises(TypeError, match="set_ttl"):
        StateTtlConfig.new_builder(1).set_ttl(ttl)


@pytest.mark.parametrize("ttl", [0, -1, Time.milliseconds(0), timedelta(microseconds=10)])
def test_ttl_not_positive_is_refused(ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        StateTtlConfig.new_builder(ttl)


def test_builder_arguments_are_checked() -> None:
    builder = StateTtlConfig.new_builder(1)
    with pytest.raises(ValueError, match="cleanup_size must be positive"):
        builder.cleanup_incrementally(0, False)
    with pytest.raises(ValueError, match="cleanup_size must be positive"):
        builder.cleanup_incrementally(-1, False)
    with pytest.raises(TypeError, match="cleanup_size must be an int"):
        builder.cleanup_incrementally("5", False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run_cleanup_for_every_record must be a bool"):
        builder.cleanup_incrementally(5, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"StateTtlConfig.UpdateType"):
        builder.set_update_type("OnReadAndWrite")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"StateTtlConfig.StateVisibility"):
        builder.set_state_visibility(UpdateType.OnReadAndWrite)  # type: ignore[arg-type]


def test_enable_time_to_live_checks_its_config() -> None:
    d = ValueStateDescriptor("v")
    with pytest.raises(TypeError, match=r"'v'.*StateTtlConfig"):
        d.enable_time_to_live(StateTtlConfig.new_builder(1))  # type: ignore[arg-type]
    disabled = StateTtlConfig.new_builder(1).set_update_type(UpdateType.Disabled).build()
    with pytest.raises(ValueError, match=r"'v'.*Disabled"):
        d.enable_time_to_live(disabled)
    assert d.get_ttl_config() is None
    cfg = config()
    d.enable_time_to_live(cfg)
    assert d.get_ttl_config() is cfg
    assert d == ValueStateDescriptor("v")  # TTL is not part of what identifies the state
    assert hash(d) == hash(ValueStateDescriptor("v"))


def test_pyflink_style_use() -> None:
    import streamlet

    ttl_config = (
        streamlet.StateTtlConfig.new_builder(Time.seconds(1))
        .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
        .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
        .build()
    )
    descriptor = ValueStateDescriptor("text_state", None)
    descriptor.enable_time_to_live(ttl_config)
    clock = Clock(0)
    backend = make_backend(clock)
    state = backend.get_state(descriptor)
    backend.set_current_key("k")
    state.update("x")
    clock.now = 999
    assert state.value() == "x"
    clock.now = 1_000
    assert state.value() is None
