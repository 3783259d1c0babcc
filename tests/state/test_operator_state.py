"""Operator state: list (even split), union list and broadcast state across restores."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    OperatorStateBackend,
    PickleSerializer,
    StateError,
    StateSerializationError,
    ValueStateDescriptor,
)
from streamlet.state.operator_state import ReadOnlyBroadcastState, even_split
from tests.state._state_model import assert_same


def _write(per_subtask: list[list[Any]], mode: str = "list") -> list[bytes]:
    """Snapshot one operator at parallelism len(per_subtask), subtask i holding its list."""
    blobs = []
    for values in per_subtask:
        backend = OperatorStateBackend("src")
        descriptor = ListStateDescriptor("items")
        if mode == "list":
            state = backend.get_list_state(descriptor)
        else:
            state = backend.get_union_list_state(descriptor)
        state.add_all(values)
        blobs.append(backend.snapshot_sync().serialize())
    return blobs


def _restored(blobs: list[bytes], parallelism: int, mode: str = "list") -> list[list[Any]]:
    out = []
    for subtask in range(parallelism):
        backend = OperatorStateBackend("src")
        backend.restore(blobs, subtask, parallelism)
        assert backend.is_restored()
        descriptor = ListStateDescriptor("items")
        if mode == "list":
            out.append(list(backend.get_list_state(descriptor).get()))
        else:
            out.append(list(backend.get_union_list_state(descriptor).get()))
    return out


def test_list_state_semantics() -> None:
    backend = OperatorStateBackend("op")
    state = backend.get_list_state(ListStateDescriptor("l"))
    assert state.get() == []
    state.add(1)
    state.add_all([2, 3])
    assert state.get() == [1, 2, 3]
    state.update([4])
    assert state.get() == [4]
    state.clear()
    assert state.get() == []
    with pytest.raises(ValueError, match=r"^list state 'l' cannot hold None: add\(\) got None$"):
        state.add(None)
    with pytest.raises(ValueError, match=r"^list state 'l' cannot hold None: update\(\) got"):
        state.update([1, None])
    assert not backend.is_restored()


def test_even_split_is_contiguous_and_near_equal() -> None:
    items = list(range(10))
    parts = [even_split(items, i, 4) for i in range(4)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert [even_split(items, i, 12) for i in range(12)][9:] == [[9], [], []]
    assert even_split([], 0, 3) == []


@pytest.mark.parametrize("new_parallelism", [1, 2, 3, 4, 7])
def test_list_state_restores_by_even_split(new_parallelism: int) -> None:
    old = [[(0, i) for i in range(5)], [(1, i) for i in range(2)], [], [(3, 0)]]
    everything = [x for part in old for x in part]
    parts = _restored(_write(old), new_parallelism)
    assert [x for part in parts for x in part] == everything  # order kept, nothing lost
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first parts take the extra elements
    assert all(type(x) is tuple for part in parts for x in part)


@pytest.mark.parametrize("new_parallelism", [1, 3, 5])
def test_union_list_state_gives_every_subtask_everything(new_parallelism: int) -> None:
    old = [["a", "b"], ["c"], []]
    parts = _restored(_write(old, "union"), new_parallelism, "union")
    assert parts == [["a", "b", "c"]] * new_parallelism


def test_broadcast_state_semantics_and_restore() -> None:
    blobs = []
    for _ in range(3):
        backend = OperatorStateBackend("bc")
        state = backend.get_broadcast_state(MapStateDescriptor("rules"))
        state.put("r1", {"limit": 5})
        state.put_all({("r", 2): [1, 2], 3: None})
        state.remove("missing")
        assert state.contains(3) and 3 in state and not state.is_empty()
        assert state.get("r1") == {"limit": 5}
        blobs.append(backend.snapshot_sync().serialize())
    for subtask in range(5):
        backend = OperatorStateBackend("bc")
        backend.restore(blobs, subtask, 5)
        state = backend.get_broadcast_state(MapStateDescriptor("rules"))
        assert_same(dict(state.items()), {"r1": {"limit": 5}, ("r", 2): [1, 2], 3: None})
        state.clear()
        assert state.is_empty() and state.keys() == []


def test_broadcast_state_takes_copy_of_old_subtask_modulo() -> None:
    blobs = []
    for i in range(2):
        backend = OperatorStateBackend("bc")
        backend.get_broadcast_state(MapStateDescriptor("m")).put("from", i)
        blobs.append(backend.snapshot_sync().serialize())
    got = []
    for subtask in range(4):
        backend = OperatorStateBackend("bc")
        backend.restore(blobs, subtask, 4)
        got.append(backend.get_broadcast_state(MapStateDescriptor("m")).get("from"))
    assert got == [0, 1, 0, 1]


def test_snapshot_is_a_copy() -> None:
    backend = OperatorStateBackend("op")
    state = backend.get_list_state(ListStateDescriptor("l"))
    state.add([1])
    snapshot = backend.snapshot_sync()
    state.get()[0].append(2)
    state.add([3])
    restored = OperatorStateBackend("op")
    restored.restore([snapshot.serialize()], 0, 1)
    assert restored.get_list_state(ListStateDescriptor("l")).get() == [[1]]


def test_restore_after_registration_replaces_contents() -> None:
    (blob,) = _write([[1, 2]])
    backend = OperatorStateBackend("src")
    state = backend.get_list_state(ListStateDescriptor("items"))
    backend.restore([blob], 0, 1)
    assert state.get() == [1, 2]


def test_unregistered_state_survives_next_snapshot() -> None:
    (blob,) = _write([[1, 2, 3]])
    second = OperatorStateBackend("src")
    second.restore([blob], 1, 2)  # gets [3]
    blob2 = second.snapshot_sync().serialize()
    third = OperatorStateBackend("src")
    third.restore([blob2], 0, 1)
    assert third.get_list_state(ListStateDescriptor("items")).get() == [3]


def test_custom_serializer_per_element() -> None:
    backend = OperatorStateBackend("op")
    descriptor = ListStateDescriptor("l", serializer=PickleSerializer())
    backend.get_list_state(descriptor).add_all([{1, 2}, frozenset({3})])
    blob = backend.snapshot_sync().serialize()
    halves = []
    for subtask in range(2):
        restored = OperatorStateBackend("op")
        restored.restore([blob], subtask, 2)
        halves.append(restored.get_list_state(descriptor).get())
    assert halves == [[{1, 2}], [frozenset({3})]]


def test_same_name_other_mode_is_refused() -> None:
    backend = OperatorStateBackend("op")
    backend.get_list_state(ListStateDescriptor("s"))
    with pytest.raises(
        StateError,
        match=r"^operator state 's' of operator 'op' is registered as list state; "
        r"it cannot also be union list state$",
    ):
        backend.get_union_list_state(ListStateDescriptor("s"))
    assert backend.get_list_state(ListStateDescriptor("s")) is backend.get_list_state(
        ListStateDescriptor("s")
    )


def test_restored_as_other_mode_is_refused() -> None:
    blobs = _write([[1]], "union")
    backend = OperatorStateBackend("src")
    backend.restore(blobs, 0, 1)
    with pytest.raises(
        StateError,
        match=r"^operator state 'items' of operator 'src' was restored as union list state "
        r"but is registered as list state$",
    ):
        backend.get_list_state(ListStateDescriptor("items"))


def test_wrong_descriptor_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^operator broadcast state needs a MapStateDescriptor"):
        OperatorStateBackend("op").get_broadcast_state(ValueStateDescriptor("v"))  # type: ignore[arg-type]


def test_unserializable_element_names_operator_and_state() -> None:
    backend = OperatorStateBackend("sink-1")
    backend.get_list_state(ListStateDescriptor("txns")).add(object())
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot serialize state 'txns' of operator 'sink-1': type object is not "
        r"supported by the default JSON serializer",
    ):
        backend.snapshot_sync().serialize()


@pytest.mark.parametrize(
    ("index", "parallelism", "message"),
    [
        (0, 0, r"^parallelism must be an int >= 1, got 0$"),
        (2, 2, r"^subtask_index must be in \[0, 2\), got 2$"),
        (-1, 2, r"^subtask_index must be in \[0, 2\), got -1$"),
    ],
)
def test_restore_argument_validation(index: int, parallelism: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OperatorStateBackend("op").restore([], index, parallelism)


def test_restore_refuses_malformed_data() -> None:
    with pytest.raises(
        StateError, match=r"^cannot restore operator state of operator 'op' from old subtask 1: "
    ):
        OperatorStateBackend("op").restore([_write([[1]])[0], b"garbage"], 0, 1)


def test_has_state() -> None:
    backend = OperatorStateBackend("op")
    assert not backend.has_state()
    backend.get_list_state(ListStateDescriptor("l"))
    assert backend.has_state()
    restored = OperatorStateBackend("op")
    restored.restore(_write([[1]]), 0, 1)
    assert restored.has_state()  # restored, not registered yet: still written back


def test_restore_with_another_serializer_is_refused() -> None:
    backend = OperatorStateBackend("op")
    backend.get_list_state(ListStateDescriptor("l", serializer=PickleSerializer())).add(1)
    restored = OperatorStateBackend("op")
    restored.restore([backend.snapshot_sync().serialize()], 0, 1)
    with pytest.raises(
        StateSerializationError,
        match=r"^cannot deserialize state 'l' of operator 'op': restored data was written "
        r"with serializer 'pickle', but the descriptor uses 'json'$",
    ):
        restored.get_list_state(ListStateDescriptor("l"))


def test_restore_from_nothing_is_restored_and_empty() -> None:
    backend = OperatorStateBackend("op")
    backend.restore([], 0, 3)
    assert backend.is_restored()
    assert backend.get_list_state(ListStateDescriptor("l")).get() == []
    assert backend.state_size() == 0


def test_broadcast_state_is_written_by_subtask_0_only_and_restores_everywhere() -> None:
    blobs = []
    for subtask in range(3):
        backend = OperatorStateBackend("bc", subtask)
        backend.get_broadcast_state(MapStateDescriptor("rules")).put("r", 1)
        backend.get_list_state(ListStateDescriptor("l")).add(subtask)
        blobs.append(backend.snapshot_sync().serialize())
    # Only subtask 0's snapshot holds the map: the others are smaller by its payload.
    assert len(blobs[1]) < len(blobs[0]) and len(blobs[1]) == len(blobs[2])
    for new_parallelism in (1, 2, 5):
        for subtask in range(new_parallelism):
            backend = OperatorStateBackend("bc", subtask)
            backend.restore(blobs, subtask, new_parallelism)
            assert backend.get_broadcast_state(MapStateDescriptor("rules")).items() == [("r", 1)]


def test_broadcast_state_restored_but_unclaimed_is_rewritten_by_subtask_0_only() -> None:
    backend = OperatorStateBackend("bc")
    backend.get_broadcast_state(MapStateDescriptor("rules")).put("r", 1)
    blob = backend.snapshot_sync().serialize()
    first, second = OperatorStateBackend("bc", 0), OperatorStateBackend("bc", 1)
    first.restore([blob], 0, 2)
    second.restore([blob], 1, 2)
    assert first.has_state() and not second.has_state()
    again = [first.snapshot_sync().serialize(), second.snapshot_sync().serialize()]
    restored = OperatorStateBackend("bc", 1)
    restored.restore(again, 1, 3)
    assert restored.get_broadcast_state(MapStateDescriptor("rules")).get("r") == 1


def test_read_only_broadcast_state_reads_live_and_refuses_writes() -> None:
    state = OperatorStateBackend("bc").get_broadcast_state(MapStateDescriptor("rules"))
    view = ReadOnlyBroadcastState(state)
    state.put("a", 1)
    assert view.get("a") == 1 and view.contains("a") and "a" in view and len(view) == 1
    assert view.items() == [("a", 1)] and view.keys() == ["a"] and view.values() == [1]
    assert list(view) == ["a"] and not view.is_empty()
    for write in (
        lambda: view.put("b", 2),
        lambda: view.put_all({"b": 2}),
        lambda: view.remove("a"),
        view.clear,
    ):
        with pytest.raises(StateError, match=r"read-only.*process_broadcast_element"):
            write()
    assert state.items() == [("a", 1)]
