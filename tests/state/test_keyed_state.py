"""Semantics of the keyed state views and of the heap backend's current key."""

from __future__ import annotations

import pytest

from streamlet.state import (
    AggregateFunction,
    AggregatingStateDescriptor,
    HeapKeyedStateBackend,
    KeyGroupRange,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateError,
    ValueStateDescriptor,
    assign_to_key_group,
    key_group_range_for_subtask,
)


class Average(AggregateFunction):
    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: int, accumulator: list[int]) -> list[int]:
        accumulator[0] += value
        accumulator[1] += 1
        return accumulator

    def get_result(self, accumulator: list[int]) -> float:
        return accumulator[0] / accumulator[1]


def make_backend(uid: str = "op", subtask: int = 0, parallelism: int = 1) -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(uid, key_group_range_for_subtask(subtask, parallelism, 128), 128)


@pytest.fixture
def backend() -> HeapKeyedStateBackend:
    return make_backend()


# --- ValueState ---


def test_value_state_empty_reads_default(backend: HeapKeyedStateBackend) -> None:
    plain = backend.get_state(ValueStateDescriptor("plain"))
    counted = backend.get_state(ValueStateDescriptor("counted", default_value=0))
    backend.set_current_key("a")
    assert plain.value() is None
    assert counted.value() == 0


