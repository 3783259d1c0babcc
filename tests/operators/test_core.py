"""The keyed primitive of operators/core.py: a keyed batch step built at open over the
subtask's keyed state backend, and the per-record step that sets each record's key."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.operators.base import OperatorContext
from streamlet.operators.core import KeyedBatchOperator, KeyedStep, per_record
from streamlet.operators.functions import FunctionAdapter
from streamlet.state.errors import StreamletInternalError
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import KeyGroupRange
from streamlet.state.operator_state import OperatorStateBackend

pytestmark = pytest.mark.asyncio


def first(record: tuple[str, int]) -> str:
    return record[0]


def context(keyed: bool = True) -> OperatorContext:
    return OperatorContext(
        operator_name="Keyed Step",
        operator_uid="keyed-step",
        subtask_index=0,
        parallelism=1,
        max_parallelism=128,
        job_name="test",
        attempt=0,
        operator_state=OperatorStateBackend("keyed-step"),
        keyed_backend=HeapKeyedStateBackend("keyed-step", KeyGroupRange(0, 127), 128)
        if keyed
        else None,
    )


def seen_keys(backend: HeapKeyedStateBackend) -> KeyedStep:
    """A per-record step that emits (record, the key current while it ran)."""

    def step(record: Any, out: list[Any]) -> None:
        out.append((record, backend.get_current_key()))

    return step


def async_seen_keys(backend: HeapKeyedStateBackend) -> KeyedStep:
    async def step(record: Any, out: list[Any]) -> None:
        out.append((record, backend.get_current_key()))

    return step


@pytest.mark.parametrize("step_of", [seen_keys, async_seen_keys], ids=["sync", "async"])
async def test_per_record_runs_each_record_under_its_own_key(step_of: Any) -> None:
    op = KeyedBatchOperator(FunctionAdapter(first, "map", "map"), first, per_record(step_of))
    await op.open(context())
    batch = [("a", 1), ("b", 2), ("a", 3)]
    assert await op.process_batch(batch) == [
        (("a", 1), "a"),
        (("b", 2), "b"),
        (("a", 3), "a"),
    ]


async def test_the_step_is_built_at_open_from_the_backend_and_the_key_selector() -> None:
    built: list[Any] = []

    def make_step(backend: HeapKeyedStateBackend, key_selector: Any) -> Any:
        built.append((backend, key_selector))
        return lambda batch: [key_selector(record) for record in batch]

    op = KeyedBatchOperator(FunctionAdapter(first, "map", "map"), first, make_step)
    assert op.keyed
    assert built == []
    ctx = context()
    await op.open(ctx)
    assert built == [(ctx.keyed_backend, first)]
    assert await op.process_batch([("x", 1), ("y", 2)]) == ["x", "y"]


async def test_opening_without_a_keyed_backend_is_an_internal_error() -> None:
    op = KeyedBatchOperator(FunctionAdapter(first, "map", "map"), first, per_record(seen_keys))
    with pytest.raises(
        StreamletInternalError,
        match=r"^keyed operator 'Keyed Step' was opened without a keyed state backend$",
    ):
        await op.open(context(keyed=False))


async def test_processing_before_open_is_an_internal_error() -> None:
    op = KeyedBatchOperator(FunctionAdapter(first, "map", "map"), first, per_record(seen_keys))
    with pytest.raises(StreamletInternalError, match=r"^process_batch\(\) was called before"):
        await op.process_batch([("a", 1)])
