"""streamlet.testing.harness: drive one function by hand, snapshot it, restore it (asyncio and
trio)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet import (
    FlatMapFunction,
    KeyedProcessFunction,
    MapFunction,
    ReduceFunction,
    RuntimeContext,
)
from streamlet.operators.functions import FunctionInitializationContext, FunctionSnapshotContext
from streamlet.state import (
    ListStateDescriptor,
    StateError,
    StateSerializationError,
    ValueStateDescriptor,
)
from streamlet.testing import HarnessSnapshot, KeyedOperatorTestHarness, OperatorTestHarness

pytestmark = pytest.mark.anyio

KEYS = [f"k{i}" for i in range(40)]


class CountPerKey(KeyedProcessFunction):
    """Emits (key, running count) per record."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield (ctx.get_current_key(), n)


class Batcher(FlatMapFunction):
    """Emits records in lists of ``size``; the pending ones live in operator list state."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.snapshots: list[int] = []
        self.completed: list[int] = []
        self.aborted: list[int] = []
        self.restored: bool | None = None

    def initialize_state(self, context: FunctionInitializationContext) -> None:
        store = context.get_operator_state_store()
        self.pending = store.get_list_state(ListStateDescriptor("pending"))
        self.restored = context.is_restored()

    def snapshot_state(self, context: FunctionSnapshotContext) -> None:
        self.snapshots.append(context.get_checkpoint_id())

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.completed.append(checkpoint_id)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        self.aborted.append(checkpoint_id)

    def flat_map(self, value: Any) -> list[Any]:
        self.pending.add(value)
        if len(self.pending.get()) < self.size:
            return []
        out = list(self.pending.get())
        self.pending.clear()
        return [out]


def by_key(record: tuple[str, int]) -> str:
    return record[0]


def counting(**options: Any) -> KeyedOperatorTestHarness:
    return KeyedOperatorTestHarness(CountPerKey(), key_selector=by_key, **options)


# --- keyed harness ---


async def test_keyed_process_output_and_state() -> None:
    async with counting() as harness:
        assert await harness.process_element(("a", 1)) == [("a", 1)]
        assert await harness.process_elements([("b", 1), ("a", 2)]) == [("b", 1), ("a", 2)]
        assert harness.extract_output_values() == [("a", 1), ("b", 1), ("a", 2)]
        assert [r.value for r in harness.get_output()] == harness.extract_output_values()
        assert sorted(harness.keyed_state_backend.keys("count")) == ["a", "b"]
        harness.clear_output()
        assert harness.get_output() == []
        assert await harness.process_elements([]) == []


async def test_snapshot_restores_into_a_fresh_function_instance() -> None:
    async with counting() as harness:
        await harness.process_elements([("a", 1), ("a", 2), ("b", 1)])
        snapshot = await harness.snapshot()
        await harness.process_element(("a", 3))  # after the snapshot: not in it
    assert snapshot.checkpoint_id == 1 and snapshot.keyed_state
    async with counting(restore=snapshot) as restored:
        assert restored.context.restored
        assert await restored.process_elements([("a", 9), ("b", 9), ("c", 9)]) == [
            ("a", 3),
            ("b", 2),
            ("c", 1),
        ]


async def test_restore_at_higher_parallelism_gets_only_its_key_groups() -> None:
    async with counting() as harness:
        await harness.process_elements([(k, 0) for k in KEYS])
        snapshot = await harness.snapshot()
    owned: list[list[str]] = []
    for index in range(3):
        async with counting(parallelism=3, subtask_index=index, restore=snapshot) as sub:
            mine = [k for k in KEYS if sub.owns_key(k)]
            owned.append(mine)
            assert sorted(sub.keyed_state_backend.keys("count")) == sorted(mine)
            assert await sub.process_elements([(k, 1) for k in mine]) == [(k, 2) for k in mine]
            other = next(k for k in KEYS if not sub.owns_key(k))
            with pytest.raises(StateError, match=r"^key 'k\d+' belongs to key group \d+"):
                await sub.process_element((other, 1))
    assert sorted(k for part in owned for k in part) == sorted(KEYS)
    assert all(owned)


async def test_restore_at_lower_parallelism_merges_the_old_subtasks() -> None:
    snapshots = []
    for index in range(2):
        async with counting(parallelism=2, subtask_index=index) as sub:
            await sub.process_elements([(k, 0) for k in KEYS if sub.owns_key(k)])
            snapshots.append(await sub.snapshot())
    async with counting(restore=snapshots) as merged:
        assert await merged.process_elements([(k, 1) for k in KEYS]) == [(k, 2) for k in KEYS]


async def test_keyed_reduce_continues_after_restore() -> None:
    class Sum(ReduceFunction):
        def reduce(self, value1: Any, value2: Any) -> Any:
            return (value1[0], value1[1] + value2[1])

    async with KeyedOperatorTestHarness(Sum(), by_key) as harness:
        assert harness.kind == "reduce"
        await harness.process_elements([("a", 1), ("a", 2)])
        snapshot = await harness.snapshot()
    async with KeyedOperatorTestHarness(Sum(), by_key, restore=snapshot) as restored:
        assert await restored.process_element(("a", 10)) == [("a", 13)]


async def test_keyed_map_with_state_and_plain_keyed_filter() -> None:
    class Dedupe(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.seen = runtime_context.get_state(ValueStateDescriptor("seen"))

        def map(self, value: Any) -> Any:
            first = self.seen.value() is None
            self.seen.update(True)
            return (value, first)

    async with KeyedOperatorTestHarness(Dedupe(), lambda r: r) as harness:
        assert await harness.process_elements(["x", "y", "x"]) == [
            ("x", True),
            ("y", True),
            ("x", False),
        ]
    async with KeyedOperatorTestHarness(lambda r: r > 1, lambda r: r, kind="filter") as kept:
        assert await kept.process_elements([1, 2, 3]) == [2, 3]


# --- non-keyed harness ---


async def test_non_keyed_plain_functions_by_kind() -> None:
    async with OperatorTestHarness(lambda x: x * 2, kind="map") as doubled:
        assert await doubled.process_elements([1, 2]) == [2, 4]
    async with OperatorTestHarness(str.split, kind="flat_map") as words:
        assert await words.process_element("a b") == ["a", "b"]
    async with OperatorTestHarness(lambda x: x % 2, kind="filter") as odd:
        assert await odd.process_elements([1, 2, 3]) == [1, 3]


async def test_non_keyed_async_function() -> None:
    async def slow_double(x: int) -> int:
        return x * 2

    async with OperatorTestHarness(slow_double, kind="map") as harness:
        assert await harness.process_elements([1, 2, 3]) == [2, 4, 6]


async def test_operator_state_round_trip_and_checkpoint_hooks() -> None:
    function = Batcher()
    async with OperatorTestHarness(function) as harness:
        assert harness.kind == "flat_map" and function.restored is False
        assert await harness.process_elements([1, 2, 3, 4]) == [[1, 2, 3]]
        snapshot = await harness.snapshot()
        await harness.notify_checkpoint_complete()
        await harness.snapshot(7)
        await harness.notify_checkpoint_aborted()
    assert (function.snapshots, function.completed, function.aborted) == ([1, 7], [1], [7])
    fresh = Batcher()
    async with OperatorTestHarness(fresh, restore=snapshot) as restored:
        assert fresh.restored is True
        assert await restored.process_elements([5, 6]) == [[4, 5, 6]]


async def test_operator_list_state_is_split_evenly_on_rescale() -> None:
    async with OperatorTestHarness(Batcher(size=10)) as harness:
        await harness.process_elements([1, 2, 3, 4, 5])
        snapshot = await harness.snapshot()
    parts = []
    for index in range(2):
        function = Batcher(size=10)
        async with OperatorTestHarness(
            function, parallelism=2, subtask_index=index, restore=snapshot
        ) as sub:
            assert sub.runtime_context.get_index_of_this_subtask() == index
            parts.append(list(function.pending.get()))
    assert parts == [[1, 2, 3], [4, 5]]


async def test_snapshot_bytes_round_trip() -> None:
    async with counting() as harness:
        await harness.process_elements([("a", 1), ("b", 1)])
        snapshot = await harness.snapshot(3)
    again = HarnessSnapshot.from_bytes(snapshot.to_bytes())
    assert again == snapshot
    async with counting(restore=again) as restored:
        assert await restored.process_element(("a", 1)) == [("a", 2)]
    with pytest.raises(ValueError, match=r"^state data does not start with b'SLH1'"):
        HarnessSnapshot.from_bytes(b"junk and more junk")


# --- errors name what was wrong ---


async def test_calls_before_open_and_after_close_are_refused() -> None:
    harness = counting()
    with pytest.raises(RuntimeError, match=r"^snapshot\(\) needs an open harness; use 'async"):
        await harness.snapshot()
    with pytest.raises(RuntimeError, match=r"^process_element\(\) needs an open harness"):
        await harness.process_element(("a", 1))
    with pytest.raises(RuntimeError, match=r"^process_elements\(\) needs an open harness"):
        await harness.process_elements([("a", 1)])
    async with harness:
        with pytest.raises(RuntimeError, match=r"was opened before; build a new harness"):
            await harness.open()
    with pytest.raises(RuntimeError, match=r"^snapshot\(\) on a closed harness; build a new one$"):
        await harness.snapshot()
    await harness.close()  # idempotent


async def test_snapshot_ids_must_grow() -> None:
    async with counting() as harness:
        await harness.snapshot(5)
        with pytest.raises(
            ValueError, match=r"^checkpoint_id must be an int above .* \(5\), got 5$"
        ):
            await harness.snapshot(5)


async def test_open_failure_closes_the_function() -> None:
    class Broken(MapFunction):
        closed = False

        def open(self, runtime_context: RuntimeContext) -> None:
            raise OSError("no such resource")

        def close(self) -> None:
            self.closed = True

        def map(self, value: Any) -> Any:
            return value

    function = Broken()
    harness = OperatorTestHarness(function)
    with pytest.raises(OSError, match="no such resource"):
        await harness.open()
    assert function.closed
    with pytest.raises(RuntimeError, match="on a closed harness"):
        await harness.process_element(1)


async def test_unserializable_state_fails_the_snapshot() -> None:
    class Keeps(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("thing"))

        def process_element(self, value: Any, ctx: Any) -> None:
            self.state.update(object())

    async with KeyedOperatorTestHarness(Keeps(), lambda r: r) as harness:
        await harness.process_element("a")
        with pytest.raises(StateSerializationError, match="thing"):
            await harness.snapshot()


async def test_restore_mismatches_are_refused() -> None:
    async with counting() as harness:
        await harness.process_element(("a", 1))
        keyed = await harness.snapshot()
    with pytest.raises(ValueError, match=r"max_parallelism 128 but the harness has 64"):
        counting(max_parallelism=64, restore=keyed)
    with pytest.raises(ValueError, match=r"operator uid 'harness' but .* uid 'other'; pass uid="):
        counting(uid="other", restore=keyed)
    with pytest.raises(ValueError, match=r"holds keyed state; restore it into a KeyedOperator"):
        OperatorTestHarness(Batcher(), restore=keyed)
    with pytest.raises(ValueError, match=r"^restore: two snapshots of old subtask 0$"):
        counting(restore=[keyed, keyed])
    with pytest.raises(TypeError, match=r"^restore must be a HarnessSnapshot or a non-empty"):
        counting(restore=[])


def test_kind_is_required_when_it_cannot_be_told() -> None:
    with pytest.raises(TypeError, match=r"pass kind= \(one of \['map', 'flat_map', 'filter'"):
        OperatorTestHarness(lambda x: x)

    class Both(MapFunction):
        def map(self, value: Any) -> Any:
            return value

        def filter(self, value: Any) -> bool:
            return True

    with pytest.raises(TypeError, match=r"it has map\(\), filter\(\); pass kind="):
        OperatorTestHarness(Both())
    with pytest.raises(
        ValueError, match=r"^OperatorTestHarness\(\) kind must be one of .*'reduce'$"
    ):
        OperatorTestHarness(lambda a, b: a, kind="reduce")
    with pytest.raises(ValueError, match=r"^subtask_index must be in \[0, 2\), got 2$"):
        counting(parallelism=2, subtask_index=2)
    with pytest.raises(TypeError, match=r"^key_by\(\) needs a callable or a KeySelector"):
        KeyedOperatorTestHarness(CountPerKey(), key_selector=42)


def test_repr_names_kind_function_and_subtask() -> None:
    harness = counting(parallelism=2, subtask_index=1)
    assert repr(harness) == "<KeyedOperatorTestHarness process 'CountPerKey' (2/2), not open>"
