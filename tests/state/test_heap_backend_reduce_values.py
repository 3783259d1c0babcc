"""``HeapKeyedStateBackend.reduce_values``, keyed reduce's per-batch state access, keeps the
rules of every other access: the state views see its writes, taken snapshots do not, and a
key of another subtask is refused."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import pytest

from streamlet.state import ValueStateDescriptor
from streamlet.state.errors import StateError
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import KeyGroupRange

V = ValueStateDescriptor("v")
key_of = itemgetter(0)


def _replace(old: Any, new: Any) -> Any:
    return new


def _write(backend: HeapKeyedStateBackend, key: object, value: object) -> None:
    backend.reduce_values(V, [(key, value)], key_of, _replace)


def _value(backend: HeapKeyedStateBackend, key: object) -> Any:
    backend.set_current_key(key)
    return backend.get_state(V).value()


def _sum(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def test_writes_through_reduce_values_are_seen_by_the_state_view() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    _write(backend, "a", 1)
    assert _value(backend, "a") == ("a", 1)


def test_each_value_is_folded_into_its_key_in_order() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    batch = [("a", 1), ("b", 10), ("a", 2), ("a", 3), ("b", 20)]
    out = backend.reduce_values(V, batch, key_of, _sum)
    assert out == [("a", 1), ("b", 10), ("a", 3), ("a", 6), ("b", 30)]
    assert backend.reduce_values(V, [("a", 4)], key_of, _sum) == [("a", 10)]
    assert _value(backend, "b") == ("b", 30)


def test_the_current_key_is_left_as_it_was() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    backend.set_current_key("x")
    backend.reduce_values(V, [("a", 1)], key_of, _sum)
    assert backend.get_current_key() == "x"


def test_a_none_result_reads_as_no_value_so_the_next_value_starts_afresh() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    out = backend.reduce_values(V, [("a", 1), ("a", 2), ("a", 3)], key_of, lambda a, b: None)
    assert out == [("a", 1), None, ("a", 3)]
    backend.reduce_values(V, [("b", 1), ("b", 2)], key_of, lambda a, b: None)
    assert _value(backend, "b") is None


def test_a_descriptor_with_a_default_is_refused() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    with pytest.raises(
        ValueError, match=r"^reduce_values\(\) needs a ValueStateDescriptor without"
    ):
        backend.reduce_values(ValueStateDescriptor("d", default_value=0), [("a", 1)], key_of, _sum)


@pytest.mark.asyncio
async def test_a_taken_snapshot_does_not_see_later_writes() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    backend.reduce_values(V, [(key, key) for key in range(100)], key_of, _replace)
    snapshot = backend.snapshot_sync()
    backend.reduce_values(V, [(key, -1) for key in range(100)], key_of, _replace)
    _write(backend, "new", 5)
    restored = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    restored.restore(await snapshot.serialize_all())
    for key in range(100):
        assert _value(restored, key) == (key, key)
    assert _value(restored, "new") is None
    for key in range(100):
        assert _value(backend, key) == (key, -1)


def test_a_foreign_key_is_refused() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 0), 128)
    # The backend owns key group 0 only, so most of these keys belong elsewhere.
    with pytest.raises(StateError, match="not in the range"):
        backend.reduce_values(V, [(key, 1) for key in range(1000)], key_of, _sum)


def test_an_unhashable_key_gets_the_stable_hash_error() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    with pytest.raises(TypeError, match=r"^key \[1, 2\] of type list cannot be used: lists"):
        backend.reduce_values(V, [([1, 2], 1)], key_of, _sum)
