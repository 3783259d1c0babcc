"""The keyed state backend takes a batch as it comes: a list (it computes keys and key
groups itself) or a ``KeyedBatch`` whose keys and key groups the key_by partitioner already
computed (it uses them, checks only their bounds, and hashes nothing)."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import pytest

from streamlet.state import ValueStateDescriptor, key_group_memo
from streamlet.state.errors import StateError
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import (
    KeyGroupRange,
    assign_to_key_group,
    key_group_range_for_subtask,
)
from streamlet.state.keyed_batch import KeyedBatch

V = ValueStateDescriptor("v")
key_of = itemgetter(0)


def _sum(a: tuple[Any, int], b: tuple[Any, int]) -> tuple[Any, int]:
    return (a[0], a[1] + b[1])


def _keyed(records: list[Any], kg_range: KeyGroupRange) -> KeyedBatch:
    keys = [key_of(r) for r in records]
    return KeyedBatch(records, keys, [assign_to_key_group(k, 128) - kg_range.start for k in keys])


def _subtask_records(kg_range: KeyGroupRange, n: int = 600) -> list[tuple[int, int]]:
    return [(k % 97, 1) for k in range(n) if assign_to_key_group(k % 97, 128) in kg_range]


@pytest.fixture
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("a KeyedBatch brings its key groups: nothing may hash")

    monkeypatch.setattr(key_group_memo, "assign_to_key_groups", refuse)
    monkeypatch.setattr(key_group_memo, "assign_to_key_group", refuse)


def test_a_keyed_batch_folds_like_the_list_it_carries(no_hashing: None) -> None:
    kg_range = key_group_range_for_subtask(1, 3, 128)
    records = _subtask_records(kg_range)
    batch = _keyed(records, kg_range)
    from_batch = HeapKeyedStateBackend("op", kg_range, 128)
    out = from_batch.reduce_values(V, batch, key_of, _sum)
    expected: dict[Any, int] = {}
    for key, _ in records:
        expected[key] = expected.get(key, 0) + 1
    assert out[-1][1] == expected[out[-1][0]]
    for key, count in expected.items():
        index = assign_to_key_group(key, 128) - kg_range.start
        assert from_batch._tables["v"].tables[index][key] == (key, count)


def test_each_record_makes_the_carried_key_current(no_hashing: None) -> None:
    kg_range = key_group_range_for_subtask(0, 2, 128)
    records = _subtask_records(kg_range, 50)
    backend = HeapKeyedStateBackend("op", kg_range, 128)
    seen = []
    for record in backend.each_record(_keyed(records, kg_range), key_of):
        seen.append((record, backend.get_current_key(), backend.current_key_group))
    assert seen == [(r, r[0], assign_to_key_group(r[0], 128)) for r in records]


def test_an_index_outside_the_range_is_refused_before_anything_is_folded() -> None:
    kg_range = KeyGroupRange(0, 9)
    backend = HeapKeyedStateBackend("op", kg_range, 128)
    bad = KeyedBatch([("a", 1), ("b", 1)], ["a", "b"], [0, 10])
    with pytest.raises(StateError, match="key 'b' belongs to key group"):
        backend.reduce_values(V, bad, key_of, _sum)
    assert backend.state_size() == 0
    with pytest.raises(StateError, match="key 'a' belongs to key group"):
        list(backend.each_record(KeyedBatch([("a", 1)], ["a"], [-1]), key_of))


def test_a_keyed_batch_slices_into_keyed_batches() -> None:
    batch = KeyedBatch([("a", 1), ("b", 2), ("c", 3)], ["a", "b", "c"], [4, 5, 6])
    head = batch[:2]
    assert isinstance(head, KeyedBatch)
    assert (head.records, head.keys, head.indexes) == ([("a", 1), ("b", 2)], ["a", "b"], [4, 5])
    assert batch[2] == ("c", 3)
    assert list(batch) == batch.records and len(batch) == 3


def test_the_per_record_memo_path_counts_its_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    # A memo that holds two thirds of the keys pays: hits found record by record in the
    # backend's own loop must count, or only the misses would, and it would step aside.
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128, key_cache_size=1000)
    keys = list(range(1500))
    for _ in range(10):
        for start in range(0, len(keys), 250):
            backend.reduce_values(V, [(k, 1) for k in keys[start : start + 250]], key_of, _sum)
    assert not backend._memo.bypassed
    backend.set_current_key(1499)
    assert backend.get_state(V).value() == (1499, 10)
