"""Keyed timers kept as keyed map state: order, dedup, deletion, firing, snapshots, rescaling."""

from __future__ import annotations

import random
from collections import namedtuple
from typing import Any

import pytest

from streamlet.state import (
    HeapKeyedStateBackend,
    ListStateDescriptor,
    MapStateDescriptor,
    StateError,
    ValueStateDescriptor,
    assign_to_key_group,
    key_group_range_for_subtask,
)
from streamlet.state.serde import decode_table, encode_table
from streamlet.state.timers import KeyedTimerQueue, timer_state_name

MAXP = 128
EVENT = "_timer_state/event_user-timers"

Point = namedtuple("Point", "x y")

#: One key of every type the backend accepts.
KEY_TYPES: list[Any] = [7, -(2**70), "k", (1, "a"), b"\x00b", 2.5, None, Point(1, "p"), ((1,), b"")]


def make_backend(subtask: int = 0, parallelism: int = 1) -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(
        "op", key_group_range_for_subtask(subtask, parallelism, MAXP), MAXP
    )


def setup(subtask: int = 0, parallelism: int = 1) -> tuple[HeapKeyedStateBackend, KeyedTimerQueue]:
    backend = make_backend(subtask, parallelism)
    return backend, KeyedTimerQueue(backend, "event")


def at(backend: HeapKeyedStateBackend, queue: KeyedTimerQueue, key: Any, *timestamps: int) -> None:
    backend.set_current_key(key)
    for ts in timestamps:
        queue.register(ts)


def drain(backend: HeapKeyedStateBackend, queue: KeyedTimerQueue, limit: int) -> list[Any]:
    fired = []
    while (ts := queue.pop_due(limit)) is not None:
        fired.append((ts, backend.get_current_key()))
    return fired


def chunks_of(snapshot: Any) -> dict[int, bytes]:
    return {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}


def restored(chunks: dict[int, bytes], subtask: int = 0, parallelism: int = 1):
    backend = make_backend(subtask, parallelism)
    backend.restore(chunks)
    return backend, KeyedTimerQueue(backend, "event")


def timers_in_state(backend: HeapKeyedStateBackend, name: str = EVENT) -> set[tuple[Any, int]]:
    table = backend._tables[name]
    return {(key, ts) for group in table.tables for key, timers in group.items() for ts in timers}


# --- Order, dedup, deletion ---


def test_timers_fire_in_timestamp_order_across_keys_ties_in_registration_order() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 30, 10)
    at(backend, queue, 2, 20, 10)
    at(backend, queue, (1, "x"), 10, 5)
    at(backend, queue, "a", 40)
    assert drain(backend, queue, 100) == [
        (5, (1, "x")),
        (10, "a"),
        (10, 2),
        (10, (1, "x")),
        (20, 2),
        (30, "a"),
        (40, "a"),
    ]
    assert len(queue) == 0
    assert queue.peek() is None


def test_a_key_has_one_timer_per_timestamp() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 5, 5, 5)
    at(backend, queue, "b", 5)
    assert len(queue) == 2
    assert drain(backend, queue, 5) == [(5, "a"), (5, "b")]
    assert drain(backend, queue, 10**9) == []


def test_delete_removes_only_the_current_keys_timer() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 5, 6)
    at(backend, queue, "b", 5)
    backend.set_current_key("a")
    queue.delete(5)
    queue.delete(5)  # absent now: no-op
    queue.delete(99)  # never registered: no-op
    backend.set_current_key("c")
    queue.delete(6)  # "c" has no timers, "a"'s 6 stays
    assert len(queue) == 2
    assert drain(backend, queue, 10) == [(5, "b"), (6, "a")]


def test_register_after_delete_fires_once_in_its_new_place() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 5)
    at(backend, queue, "b", 5)
    backend.set_current_key("a")
    queue.delete(5)
    queue.register(5)
    assert len(queue) == 2
    # Each fires once; equal timestamps of different keys fire in no set order (as in Flink).
    assert sorted(drain(backend, queue, 5)) == [(5, "a"), (5, "b")]
    assert len(queue) == 0


