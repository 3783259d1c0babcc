"""Test doubles shared by the checkpoint tests: clocks, a gateway, state file builders."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamlet.checkpoints import (
    CheckpointBarrier,
    CheckpointConfig,
    CheckpointCoordinator,
    MemoryCheckpointStorage,
    StateHandle,
    TaskId,
    encode_state_file,
)


class ManualClock:
    """A monotonic clock (seconds) that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualWallClock:
    """A wall clock in ms that advances by one on every reading."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


@dataclass
class FakeGateway:
    """Records what the coordinator asked of the subtasks, in order."""

    triggered: list[tuple[TaskId, CheckpointBarrier]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    log: list[tuple[str, int]] = field(default_factory=list)
    fail_trigger: Exception | None = None

    def trigger_checkpoint(self, task: TaskId, barrier: CheckpointBarrier) -> None:
        if self.fail_trigger is not None:
            raise self.fail_trigger
        self.triggered.append((task, barrier))
        self.log.append(("trigger", barrier.checkpoint_id))

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.completed.append(checkpoint_id)
        self.log.append(("complete", checkpoint_id))

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        self.aborted.append(checkpoint_id)
        self.log.append(("aborted", checkpoint_id))

    def triggered_ids(self) -> list[int]:
        return sorted({b.checkpoint_id for _, b in self.triggered})


SOURCE: TaskId = ("source", 0)
TASKS: tuple[TaskId, ...] = (SOURCE, ("map", 0), ("map", 1))


def state_bytes(
    uid: str,
    subtask: int,
    *,
    parallelism: int = 2,
    max_parallelism: int = 8,
    keyed: dict[int, bytes] | None = None,
    operator: bytes | None = b"op-state",
    extra: dict | None = None,
) -> bytes:
    return encode_state_file(
        uid,
        subtask,
        parallelism,
        max_parallelism,
        keyed=keyed if keyed is not None else {subtask: b"kg-%d" % subtask},
        operator=operator,
        extra=extra if extra is not None else {"pos": subtask},
    )


async def write_task_state(storage, checkpoint_id: int, task: TaskId) -> list[StateHandle]:
    uid, subtask = task
    data = state_bytes(uid, subtask)
    return [await storage.write_state_file(checkpoint_id, uid, subtask, data)]


def make_coordinator(
    config: CheckpointConfig | None = None,
    storage=None,
    *,
    tasks: Iterable[TaskId] = TASKS,
    sources: Iterable[TaskId] = (SOURCE,),
    clock: Callable[[], float] | None = None,
    gateway: FakeGateway | None = None,
    **kwargs,
) -> tuple[CheckpointCoordinator, FakeGateway, Any]:
    # The clock comes back as given: a ManualClock unless the test passed time.monotonic.
    clock = clock or ManualClock()
    gateway = gateway or FakeGateway()
    coordinator = CheckpointCoordinator(
        config or CheckpointConfig(),
        storage if storage is not None else MemoryCheckpointStorage("job"),
        "job",
        tasks_to_ack=tasks,
        tasks_to_trigger=sources,
        gateway=gateway,
        clock=clock,
        wall_clock_ms=ManualWallClock(),
        **kwargs,
    )
    return coordinator, gateway, clock


def triggered(coordinator: CheckpointCoordinator, *args: Any, **kwargs: Any) -> int:
    """``trigger_checkpoint`` where the test needs it to succeed: the new checkpoint's id."""
    checkpoint_id = coordinator.trigger_checkpoint(*args, **kwargs)
    assert isinstance(checkpoint_id, int), f"the trigger was declined: {checkpoint_id}"
    return checkpoint_id


async def ack_all(coordinator: CheckpointCoordinator, checkpoint_id: int, tasks=TASKS) -> None:
    for task in tasks:
        handles = await write_task_state(coordinator.storage, checkpoint_id, task)
        await coordinator.receive_acknowledge(task, checkpoint_id, handles)