def test_value_state_update_and_clear(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_state(ValueStateDescriptor("v", default_value=-1))
    backend.set_current_key("a")
    state.update(5)
    assert state.value() == 5
    state.clear()
    assert state.value() == -1
    state.update(7)
    state.update(None)  # None clears, as in Flink
    assert state.value() == -1
    assert backend.state_size() == 0


def test_value_state_mutable_default_is_not_shared(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_state(ValueStateDescriptor("v", default_value=[]))
    backend.set_current_key("a")
    state.value().append(1)
    backend.set_current_key("b")
    assert state.value() == []
    state.update([2])
    assert state.value() == [2]


def test_value_state_falsy_values_are_kept(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_state(ValueStateDescriptor("v", default_value="default"))
    value: object
    for value in (0, "", False, 0.0, [], ()):
        backend.set_current_key(repr(value))
        state.update(value)
        assert state.value() == value and type(state.value()) is type(value)


# --- ListState ---


def test_list_state_semantics(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_list_state(ListStateDescriptor("l"))
    backend.set_current_key(1)
    assert state.get() == []
    state.add("x")
    state.add_all(["y", "z"])
    assert list(state.get()) == ["x", "y", "z"]
    state.update([1, 2])
    assert state.get() == [1, 2]
    state.update([])
    assert state.get() == []
    state.add_all([])
    assert state.get() == []
    state.add(3)
    state.clear()
    assert state.get() == []
    assert backend.state_size() == 0


def test_list_state_update_copies_its_argument(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_list_state(ListStateDescriptor("l"))
    backend.set_current_key(1)
    values = [1, 2]
    state.update(values)
    values.append(3)
    assert state.get() == [1, 2]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add(None), r"^list state 'l' cannot hold None: add\(\) got None$"),
        (
            lambda s: s.add_all([1, None]),
            r"^list state 'l' cannot hold None: add_all\(\) got \[1, None\]$",
        ),
        (
            lambda s: s.update([None]),
            r"^list state 'l' cannot hold None: update\(\) got \[None\]$",
        ),
        (lambda s: s.update(None), r"^list state 'l': update\(\) got None instead of a list$"),
        (lambda s: s.add_all(None), r"^list state 'l': add_all\(\) got None instead of a list$"),
    ],
)
def test_list_state_refuses_none(backend: HeapKeyedStateBackend, call, message: str) -> None:
    state = backend.get_list_state(ListStateDescriptor("l"))
    backend.set_current_key(1)
    state.add(0)
    with pytest.raises(ValueError, match=message):
        call(state)
    assert state.get() == [0]


# --- MapState ---


def test_map_state_semantics(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_map_state(MapStateDescriptor("m"))
    backend.set_current_key("k")
    assert state.is_empty()
    assert state.get("a") is None
    assert state.keys() == [] and state.values() == [] and state.items() == []
    assert not state.contains("a")
    state.put("a", 1)
    state.put_all({2: "two", (3, 4): None})
    assert not state.is_empty()
    assert state.get("a") == 1 and state.get(2) == "two"
    assert state.contains((3, 4)) and state.get((3, 4)) is None
    assert state.keys() == ["a", 2, (3, 4)]
    assert state.values() == [1, "two", None]
    assert state.items() == [("a", 1), (2, "two"), ((3, 4), None)]
    state.remove("a")
    state.remove("missing")
    assert state.keys() == [2, (3, 4)]
    state.remove(2)
    state.remove((3, 4))
    assert state.is_empty()
    state.put("x", 1)
    state.clear()
    assert state.is_empty()
    assert backend.state_size() == 0


def test_map_state_dunder_access(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_map_state(MapStateDescriptor("m"))
    backend.set_current_key("k")
    state["a"] = 1
    assert state["a"] == 1
    assert "a" in state
    assert list(state) == ["a"]
    with pytest.raises(KeyError):
        state["b"]
    with pytest.raises(KeyError):
        del state["b"]
    del state["a"]
    assert state.is_empty()


def test_map_state_iteration_allows_changes(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_map_state(MapStateDescriptor("m"))
    backend.set_current_key("k")
    state.put_all({i: i for i in range(10)})
    for key in state.keys():
        if key % 2:
            state.remove(key)
    assert state.keys() == [0, 2, 4, 6, 8]


# --- ReducingState and AggregatingState ---


def test_reducing_state_semantics(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_reducing_state(ReducingStateDescriptor("sum", lambda a, b: a + b))
    backend.set_current_key("k")
    assert state.get() is None
    for value in (1, 2, 3):
        state.add(value)
    assert state.get() == 6
    state.add(None)  # None clears, as in Flink's heap backend
    assert state.get() is None
    state.add(4)
    state.clear()
    assert state.get() is None


def test_reducing_state_accepts_reduce_function_object(backend: HeapKeyedStateBackend) -> None:
    class Max:
        def reduce(self, a: int, b: int) -> int:
            return max(a, b)

    state = backend.get_reducing_state(ReducingStateDescriptor("max", Max()))
    backend.set_current_key("k")
    for value in (3, 9, 4):
        state.add(value)
    assert state.get() == 9


def test_reducing_state_passes_accumulated_value_first(backend: HeapKeyedStateBackend) -> None:
    calls = []

    def reduce(a: str, b: str) -> str:
        calls.append((a, b))
        return a + b

    state = backend.get_reducing_state(ReducingStateDescriptor("cat", reduce))
    backend.set_current_key("k")
    for value in "abc":
        state.add(value)
    assert state.get() == "abc"
    assert calls == [("a", "b"), ("ab", "c")]


def test_aggregating_state_semantics(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_aggregating_state(AggregatingStateDescriptor("avg", Average()))
    backend.set_current_key("k")
    assert state.get() is None
    for value in (1, 2, 6):
        state.add(value)
    assert state.get() == 3.0
    state.add(None)
    assert state.get() is None
    state.add(10)
    assert state.get() == 10.0
    state.clear()
    assert state.get() is None


# --- Isolation ---


def test_keys_are_isolated_for_every_state_kind(backend: HeapKeyedStateBackend) -> None:
    value = backend.get_state(ValueStateDescriptor("v"))
    values = backend.get_list_state(ListStateDescriptor("l"))
    entries = backend.get_map_state(MapStateDescriptor("m"))
    total = backend.get_reducing_state(ReducingStateDescriptor("r", lambda a, b: a + b))
    avg = backend.get_aggregating_state(AggregatingStateDescriptor("a", Average()))
    keys = ["a", "b", 1, 1.5, (1, "x"), None, b"k"]
    for n, key in enumerate(keys):
        backend.set_current_key(key)
        value.update(n)
        values.add(n)
        entries.put("n", n)
        total.add(n)
        avg.add(n)
    for n, key in enumerate(keys):
        backend.set_current_key(key)
        assert value.value() == n
        assert values.get() == [n]
        assert entries.items() == [("n", n)]
        assert total.get() == n
        assert avg.get() == n
    backend.set_current_key("a")
    value.clear()
    backend.set_current_key("b")
    assert value.value() == 1


def test_equal_keys_share_state(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_state(ValueStateDescriptor("v"))
    backend.set_current_key(1)
    state.update("one")
    backend.set_current_key(1.0)
    assert state.value() == "one"
    backend.set_current_key(True)
    assert state.value() == "one"


def test_states_with_different_names_are_isolated(backend: HeapKeyedStateBackend) -> None:
    first = backend.get_state(ValueStateDescriptor("first"))
    second = backend.get_state(ValueStateDescriptor("second"))
    backend.set_current_key("k")
    first.update(1)
    assert second.value() is None


def test_backends_are_isolated() -> None:
    one, two = make_backend("op-1"), make_backend("op-2")
    descriptor = ValueStateDescriptor("v")
    s1, s2 = one.get_state(descriptor), two.get_state(descriptor)
    one.set_current_key("k")
    two.set_current_key("k")
    s1.update(1)
    assert s2.value() is None
    s2.update(2)
    assert s1.value() == 1


# --- Registration ---


def test_same_name_returns_same_state(backend: HeapKeyedStateBackend) -> None:
    first = backend.get_state(ValueStateDescriptor("v"))
    assert backend.get_state(ValueStateDescriptor("v")) is first
    listed = backend.get_list_state(ListStateDescriptor("l"))
    assert backend.get_list_state(ListStateDescriptor("l")) is listed


def test_same_name_other_kind_is_refused(backend: HeapKeyedStateBackend) -> None:
    backend.get_state(ValueStateDescriptor("s"))
    with pytest.raises(
        StateError,
        match=r"^state 's' of operator 'op' is registered as value state; "
        r"it cannot also be list state$",
    ):
        backend.get_list_state(ListStateDescriptor("s"))


def test_wrong_descriptor_type_is_refused(backend: HeapKeyedStateBackend) -> None:
    with pytest.raises(TypeError, match=r"^get_map_state\(\) needs a MapStateDescriptor, got "):
        backend.get_map_state(ValueStateDescriptor("v"))  # type: ignore[arg-type]


# --- The current key ---


def test_current_key_and_key_group(backend: HeapKeyedStateBackend) -> None:
    assert backend.get_current_key() is None
    assert backend.current_key_group is None
    backend.set_current_key("user-1")
    assert backend.get_current_key() == "user-1"
    assert backend.current_key_group == assign_to_key_group("user-1", 128)


def test_state_access_without_current_key_raises(backend: HeapKeyedStateBackend) -> None:
    state = backend.get_state(ValueStateDescriptor("v"))
    with pytest.raises(
        StateError,
        match=r"^no current key: set_current_key\(\) must be called before state 'v' is used$",
    ):
        state.value()


def test_key_without_stable_hash_raises_type_error(backend: HeapKeyedStateBackend) -> None:
    with pytest.raises(
        TypeError, match=r"^key \[1, 2\] of type list cannot be used: .*return a tuple instead"
    ):
        backend.set_current_key([1, 2])
    with pytest.raises(TypeError, match=r"^key <object .* of type object cannot be used: "):
        backend.set_current_key(object())


def test_key_outside_range_raises_state_error() -> None:
    backend = make_backend(subtask=0, parallelism=2)  # key groups 0..63
    key = next(k for k in range(1000) if assign_to_key_group(k, 128) >= 64)
    kg = assign_to_key_group(key, 128)
    with pytest.raises(
        StateError,
        match=rf"^key {key} belongs to key group {kg}, which is not in the range "
        rf"KeyGroupRange\(start=0, end=63\) of operator 'op'$",
    ):
        backend.set_current_key(key)


def test_key_group_cache_is_bounded() -> None:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128, key_cache_size=10)
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(100):
        backend.set_current_key(key)
        state.update(key)
        assert len(backend._memo) <= 10
    for key in range(100):
        backend.set_current_key(key)
        assert state.value() == key
        assert backend.current_key_group == assign_to_key_group(key, 128)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("", KeyGroupRange(0, 1), 128), ValueError, r"^operator_uid must be a non-empty str"),
        (("op", (0, 1), 128), TypeError, r"^key_group_range must be a KeyGroupRange"),
        (("op", KeyGroupRange(0, 128), 128), ValueError, r"is not within \[0, 128\)$"),
        (("op", KeyGroupRange(0, 1), 0), ValueError, r"^max_parallelism must be in"),
    ],
)
def test_backend_argument_validation(args: tuple, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        HeapKeyedStateBackend(*args)
