from __future__ import annotations

import pytest

from streamlet.checkpoints import (
    CheckpointKind,
    CheckpointMetadata,
    CompletedCheckpoint,
    CompletedCheckpointStore,
)


def cp(checkpoint_id: int, kind=CheckpointKind.CHECKPOINT) -> CompletedCheckpoint:
    meta = CheckpointMetadata(checkpoint_id, kind, "job", 1, 2, 128)
    return CompletedCheckpoint(meta, f"memory://job/chk-{checkpoint_id}")


def ids(cps):
    return [c.checkpoint_id for c in cps]


def test_bounded_lifo_drops_oldest():
    store = CompletedCheckpointStore(2)
    assert store.add(cp(1)) == []
    assert store.add(cp(2)) == []
    assert ids(store.add(cp(3))) == [1]
    assert ids(store.all()) == [2, 3]
    assert store.latest().checkpoint_id == 3
    assert len(store) == 2


def test_empty_store():
    store = CompletedCheckpointStore()
    assert store.latest() is None and store.all() == []


def test_savepoints_are_refused():
    with pytest.raises(ValueError, match=r"^savepoints are not kept in the completed checkpoint"):
        CompletedCheckpointStore().add(cp(1, CheckpointKind.SAVEPOINT))


def test_ids_must_increase():
    store = CompletedCheckpointStore()
    store.add(cp(5))
    with pytest.raises(ValueError, match=r"increasing id order, got 4 after 5$"):
        store.add(cp(4))


def test_pinned_checkpoint_is_not_dropped_until_released():
    store = CompletedCheckpointStore(1)
    store.add(cp(1))
    store.retain(1)
    store.retain(1)
    assert store.in_use(1)
    assert store.add(cp(2)) == []
    assert ids(store.all()) == [2]
    assert store.get(1) is not None
    assert store.release(1) == []
    assert ids(store.release(1)) == [1]
    assert not store.in_use(1)
    with pytest.raises(KeyError):
        store.release(1)


def test_release_of_still_retained_checkpoint_discards_nothing():
    store = CompletedCheckpointStore(2)
    store.add(cp(1))
    store.retain(1)
    assert store.release(1) == []
    assert ids(store.add(cp(2))) == []
    assert ids(store.add(cp(3))) == [1]


def test_retain_unknown_raises():
    with pytest.raises(KeyError):
        CompletedCheckpointStore().retain(9)


def test_max_retained_validated():
    with pytest.raises(ValueError, match=r"^max retained checkpoints must be >= 1, got 0$"):
        CompletedCheckpointStore(0)