def test_delete_and_register_again_many_times() -> None:
    backend, queue = setup()
    backend.set_current_key("a")
    for _ in range(5):
        queue.register(7)
        queue.delete(7)
    queue.register(7)
    assert len(queue) == 1
    assert queue.peek() == 7
    assert drain(backend, queue, 7) == [(7, "a")]
    assert len(queue) == 0
    assert queue.peek() is None


def test_peek_skips_deleted_timers_and_len_counts_live_ones() -> None:
    backend, queue = setup()
    assert queue.peek() is None
    assert len(queue) == 0
    at(backend, queue, "a", 1, 2)
    at(backend, queue, "b", 3)
    assert (queue.peek(), len(queue)) == (1, 3)
    backend.set_current_key("a")
    queue.delete(1)
    assert (queue.peek(), len(queue)) == (2, 2)
    queue.delete(2)
    assert (queue.peek(), len(queue)) == (3, 1)
    backend.set_current_key("b")
    queue.delete(3)
    assert (queue.peek(), len(queue)) == (None, 0)


def test_pop_due_only_takes_timers_at_or_before_the_limit() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 10, 20)
    backend.set_current_key("z")
    assert queue.pop_due(9) is None
    assert backend.get_current_key() == "z"  # unchanged when nothing is due
    assert queue.pop_due(10) == 10
    assert queue.pop_due(19) is None
    assert (queue.peek(), len(queue)) == (20, 1)


def test_pop_due_makes_the_timers_key_current_for_state() -> None:
    backend, queue = setup()
    value = backend.get_state(ValueStateDescriptor("v"))
    keys = [f"k{i}" for i in range(50)] + list(range(50))
    for n, key in enumerate(keys):
        backend.set_current_key(key)
        value.update(("value of", key))
        queue.register(1000 - n)
    backend.set_current_key("elsewhere")
    fired = []
    while (ts := queue.pop_due(1000)) is not None:
        key = backend.get_current_key()
        assert backend.current_key_group == assign_to_key_group(key, MAXP)
        assert value.value() == ("value of", key)
        value.update(("fired", ts))  # writes go to the timer's key too
        fired.append(key)
    assert fired == keys[::-1]
    for n, key in enumerate(keys):
        backend.set_current_key(key)
        assert value.value() == ("fired", 1000 - n)


def test_timers_registered_while_firing_fire_in_the_same_pass_when_due() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 10)
    at(backend, queue, "b", 30)
    fired = []
    while (ts := queue.pop_due(25)) is not None:
        key = backend.get_current_key()
        fired.append((ts, key))
        if len(fired) == 1:
            queue.register(10)  # the same timestamp again: fires again, after this one
            queue.register(20)
            queue.register(26)  # beyond the limit: waits
            backend.set_current_key("c")
            queue.register(15)
    assert fired == [(10, "a"), (10, "a"), (15, "c"), (20, "a")]
    assert (queue.peek(), len(queue)) == (26, 2)


def test_the_state_holds_the_timers_and_drops_a_key_with_no_timers_left() -> None:
    backend, queue = setup()
    assert queue.name == EVENT == timer_state_name("event")
    at(backend, queue, "a", 3, 1)
    at(backend, queue, "b", 2)
    table = backend._tables[EVENT]
    # Per key, the timestamps sorted (registered 3, then 1).
    assert {k: v for group in table.tables for k, v in group.items()} == {"a": [1, 3], "b": [2]}
    backend.set_current_key("b")
    queue.delete(2)
    assert set(backend.keys(EVENT)) == {"a"}
    drain(backend, queue, 1)
    assert set(backend.keys(EVENT)) == {"a"}
    drain(backend, queue, 3)
    assert backend.keys(EVENT) == []
    assert backend.state_size() == 0


