from __future__ import annotations

import errno
import itertools

import anyio
import pytest

from streamlet.checkpoints import (
    CheckpointFailureReason,
    MemoryCheckpointStorage,
    OperatorSnapshot,
    write_subtask_snapshot,
)
from streamlet.state.key_groups import KeyGroupRange

pytestmark = pytest.mark.asyncio


class Keyed:
    def __init__(self, groups: dict[int, bytes], log: list[str] | None = None, fail_at=None):
        self.groups = groups
        self.log = log
        self.fail_at = fail_at

    def key_groups(self):
        return list(self.groups)

    def serialize_key_group(self, key_group: int) -> bytes:
        if key_group == self.fail_at:
            raise TypeError(f"cannot serialize state 'count': key group {key_group}")
        if self.log is not None:
            self.log.append("kg")
        return self.groups[key_group]


class OpState:
    def serialize(self) -> bytes:
        return b"[1,2,3]"


def operators(**keyed_kwargs):
    return [
        OperatorSnapshot("counter", Keyed({0: b"a", 1: b"bb", 3: b"dddd"}, **keyed_kwargs)),
        OperatorSnapshot("source", operator_state=OpState(), extra={"offset": 7}),
    ]


async def test_writes_one_file_per_operator_and_reports():
    storage = MemoryCheckpointStorage("job")
    result = await write_subtask_snapshot(storage, 4, 1, 2, 4, operators())
    assert result.ok and result.failure is None
    assert [h.operator_uid for h in result.handles] == ["counter", "source"]
    assert result.state_size == sum(h.size for h in result.handles) > 0
    assert result.async_duration_ms >= 0
    location = storage.location_of(4)
    counter = await storage.read_state_file(location, result.handles[0], KeyGroupRange(1, 3))
    assert counter.keyed == {1: b"bb", 3: b"dddd"}
    assert (counter.parallelism, counter.max_parallelism) == (2, 4)
    source = await storage.read_state_file(location, result.handles[1])
    assert source.operator == b"[1,2,3]" and source.extra == {"offset": 7}
    assert result.handles[0].parallelism == 2


async def test_serialization_error_declines_and_cleans_up():
    storage = MemoryCheckpointStorage("job")
    ops = [OperatorSnapshot("first", operator_state=OpState()), *operators(fail_at=1)]
    result = await write_subtask_snapshot(storage, 1, 0, 1, 4, ops)
    assert not result.ok
    assert result.failure is CheckpointFailureReason.CHECKPOINT_ASYNC_EXCEPTION
    assert (
        result.detail == "operator 'counter' subtask 0: cannot serialize state 'count': key group 1"
    )
    assert result.handles == ()
    assert storage.directory(1) == {}  # the first operator's file was removed


async def test_storage_error_declines_with_storage_failure():
    async def hook(operation, checkpoint_id, name):
        if operation == "state" and "source" in name:
            raise OSError(errno.ENOSPC, "No space left on device")

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    result = await write_subtask_snapshot(storage, 1, 0, 1, 4, operators())
    assert result.failure is CheckpointFailureReason.STORAGE_FAILURE
    assert result.detail is not None
    assert "operator 'source' subtask 0" in result.detail
    assert "No space left on device (ENOSPC)" in result.detail
    assert storage.directory(1) == {}


async def test_cancelled_snapshot_removes_what_it_wrote():
    stall = anyio.Event()
    reached = anyio.Event()

    async def hook(operation, checkpoint_id, name):
        if operation == "state" and "source" in name:
            reached.set()
            await stall.wait()

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    async with anyio.create_task_group() as tg:
        tg.start_soon(write_subtask_snapshot, storage, 1, 0, 1, 4, operators())
        await reached.wait()
        assert list(storage.directory(1)) == ["op-counter-0.state"]
        tg.cancel_scope.cancel()
    assert storage.directory(1) == {}
    assert ("delete", 1, "op-counter-0.state") in storage.operations


async def test_yields_to_other_tasks_between_key_groups():
    log: list[str] = []
    ticks = itertools.count(step=0.01)  # every clock reading is 10 ms later
    storage = MemoryCheckpointStorage("job")
    ops = [OperatorSnapshot("big", Keyed({kg: b"x" for kg in range(20)}, log))]
    done = anyio.Event()

    async def other_task():
        while not done.is_set():
            log.append("tick")
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        result = await write_subtask_snapshot(storage, 1, 0, 1, 32, ops, clock=lambda: next(ticks))
        done.set()
    assert result.ok
    first, last = log.index("kg"), len(log) - 1 - log[::-1].index("kg")
    assert log[first:last].count("tick") >= 10


async def test_empty_chain_writes_nothing():
    storage = MemoryCheckpointStorage("job")
    result = await write_subtask_snapshot(storage, 1, 0, 1, 4, [])
    assert result.ok and result.handles == () and result.state_size == 0
