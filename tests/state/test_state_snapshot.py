"""Keyed snapshots: a consistent cut, copy-on-write, the byte format, restore and rescaling."""

from __future__ import annotations

import copy
import enum
import gc
import json
import random
from collections import namedtuple
from typing import Any

import anyio
import pytest

from streamlet.state import (
    HeapKeyedStateBackend,
    KeyGroupRange,
    ListStateDescriptor,
    MapStateDescriptor,
    StateError,
    StateSerializationError,
    ValueStateDescriptor,
    assign_to_key_group,
    key_group_range_for_subtask,
    subtask_for_key_group,
)
from streamlet.state.snapshot import KEYED_MAGIC, KeyedStateSnapshot, unpack_frames
from tests.state._state_model import KEYS, NAMES, apply, assert_same, dump, random_op, register

MAXP = 128


def make_backend(subtask: int = 0, parallelism: int = 1, uid: str = "op") -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(uid, key_group_range_for_subtask(subtask, parallelism, MAXP), MAXP)


def many_keys(n: int) -> list[Any]:
    keys: list[Any] = list(range(n // 2))
    keys += [f"k{i}" for i in range(n // 4)]
    keys += [(i, str(i)) for i in range(n - len(keys))]
    return keys


def populated(rng: random.Random, keys: list[Any], ops: int):
    backend = make_backend()
    views = register(backend)
    model: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}
    for _ in range(ops):
        apply(backend, views, model, random_op(rng, keys))
    return backend, views, model


def restore_fresh(chunks: dict[int, bytes], subtask: int = 0, parallelism: int = 1):
    backend = make_backend(subtask, parallelism)
    backend.restore(chunks)
    return backend, register(backend)


# --- Consistency ---


def test_snapshot_is_a_consistent_cut_under_heavy_mutation() -> None:
    rng = random.Random(7)
    keys = many_keys(600)
    backend, views, model = populated(rng, keys, 6000)
    assert_same(dump(backend, views), model)
    expected = copy.deepcopy(model)

    snapshot = backend.snapshot_sync()
    # Mutate heavily before serializing: every op kind, existing and new keys.
    new_keys = keys + [f"new-{i}" for i in range(100)]
    for _ in range(3000):
        apply(backend, views, model, random_op(rng, new_keys))
    chunks = {}
    for kg in snapshot.key_groups():
        chunks[kg] = snapshot.serialize_key_group(kg)
        for _ in range(50):  # ... and while serializing, key group by key group
            apply(backend, views, model, random_op(rng, new_keys))

    restored, restored_views = restore_fresh(chunks)
    assert_same(dump(restored, restored_views), expected)
    # The live backend kept every change made after the snapshot.
    assert_same(dump(backend, views), model)


def test_in_place_change_of_read_value_does_not_reach_snapshot() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("k")
    state.update([1, {"a": [2]}])
    snapshot = backend.snapshot_sync()
    value = state.value()
    value.append(3)
    value[1]["a"].append(4)
    restored, _ = restore_fresh(
        {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
    )
    restored_state = restored.get_state(ValueStateDescriptor("v"))
    restored.set_current_key("k")
    assert restored_state.value() == [1, {"a": [2]}]
    assert state.value() == [1, {"a": [2, 4]}, 3]


def test_list_and_map_appends_after_snapshot_do_not_leak() -> None:
    backend = make_backend()
    items = backend.get_list_state(ListStateDescriptor("l"))
    entries = backend.get_map_state(MapStateDescriptor("m"))
    backend.set_current_key("k")
    items.add(1)
    entries.put("a", 1)
    snapshot = backend.snapshot_sync()
    items.add(2)
    entries.put("b", 2)
    entries.remove("a")
    restored, _ = restore_fresh(
        {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
    )
    restored.set_current_key("k")
    assert restored.get_list_state(ListStateDescriptor("l")).get() == [1]
    assert restored.get_map_state(MapStateDescriptor("m")).items() == [("a", 1)]


def test_snapshot_copies_nothing_and_records_only_touched_entries() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(1000):
        backend.set_current_key(key)
        state.update(key)
    table = backend._tables["v"]
    live = list(table.tables)
    snapshot = backend.snapshot_sync()
    (frozen,) = snapshot.states
    backend.set_current_key(0)
    state.update(-1)
    backend.set_current_key(1)
    assert state.value() == 1  # a read records the entry too (it could be mutated)
    # No key group was copied: the live dicts are the same objects...
    assert all(a is b for a, b in zip(live, table.tables, strict=True))
    # ... and only the touched entries were recorded for the snapshot.
    recorded = {k: v for shadow in frozen.shadows if shadow for k, v in shadow.items()}
    assert recorded == {0: 0, 1: 1}
    kg = backend.current_key_group
    assert kg is not None  # a key is set
    index = kg - backend.key_group_range.start
    shadow = frozen.shadows[index]
    assert shadow is not None  # the entry was touched after the snapshot
    assert table.view_of(index, shadow)[1] == 1


def test_serializing_a_key_group_releases_it_to_the_fast_path() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("k")
    state.update(1)
    table = backend._tables["v"]
    assert backend.current_key_group is not None  # a key is set
    index = backend.current_key_group - backend.key_group_range.start
    snapshot = backend.snapshot_sync()
    assert table.writable[index] is None
    data = snapshot.serialize_key_group(backend.current_key_group)
    assert table.writable[index] is table.tables[index]
    assert snapshot.serialize_key_group(backend.current_key_group) is data
    other = backend.snapshot_sync()
    other.release()
    assert table.writable[index] is table.tables[index]


def test_two_snapshots_are_independent() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("k")
    state.update(1)
    first = backend.snapshot_sync()
    state.update(2)
    second = backend.snapshot_sync()
    state.update(3)
    for snapshot, expected in ((second, 2), (first, 1)):
        restored, _ = restore_fresh(
            {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
        )
        restored.set_current_key("k")
        assert restored.get_state(ValueStateDescriptor("v")).value() == expected


def test_key_groups_lists_only_groups_with_data() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    assert backend.snapshot_sync().key_groups() == []
    for key in ("a", "b"):
        backend.set_current_key(key)
        state.update(1)
    expected = sorted({assign_to_key_group(k, MAXP) for k in ("a", "b")})
    assert backend.snapshot_sync().key_groups() == expected


def test_empty_key_group_serializes_to_valid_blob() -> None:
    backend = make_backend()
    backend.get_state(ValueStateDescriptor("v"))
    data = backend.snapshot_sync().serialize_key_group(5)
    header, payloads = unpack_frames(KEYED_MAGIC, data)
    assert header["states"] == [] and payloads == []
    restored = make_backend()
    restored.restore_key_group(5, data)
    assert restored.state_size() == 0


def test_serialize_key_group_outside_range_raises() -> None:
    backend = make_backend(0, 2)
    with pytest.raises(StateError, match=r"^key group 100 is outside the range"):
        backend.snapshot_sync().serialize_key_group(100)


@pytest.mark.asyncio
async def test_serialize_all_while_processing_continues() -> None:
    rng = random.Random(3)
    backend, views, model = populated(rng, many_keys(300), 3000)
    expected = copy.deepcopy(model)
    snapshot = backend.snapshot_sync()
    done = anyio.Event()
    steps = 0

    async def process() -> None:
        nonlocal steps
        while not done.is_set():
            apply(backend, views, model, random_op(rng, [*KEYS, "late"]))
            steps += 1
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(process)
        chunks = await snapshot.serialize_all()
        done.set()
    assert steps > 0  # the serializer did yield to the processing task
    restored, restored_views = restore_fresh(chunks)
    assert_same(dump(restored, restored_views), expected)
    assert_same(dump(backend, views), model)


# --- Restore ---


def test_restore_before_registration_is_decoded_lazily() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key((1, "a"))
    state.update({"t": (1, 2)})
    snapshot = backend.snapshot_sync()
    chunks = {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
    restored = make_backend()
    restored.restore(chunks)  # before open() registers the descriptor
    assert restored.is_restored()
    assert restored.state_size() == 0  # still undecoded
    view = restored.get_state(ValueStateDescriptor("v"))
    restored.set_current_key((1, "a"))
    assert view.value() == {"t": (1, 2)}


def test_restore_after_registration_loads_directly() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("k")
    state.update(1)
    snapshot = backend.snapshot_sync()
    restored = make_backend()
    view = restored.get_state(ValueStateDescriptor("v"))
    restored.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    restored.set_current_key("k")
    assert view.value() == 1


def test_unregistered_restored_state_survives_the_next_snapshot() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("old"))
    backend.set_current_key("k")
    state.update(42)
    snapshot = backend.snapshot_sync()
    second = make_backend()
    second.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    second.get_state(ValueStateDescriptor("new"))  # "old" is never registered in this run
    snapshot = second.snapshot_sync()
    third = make_backend()
    third.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    third.set_current_key("k")
    assert third.get_state(ValueStateDescriptor("old")).value() == 42


def test_restored_under_another_kind_is_refused() -> None:
    backend = make_backend()
    backend.get_state(ValueStateDescriptor("s"))
    backend.set_current_key("k")
    backend.get_state(ValueStateDescriptor("s")).update(1)
    snapshot = backend.snapshot_sync()
    restored = make_backend()
    restored.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    with pytest.raises(
        StateError,
        match=r"^state 's' of operator 'op' was restored as value state but is registered "
        r"with a ListStateDescriptor$",
    ):
        restored.get_list_state(ListStateDescriptor("s"))
    # The data is still there for the right descriptor.
    restored.set_current_key("k")
    assert restored.get_state(ValueStateDescriptor("s")).value() == 1


def test_restore_key_group_outside_range_raises() -> None:
    backend = make_backend(0, 2)
    with pytest.raises(
        StateError,
        match=r"^cannot restore key group 64: operator 'op' owns key groups "
        r"KeyGroupRange\(start=0, end=63\)$",
    ):
        backend.restore_key_group(64, b"")


def test_restore_refuses_data_of_another_key_group_or_max_parallelism() -> None:
    backend = make_backend()
    backend.get_state(ValueStateDescriptor("v"))
    data = backend.snapshot_sync().serialize_key_group(3)
    with pytest.raises(StateError, match=r"^cannot restore key group 4 of operator 'op': .*3"):
        make_backend().restore_key_group(4, data)
    other = HeapKeyedStateBackend("op", KeyGroupRange(0, 255), 256)
    with pytest.raises(StateError, match=r"written with max_parallelism 128"):
        other.restore_key_group(3, data)


@pytest.mark.parametrize("data", [b"", b"XXXX\x00\x00\x00\x00", b"SLK1\xff\x00\x00\x00{}", "str"])
def test_restore_refuses_malformed_data(data: Any) -> None:
    with pytest.raises(StateError, match=r"^cannot restore key group 0 of operator 'op': "):
        make_backend().restore_key_group(0, data)


def test_restore_reports_undecodable_payload() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    key = next(k for k in range(10_000) if assign_to_key_group(k, MAXP) == 0)
    backend.set_current_key(key)
    state.update({1: 2})  # an int-keyed dict takes the tagged encoding
    data = backend.snapshot_sync().serialize_key_group(0)
    corrupt = data.replace(b'"$dict"', b'"$nope"')
    restored = make_backend()
    restored.restore_key_group(0, corrupt)
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot deserialize state 'v' of operator 'op': key group 0: "
        r"ValueError: unknown tag '\$nope'",
    ):
        restored.get_state(ValueStateDescriptor("v"))


class _CollectorWatch:
    """A serializer that records whether the garbage collector ran automatically while it
    decoded, and can fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.enabled_while_decoding: list[bool] = []

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        self.enabled_while_decoding.append(gc.isenabled())
        if self.fail:
            raise ValueError("cannot decode")
        return json.loads(data)


@pytest.mark.parametrize("registered_first", [False, True])
@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_restored_state_pauses_the_collector_and_restores_its_setting(
    registered_first: bool, enabled: bool
) -> None:
    watch = _CollectorWatch()
    descriptor = ValueStateDescriptor("v", serializer=watch)
    backend = make_backend()
    state = backend.get_state(descriptor)
    for key in range(50):
        backend.set_current_key(key)
        state.update(key)
    snapshot = backend.snapshot_sync()
    chunks = {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
    was_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        restored = make_backend()
        if registered_first:
            view = restored.get_state(ValueStateDescriptor("v", serializer=watch))
        restored.restore(chunks)
        if not registered_first:
            view = restored.get_state(ValueStateDescriptor("v", serializer=watch))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()
    assert watch.enabled_while_decoding and not any(watch.enabled_while_decoding)
    restored.set_current_key(7)
    assert view.value() == 7


def test_a_failed_decode_enables_the_collector_again() -> None:
    descriptor = ValueStateDescriptor("v", serializer=_CollectorWatch())
    backend = make_backend()
    backend.set_current_key(1)
    backend.get_state(descriptor).update(1)
    snapshot = backend.snapshot_sync()
    restored = make_backend()
    restored.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    assert gc.isenabled()
    with pytest.raises(StateSerializationError, match=r"ValueError: cannot decode"):
        restored.get_state(ValueStateDescriptor("v", serializer=_CollectorWatch(fail=True)))
    assert gc.isenabled()


# --- Rescaling ---


def _write_at(parallelism: int, keys: list[Any]) -> dict[int, bytes]:
    backends = [make_backend(i, parallelism) for i in range(parallelism)]
    states = [
        (b.get_state(ValueStateDescriptor("v")), b.get_list_state(ListStateDescriptor("l")))
        for b in backends
    ]
    for key in keys:
        owner = subtask_for_key_group(assign_to_key_group(key, MAXP), parallelism, MAXP)
        backends[owner].set_current_key(key)
        value, items = states[owner]
        value.update(key)
        items.add_all([key, key])
    chunks: dict[int, bytes] = {}
    for backend in backends:
        snapshot = backend.snapshot_sync()
        for kg in snapshot.key_groups():
            assert kg not in chunks
            chunks[kg] = snapshot.serialize_key_group(kg)
    return chunks


@pytest.mark.parametrize("new_parallelism", [1, 3, 4, 8])
def test_restore_at_different_parallelism(new_parallelism: int) -> None:
    keys = many_keys(2000)
    chunks = _write_at(4, keys)
    seen: list[Any] = []
    for subtask in range(new_parallelism):
        backend = make_backend(subtask, new_parallelism)
        backend.restore(chunks)  # every old subtask's chunks; it keeps only its own
        value = backend.get_state(ValueStateDescriptor("v"))
        items = backend.get_list_state(ListStateDescriptor("l"))
        owned = {k for k in keys if assign_to_key_group(k, MAXP) in backend.key_group_range}
        assert set(backend.keys("v")) == owned
        assert set(backend.keys("l")) == owned
        for key in backend.keys("v"):
            backend.set_current_key(key)
            assert_same(value.value(), key)
            assert_same(items.get(), [key, key])
        seen.extend(backend.keys("v"))
    assert len(seen) == len(keys)
    assert set(seen) == set(keys)


def test_keys_of_unknown_state_raises() -> None:
    with pytest.raises(StateError, match=r"^operator 'op' has no registered state 'nope'$"):
        make_backend().keys("nope")


Sale = namedtuple("Sale", "region amount")


@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_namedtuple_keys_and_values_restore_as_themselves_at_another_parallelism(
    new_parallelism: int,
) -> None:
    keys = [Sale(f"r{i}", i) for i in range(60)]
    chunks = _write_at(2, keys)
    seen: list[Any] = []
    for subtask in range(new_parallelism):
        backend = make_backend(subtask, new_parallelism)
        backend.restore(chunks)
        value = backend.get_state(ValueStateDescriptor("v"))
        for key in backend.keys("v"):
            assert type(key) is Sale
            backend.set_current_key(key)
            assert_same(value.value(), key)
            # The plain tuple equal to the key is the same key: same key group, same state.
            backend.set_current_key(tuple(key))
            assert_same(value.value(), key)
        seen.extend(backend.keys("v"))
    assert sorted(seen) == sorted(keys)


def test_keys_state_could_not_restore_are_refused_before_any_state_is_written() -> None:
    class Color(enum.IntEnum):
        RED = 1

    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in (Color.RED, float("nan")):
        with pytest.raises(TypeError, match=r"cannot be used"):
            backend.set_current_key(key)
    assert backend.get_current_key() is None
    with pytest.raises(StateError, match=r"^no current key"):
        state.value()
    assert backend.snapshot_sync().key_groups() == []


# --- Serialization in steps (a large key group does not hold the event loop) ---


def _serialize_in_steps(snapshot: KeyedStateSnapshot, between: Any) -> tuple[dict[int, bytes], int]:
    """Serialize every key group step by step, calling ``between()`` after each step."""
    chunks: dict[int, bytes] = {}
    steps = 0
    for kg in snapshot.key_groups():
        for _ in snapshot.serialize_key_group_steps(kg):
            steps += 1
            between()
        chunks[kg] = snapshot.serialize_key_group(kg)
    return chunks, steps


def test_serialization_in_steps_is_the_snapshot_while_records_change_the_state() -> None:
    rng = random.Random(11)
    keys = many_keys(900)
    backend, views, model = populated(rng, keys, 9000)
    expected = copy.deepcopy(model)
    stepped = backend.snapshot_sync()
    stepped.step_entries = 3
    new_keys = keys + [f"new-{i}" for i in range(100)]

    def records() -> None:
        for _ in range(5):
            apply(backend, views, model, random_op(rng, new_keys))

    chunks, steps = _serialize_in_steps(stepped, records)
    assert steps > 2 * len(chunks)  # large tables really went in several steps
    restored, restored_views = restore_fresh(chunks)
    assert_same(dump(restored, restored_views), expected)
    assert_same(dump(backend, views), model)


def test_serialization_in_steps_gives_the_bytes_of_one_go() -> None:
    rng = random.Random(12)
    backend, _, _ = populated(rng, many_keys(900), 9000)
    stepped, whole = backend.snapshot_sync(), backend.snapshot_sync()
    stepped.step_entries = 3
    chunks, steps = _serialize_in_steps(stepped, lambda: None)
    assert steps > 2 * len(chunks)
    assert chunks == {kg: whole.serialize_key_group(kg) for kg in whole.key_groups()}


def test_scalar_tables_go_in_chunks_of_step_entries_and_give_the_same_bytes() -> None:
    backend = make_backend()
    counts = backend.get_state(ValueStateDescriptor("count"))
    pairs = backend.get_state(ValueStateDescriptor("pair"))
    for key in range(5000):
        backend.set_current_key(key)
        counts.update(key)
        pairs.update((key, str(key)))
    stepped, whole = backend.snapshot_sync(), backend.snapshot_sync()
    stepped.step_entries = 10
    chunks, steps = _serialize_in_steps(stepped, lambda: None)
    # About 40 keys per key group and two states: 4 chunks plus listing the keys, each.
    assert steps >= len(chunks) * 2 * 5
    assert chunks == {kg: whole.serialize_key_group(kg) for kg in whole.key_groups()}


def test_scalar_tables_in_chunks_are_the_snapshot_while_keys_change() -> None:
    backend = make_backend()
    counts = backend.get_state(ValueStateDescriptor("count"))
    pairs = backend.get_state(ValueStateDescriptor("pair"))
    for key in range(5000):
        backend.set_current_key(key)
        counts.update(key)
        pairs.update((key, str(key)))
    stepped = backend.snapshot_sync()
    stepped.step_entries = 10
    seen: dict[Any, int] = {}
    rng = random.Random(5)

    def records() -> None:
        # Overwrite, delete and insert keys between steps.
        key = rng.randrange(6000)
        seen[key] = seen.get(key, 0) + 1
        backend.set_current_key(key)
        if key % 3 == 0:
            counts.clear()
        else:
            counts.update(-key)
        pairs.update((0, "changed"))

    chunks, _ = _serialize_in_steps(stepped, records)
    assert len(seen) > 100
    restored = make_backend()
    restored.restore(chunks)
    restored_counts = restored.get_state(ValueStateDescriptor("count"))
    restored_pairs = restored.get_state(ValueStateDescriptor("pair"))
    for key in range(5000):
        restored.set_current_key(key)
        assert restored_counts.value() == key
        assert restored_pairs.value() == (key, str(key))


def test_tables_whose_chunks_differ_in_shape_are_written_in_one_piece() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    # Ints, then tuples, then ints beyond 64 bits: no single fast mode for the whole table.
    for key in [*range(300), *((i, "t") for i in range(300)), *(2**70 + i for i in range(300))]:
        backend.set_current_key(key)
        state.update(1)
    stepped, whole = backend.snapshot_sync(), backend.snapshot_sync()
    stepped.step_entries = 2
    chunks, _ = _serialize_in_steps(stepped, lambda: None)
    assert chunks == {kg: whole.serialize_key_group(kg) for kg in whole.key_groups()}


def test_a_key_group_under_way_continues_where_it_stopped() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(2000):
        backend.set_current_key(key)
        state.update(key)
    stepped, whole = backend.snapshot_sync(), backend.snapshot_sync()
    stepped.step_entries = 4
    kg = stepped.key_groups()[0]
    steps = stepped.serialize_key_group_steps(kg)
    next(steps)
    next(steps)
    assert stepped.serialize_key_group_steps(kg) is steps
    # serialize_key_group finishes what the steps began.
    data = stepped.serialize_key_group(kg)
    assert data == whole.serialize_key_group(kg)
    assert list(stepped.serialize_key_group_steps(kg)) == []
    assert stepped.serialize_key_group(kg) is data


def test_release_of_a_key_group_under_way_stops_recording_for_it() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(2000):
        backend.set_current_key(key)
        state.update(key)
    snapshot = backend.snapshot_sync()
    snapshot.step_entries = 4
    kg = snapshot.key_groups()[0]
    next(snapshot.serialize_key_group_steps(kg))
    snapshot.release()
    table = backend._tables["v"]
    index = kg - backend.key_group_range.start
    assert table.writable[index] is table.tables[index]  # the fast path again
    assert snapshot._in_progress == {}


def test_steps_refuse_a_key_group_outside_the_range_at_once() -> None:
    backend = make_backend(0, 2)
    with pytest.raises(StateError, match=r"^key group 100 is outside the range"):
        backend.snapshot_sync().serialize_key_group_steps(100)