def test_domains_and_services_are_separate_queues() -> None:
    backend = make_backend()
    event = KeyedTimerQueue(backend, "event")
    processing = KeyedTimerQueue(backend, "processing")
    other = KeyedTimerQueue(backend, "event", "window-timers")
    assert processing.name == "_timer_state/processing_user-timers"
    assert other.name == "_timer_state/event_window-timers"
    at(backend, event, "a", 1)
    at(backend, processing, "a", 2)
    assert (len(event), len(processing), len(other)) == (1, 1, 0)
    assert drain(backend, processing, 10) == [(2, "a")]
    assert event.peek() == 1


# --- Errors ---


def test_no_current_key_raises_state_error() -> None:
    _, queue = setup()
    with pytest.raises(StateError, match=r"no current key.*set_current_key\(\)"):
        queue.register(1)
    with pytest.raises(StateError, match=r"no current key"):
        queue.delete(1)
    assert len(queue) == 0


@pytest.mark.parametrize("bad", [1.5, "3", True, None, 2.0])
def test_timestamps_must_be_ints(bad: Any) -> None:
    backend, queue = setup()
    backend.set_current_key("a")
    with pytest.raises(TypeError, match=rf"must be an int.*got {bad!r} of type"):
        queue.register(bad)
    with pytest.raises(TypeError, match=rf"got {bad!r}"):
        queue.delete(bad)
    assert len(queue) == 0


@pytest.mark.parametrize(
    "register",
    [
        lambda b: b.get_map_state(MapStateDescriptor(EVENT)),
        lambda b: b.get_state(ValueStateDescriptor("_timer_state/mine")),
        lambda b: b.get_list_state(ListStateDescriptor("_timer_state/x")),
    ],
)
def test_user_states_cannot_use_the_reserved_prefix(register: Any) -> None:
    backend, _ = setup()
    with pytest.raises(StateError, match=r"reserved.*'_timer_state/'"):
        register(backend)
    backend.get_map_state(MapStateDescriptor("timer_state/fine"))  # only the prefix is taken


def test_bad_domain_or_service_and_a_second_queue_are_refused() -> None:
    backend, _ = setup()
    with pytest.raises(ValueError, match=r"domain must be one of"):
        KeyedTimerQueue(backend, "ingestion")
    with pytest.raises(ValueError, match=r"service must be a non-empty str"):
        KeyedTimerQueue(backend, "event", "")
    with pytest.raises(StateError, match=r"already has a timer queue"):
        KeyedTimerQueue(backend, "event")


# --- Serialization, snapshots, restore ---


@pytest.mark.parametrize("key", KEY_TYPES, ids=repr)
def test_default_codec_round_trips_timer_tables_of_every_key_type(key: Any) -> None:
    table = {key: [-(2**90), -(2**63), 5, 2**64 - 1, 2**90]}
    mode, payload = encode_table(table, None)
    back = decode_table(mode, payload, None)
    assert back == table
    ((back_key, back_timers),) = back.items()
    assert type(back_key) is type(key)
    assert type(back_timers) is list
    assert back_timers == table[key]
    assert {type(ts) for ts in back_timers} == {int}


def test_timers_of_every_key_type_survive_snapshot_and_restore() -> None:
    backend, queue = setup()
    value = backend.get_state(ValueStateDescriptor("v"))
    expected = []
    for n, key in enumerate(KEY_TYPES):
        at(backend, queue, key, 100 + n, 2**70 + n)
        value.update(n)
        expected += [(100 + n, key), (2**70 + n, key)]
    chunks = chunks_of(backend.snapshot_sync())
    new_backend, new_queue = restored(chunks)
    new_value = new_backend.get_state(ValueStateDescriptor("v"))
    assert len(new_queue) == len(expected)
    assert new_queue.peek() == 100
    fired = []
    while (ts := new_queue.pop_due(2**80)) is not None:
        key = new_backend.get_current_key()
        assert new_value.value() == KEY_TYPES.index(key)
        fired.append((ts, key))
    assert fired == sorted(expected, key=lambda e: e[0])
    assert [type(k) for _, k in fired] == [type(k) for _, k in sorted(expected, key=lambda e: e[0])]


