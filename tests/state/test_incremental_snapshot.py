"""Incremental keyed snapshots: change tracking, "put"/"remove" entries, base + changes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamlet.state import (
    HeapKeyedStateBackend,
    StateError,
    ValueStateDescriptor,
    key_group_range_for_subtask,
)
from streamlet.state.snapshot import KEYED_MAGIC, KeyedStateSnapshot, unpack_frames
from tests.state._state_model import KEYS, NAMES, apply, assert_same, dump, random_op, register

MAXP = 32


def make_backend(subtask: int = 0, parallelism: int = 1) -> HeapKeyedStateBackend:
    backend = HeapKeyedStateBackend(
        "op", key_group_range_for_subtask(subtask, parallelism, MAXP), MAXP
    )
    backend.enable_change_tracking()
    return backend


def blobs(snapshot: KeyedStateSnapshot) -> dict[int, bytes]:
    return {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}


def restore(
    chain: list[dict[int, bytes]], subtask: int = 0, parallelism: int = 1
) -> tuple[HeapKeyedStateBackend, dict[str, Any]]:
    backend = make_backend(subtask, parallelism)
    backend.restore(chain[0])
    changes: dict[int, list[bytes]] = {}
    for piece in chain[1:]:
        for kg, blob in piece.items():
            changes.setdefault(kg, []).append(blob)
    backend.restore_changes(changes)
    return backend, register(backend)


@pytest.mark.parametrize("seed", range(4))
def test_base_plus_changes_restores_the_state_of_the_last_snapshot(seed: int) -> None:
    rng = random.Random(seed)
    backend = make_backend()
    views = register(backend)
    model: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}
    for _ in range(300):
        apply(backend, views, model, random_op(rng, KEYS))
    chain = [blobs(backend.snapshot_sync(1))]
    backend.notify_checkpoint_complete(1)
    for checkpoint_id in range(2, 8):
        for _ in range(40):
            apply(backend, views, model, random_op(rng, KEYS))
        snapshot = backend.snapshot_sync(checkpoint_id, incremental=True)
        expected = dump(backend, views)
        # Changes after the cut never reach the snapshot.
        for _ in range(40):
            apply(backend, views, model, random_op(rng, KEYS))
        chain.append(blobs(snapshot))
        backend.notify_checkpoint_complete(checkpoint_id)
        restored, restored_views = restore(chain)
        assert_same(dump(restored, restored_views), expected)


def test_a_change_writes_only_the_keys_touched_since_the_base() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(1000):
        backend.set_current_key(key)
        state.update(key)
    full = blobs(backend.snapshot_sync(1))
    backend.notify_checkpoint_complete(1)
    for key in (3, 4):
        backend.set_current_key(key)
        state.update(-key)
    backend.set_current_key(5)
    state.clear()
    delta = blobs(backend.snapshot_sync(2, incremental=True))
    assert sum(map(len, delta.values())) * 20 < sum(map(len, full.values()))
    ops = []
    for blob in delta.values():
        header, _ = unpack_frames(KEYED_MAGIC, blob)
        assert header["format"] == 2
        ops += [entry[4] for entry in header["states"]]
    assert sorted(ops) == ["put", "put", "remove"] or sorted(ops) == ["put", "remove"]
    restored = make_backend()
    restored.restore(full)
    restored.restore_changes({kg: [blob] for kg, blob in delta.items()})
    view = restored.get_state(ValueStateDescriptor("v"))
    got = {}
    for key in range(1000):
        restored.set_current_key(key)
        got[key] = view.value()
    assert got == {k: (None if k == 5 else -k if k in (3, 4) else k) for k in range(1000)}


def test_changes_of_an_unconfirmed_snapshot_go_into_the_next_one() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("a")
    state.update(1)
    base = blobs(backend.snapshot_sync(1))
    backend.notify_checkpoint_complete(1)
    backend.set_current_key("b")
    state.update(2)
    backend.snapshot_sync(2, incremental=True).release()  # checkpoint 2 aborted
    backend.set_current_key("c")
    state.update(3)
    delta = blobs(backend.snapshot_sync(3, incremental=True))
    restored = make_backend()
    restored.restore(base)
    restored.restore_changes({kg: [blob] for kg, blob in delta.items()})
    view = restored.get_state(ValueStateDescriptor("v"))
    values = {}
    for key in "abc":
        restored.set_current_key(key)
        values[key] = view.value()
    assert values == {"a": 1, "b": 2, "c": 3}


def test_restored_changes_of_an_unregistered_state_survive_a_full_snapshot() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(50):
        backend.set_current_key(key)
        state.update(key)
    base = blobs(backend.snapshot_sync(1))
    backend.notify_checkpoint_complete(1)
    backend.set_current_key(7)
    state.update(700)
    backend.set_current_key(8)
    state.clear()
    delta = blobs(backend.snapshot_sync(2, incremental=True))
    middle = make_backend()
    middle.restore(base)
    middle.restore_changes({kg: [blob] for kg, blob in delta.items()})
    again = blobs(middle.snapshot_sync(1))  # the state was never registered
    final = make_backend()
    final.restore(again)
    view = final.get_state(ValueStateDescriptor("v"))
    final.set_current_key(7)
    assert view.value() == 700
    final.set_current_key(8)
    assert view.value() is None
    assert len(final.keys("v")) == 49


def test_restore_at_another_parallelism_from_base_and_changes() -> None:
    rng = random.Random(7)
    backend = make_backend()
    views = register(backend)
    model: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}
    for _ in range(300):
        apply(backend, views, model, random_op(rng, KEYS))
    chain = [blobs(backend.snapshot_sync(1))]
    backend.notify_checkpoint_complete(1)
    for _ in range(60):
        apply(backend, views, model, random_op(rng, KEYS))
    chain.append(blobs(backend.snapshot_sync(2, incremental=True)))
    expected = dump(backend, views)
    merged: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}
    for subtask in range(3):
        part, part_views = restore(chain, subtask, 3)
        for name, entries in dump(part, part_views).items():
            merged[name].update(entries)
    assert_same(merged, expected)


def test_an_incremental_snapshot_needs_change_tracking() -> None:
    backend = HeapKeyedStateBackend("op", key_group_range_for_subtask(0, 1, MAXP), MAXP)
    with pytest.raises(StateError, match="enable_change_tracking"):
        backend.snapshot_sync(1, incremental=True)


def test_tracking_routes_every_access_through_the_recording_path() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("k")
    state.value()  # a read counts: the value may be mutated in place
    snapshot = backend.snapshot_sync(1, incremental=True)
    assert snapshot.key_groups() == [backend.current_key_group]


def test_a_value_mutated_in_place_after_the_cut_does_not_reach_the_snapshot() -> None:
    backend = make_backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("a")
    state.update([1])
    backend.set_current_key("b")
    state.update((1, [2]))
    base = blobs(backend.snapshot_sync(1))
    backend.notify_checkpoint_complete(1)
    backend.set_current_key("a")
    state.update([1, 2])
    backend.set_current_key("b")
    state.update((1, [3]))
    snapshot = backend.snapshot_sync(2, incremental=True)
    backend.set_current_key("a")
    state.value().append(99)  # in place, after the cut
    backend.set_current_key("b")
    state.value()[1].append(99)
    restored = make_backend()
    restored.restore(base)
    restored.restore_changes({kg: [blob] for kg, blob in blobs(snapshot).items()})
    view = restored.get_state(ValueStateDescriptor("v"))
    restored.set_current_key("a")
    assert view.value() == [1, 2]
    restored.set_current_key("b")
    assert view.value() == (1, [3])
