"""The direct table access used by keyed reduce honours copy-on-write snapshots."""

from __future__ import annotations

import pytest

from streamlet.state import ValueStateDescriptor
from streamlet.state.errors import StateError
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import KeyGroupRange


def _write(backend: HeapKeyedStateBackend, key: object, value: object) -> None:
    access = backend.value_table_access(ValueStateDescriptor("v"))
    index = access.cached_index(key)
    if index is None:
        index = access.assign(key)
    table = access.tables[index]
    if table is None:
        table = access.touch(index, key)
    table[key] = value


def test_writes_through_access_are_seen_by_the_state_view() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    _write(backend, "a", 1)
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key("a")
    assert state.value() == 1


@pytest.mark.asyncio
async def test_a_taken_snapshot_does_not_see_later_writes() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    for key in range(100):
        _write(backend, key, key)
    snapshot = backend.snapshot_sync()
    for key in range(100):
        _write(backend, key, -1)
    _write(backend, "new", 5)
    restored = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    restored.restore(await snapshot.serialize_all())
    state = restored.get_state(ValueStateDescriptor("v"))
    for key in range(100):
        restored.set_current_key(key)
        assert state.value() == key
    restored.set_current_key("new")
    assert state.value() is None


def test_a_foreign_key_is_refused() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 0), 128)
    access = backend.value_table_access(ValueStateDescriptor("v"))
    # The backend owns key group 0 only, so most of these keys belong elsewhere.
    with pytest.raises(StateError, match="not in the range"):
        for key in range(1000):
            access.assign(key)