def test_restored_queue_takes_new_timers_and_deletes_restored_ones() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 5, 9)
    at(backend, queue, "b", 7)
    new_backend, new_queue = restored(chunks_of(backend.snapshot_sync()))
    at(new_backend, new_queue, "a", 5, 6)  # 5 is restored already: dedup
    new_queue.delete(9)
    at(new_backend, new_queue, "c", 1)
    assert len(new_queue) == 4
    assert drain(new_backend, new_queue, 100) == [(1, "c"), (5, "a"), (6, "a"), (7, "b")]


def test_a_queue_created_before_restore_data_is_registered_decodes_it_on_creation() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 5)
    chunks = chunks_of(backend.snapshot_sync())
    new_backend = make_backend()
    new_backend.restore(chunks)
    assert new_backend.is_restored()
    assert new_backend.state_size() == 0  # still undecoded, waiting for its registration
    new_queue = KeyedTimerQueue(new_backend, "event")
    assert new_backend.state_size() == 1
    assert drain(new_backend, new_queue, 5) == [(5, "a")]


def _keys(n: int) -> list[Any]:
    keys: list[Any] = list(range(n // 3))
    keys += [f"k{i}" for i in range(n // 3)]
    keys += [(i, str(i)) for i in range(n - len(keys))]
    return keys


@pytest.mark.parametrize("new_parallelism", [2, 3])
def test_rescaling_lands_every_timer_once_on_the_owner_of_its_key_group(
    new_parallelism: int,
) -> None:
    keys = _keys(900)
    rng = random.Random(new_parallelism)
    old = [setup(i, 4) for i in range(4)]
    expected: set[tuple[Any, int]] = set()
    for key in keys:
        backend, queue = next(
            bq for bq in old if assign_to_key_group(key, MAXP) in bq[0].key_group_range
        )
        for ts in rng.sample(range(1000), 3):
            at(backend, queue, key, ts)
            expected.add((key, ts))
    chunks: dict[int, bytes] = {}
    for backend, _ in old:
        part = chunks_of(backend.snapshot_sync())
        assert not chunks.keys() & part.keys()
        chunks.update(part)
    fired: list[tuple[Any, int]] = []
    for subtask in range(new_parallelism):
        backend, queue = restored(chunks, subtask, new_parallelism)
        owned = {
            (k, ts) for k, ts in expected if assign_to_key_group(k, MAXP) in backend.key_group_range
        }
        assert timers_in_state(backend) == owned
        assert len(queue) == len(owned)
        mine = []
        while (ts := queue.pop_due(10**6)) is not None:
            key = backend.get_current_key()
            assert backend.current_key_group == assign_to_key_group(key, MAXP)
            assert backend.current_key_group in backend.key_group_range
            mine.append((ts, key))
        assert [ts for ts, _ in mine] == sorted(ts for ts, _ in mine)
        assert {(k, ts) for ts, k in mine} == owned
        fired += [(k, ts) for ts, k in mine]
    assert len(fired) == len(expected)  # exactly once each
    assert set(fired) == expected


# --- Copy-on-write against pending snapshots ---


def test_register_delete_and_fire_after_snapshot_sync_do_not_change_the_snapshot() -> None:
    backend, queue = setup()
    for n, key in enumerate(_keys(300)):
        at(backend, queue, key, n % 50, 100 + n % 7)
    expected = timers_in_state(backend)
    snapshot = backend.snapshot_sync()
    rng = random.Random(3)
    keys = [*_keys(300), *(f"new{i}" for i in range(40))]

    def mutate() -> None:
        for _ in range(30):
            backend.set_current_key(rng.choice(keys))
            op = rng.random()
            if op < 0.4:
                queue.register(rng.randrange(200))
            elif op < 0.7:
                queue.delete(rng.randrange(200))
            else:
                queue.pop_due(rng.randrange(120))

    mutate()
    chunks = {}
    for kg in snapshot.key_groups():
        chunks[kg] = snapshot.serialize_key_group(kg)
        mutate()  # also between key groups, serialized and not
    assert timers_in_state(backend) != expected
    new_backend, new_queue = restored(chunks)
    assert timers_in_state(new_backend) == expected
    assert len(new_queue) == len(expected)
    assert {(k, ts) for ts, k in drain(new_backend, new_queue, 10**6)} == expected


def test_firing_the_last_timer_of_a_key_after_snapshot_keeps_it_in_the_snapshot() -> None:
    backend, queue = setup()
    at(backend, queue, "a", 1)
    at(backend, queue, "b", 2, 3)
    snapshot = backend.snapshot_sync()
    assert drain(backend, queue, 2) == [(1, "a"), (2, "b")]
    at(backend, queue, "b", 4)
    new_backend, new_queue = restored(chunks_of(snapshot))
    assert drain(new_backend, new_queue, 10) == [(1, "a"), (2, "b"), (3, "b")]
    assert drain(backend, queue, 10) == [(3, "b"), (4, "b")]


# --- Against a model ---


class Model:
    """Per key, its timers; the earliest timestamp fires first (among equal timestamps of
    different keys, any: the queue's order there is unspecified, as in Flink)."""

    def __init__(self) -> None:
        self.timers: dict[Any, dict[int, int]] = {}
        self.order = 0

    def register(self, key: Any, ts: int) -> None:
        timers = self.timers.setdefault(key, {})
        if ts not in timers:
            self.order += 1
            timers[ts] = self.order

    def delete(self, key: Any, ts: int) -> None:
        timers = self.timers.get(key, {})
        timers.pop(ts, None)
        if not timers:
            self.timers.pop(key, None)

    def earliest(self) -> tuple[int, int, Any] | None:
        entries = [(ts, n, key) for key, t in self.timers.items() for ts, n in t.items()]
        return min(entries, key=lambda e: (e[0], e[1])) if entries else None

    def due_keys(self, limit: int) -> tuple[int, list[Any]] | None:
        """The earliest timestamp at or before ``limit`` and the keys that have it."""
        first = self.earliest()
        if first is None or first[0] > limit:
            return None
        ts = first[0]
        return ts, [key for key, t in self.timers.items() if ts in t]

    def pairs(self) -> set[tuple[Any, int]]:
        return {(key, ts) for key, t in self.timers.items() for ts in t}


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_match_a_model(seed: int) -> None:
    rng = random.Random(seed)
    backend, queue = setup()
    model = Model()
    keys = ["a", "b", 3, (1, "x"), None, 2.5, b"k"]
    snapshots: list[tuple[Any, set[tuple[Any, int]]]] = []
    for step in range(3000):
        key = rng.choice(keys)
        backend.set_current_key(key)
        op = rng.random()
        ts = rng.randrange(40)
        if op < 0.45:
            queue.register(ts)
            model.register(key, ts)
        elif op < 0.7:
            queue.delete(ts)
            model.delete(key, ts)
        elif op < 0.9:
            got = queue.pop_due(ts)
            want = model.due_keys(ts)
            if want is None:
                assert got is None
                assert backend.get_current_key() == key
            else:
                assert got == want[0]
                fired = backend.get_current_key()
                assert any(fired == k and type(fired) is type(k) for k in want[1])
                model.delete(fired, got)
        elif op < 0.95:
            first = model.earliest()
            assert queue.peek() == (None if first is None else first[0])
        elif op < 0.98:
            snapshots.append((backend.snapshot_sync(), model.pairs()))
        elif snapshots:
            snapshot, expected = snapshots.pop(rng.randrange(len(snapshots)))
            assert timers_in_state(restored(chunks_of(snapshot))[0]) == expected
        assert len(queue) == len(model.pairs()), step
    assert timers_in_state(backend) == model.pairs()
    assert len(queue) == len(model.pairs())
