"""The subtask checkpointer applies its barrier handler's actions to a real input gate.

The gate's channels are fed by hand; a small drain loop plays the subtask's role (records go to
``delivered``, events to the checkpointer, as ``Subtask.on_event`` does). The snapshot and the
decline are recorded instead of run, so each test sees exactly which records the cut holds,
which channels were blocked when, and which checkpoints were aborted. These tests fail if the
aligner stops blocking channels (``make mutants``, M2) or the checkpointer stops applying its
block / unblock actions.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from streamlet.checkpoints.config import CheckpointingMode
from streamlet.checkpoints.errors import CheckpointFailureReason
from streamlet.checkpoints.events import CancelCheckpointMarker, CheckpointBarrier, EndOfPartition
from streamlet.checkpoints.handlers import create_barrier_handler
from streamlet.runtime.channels import Channel, InputGate, Notifier
from streamlet.runtime.checkpointing import SubtaskCheckpointer

pytestmark = pytest.mark.anyio


class _Writer:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def emit_event(self, event: Any) -> None:
        self.events.append(event)


class _Harness:
    """A gate of ``n`` channels, a checkpointer on it, and a record of what happened."""

    def __init__(self, n: int, mode: CheckpointingMode = CheckpointingMode.EXACTLY_ONCE) -> None:
        notifier = Notifier()
        self.channels = [Channel(16, notifier, name=f"in{i}") for i in range(n)]
        self.gate = InputGate(self.channels, notifier)
        self.writer = _Writer()
        chain = SimpleNamespace(emit_event=self.writer.emit_event)
        self.checkpointer = SubtaskCheckpointer(
            chain,
            self.gate,
            ("op", 0),
            None,  # type: ignore[arg-type]
            create_barrier_handler(mode, n, clock=lambda: 0.0),
            128,
        )
        self.delivered: list[Any] = []
        #: (checkpoint id, records delivered before its snapshot)
        self.snapshots: list[tuple[int, list[Any]]] = []
        self.declined: list[tuple[int, CheckpointFailureReason]] = []

        async def snapshot(barrier: CheckpointBarrier, alignment_ms: float, **_: Any) -> None:
            self.snapshots.append((barrier.checkpoint_id, list(self.delivered)))

        async def decline(
            checkpoint_id: int, reason: CheckpointFailureReason, detail: str | None
        ) -> None:
            self.declined.append((checkpoint_id, reason))

        self.checkpointer.snapshot = snapshot  # type: ignore[method-assign]
        self.checkpointer.decline = decline  # type: ignore[method-assign]

    def feed(self, channel: int, *buffers: Any) -> None:
        for buffer in buffers:
            self.channels[channel].send_nowait(buffer)

    @property
    def blocked(self) -> set[int]:
        return {i for i, channel in enumerate(self.channels) if channel.blocked}

    async def drain(self) -> None:
        """Handle every buffer the gate hands out until none is ready (blocked ones stay)."""
        while (polled := self.gate.poll()) is not None:
            index, buffer = polled
            if type(buffer) is list:
                self.delivered.extend(buffer)
            elif type(buffer) is EndOfPartition:
                self.channels[index].ended = True
                await self.checkpointer.on_end_of_partition(index)
            elif type(buffer) is CheckpointBarrier:
                await self.checkpointer.on_barrier(index, buffer)
            else:
                await self.checkpointer.on_cancel_marker(index, buffer)


def _barrier(n: int) -> CheckpointBarrier:
    return CheckpointBarrier(n, 0)


async def test_records_behind_a_barrier_wait_until_the_snapshot() -> None:
    h = _Harness(3)
    h.feed(0, ["a1"], _barrier(1), ["a2"])
    h.feed(1, ["b1"])
    await h.drain()
    assert h.blocked == {0}
    assert h.delivered == ["a1", "b1"]
    assert h.snapshots == []

    h.feed(1, _barrier(1), ["b2"])
    await h.drain()
    assert h.blocked == {0, 1}
    assert h.delivered == ["a1", "b1"]  # a2 and b2 are behind barrier 1: not yet
    assert h.snapshots == []

    h.feed(2, ["c1"], _barrier(1), ["c2"])
    await h.drain()
    assert h.snapshots == [(1, ["a1", "b1", "c1"])]
    assert h.blocked == set()
    assert sorted(h.delivered[3:]) == ["a2", "b2", "c2"]
    assert h.writer.events == []  # the real snapshot forwards the barrier; the fake does not
    assert h.declined == []


async def test_the_snapshot_is_taken_once_when_the_last_barrier_arrives() -> None:
    h = _Harness(2)
    h.feed(0, _barrier(1))
    await h.drain()
    assert h.snapshots == []
    h.feed(1, _barrier(1))
    await h.drain()
    assert [cid for cid, _ in h.snapshots] == [1]
    h.feed(0, _barrier(1))  # a late duplicate of an already handled barrier changes nothing
    await h.drain()
    assert [cid for cid, _ in h.snapshots] == [1]
    assert h.blocked == set()


async def test_a_newer_barrier_aborts_the_older_alignment_and_unblocks() -> None:
    h = _Harness(3)
    h.feed(0, _barrier(1), ["a"])
    await h.drain()
    assert h.blocked == {0}
    h.feed(1, _barrier(2), ["b"])
    await h.drain()
    assert h.declined == [(1, CheckpointFailureReason.CHECKPOINT_DECLINED_SUBSUMED)]
    assert h.writer.events == [CancelCheckpointMarker(1)]
    # Channel 0 is free again; the new alignment for 2 holds channel 1 only.
    assert h.blocked == {1}
    assert h.delivered == ["a"]
    h.feed(0, _barrier(2))
    h.feed(2, _barrier(2))
    await h.drain()
    assert h.snapshots == [(2, ["a"])]
    assert h.delivered == ["a", "b"]
    assert h.blocked == set()


async def test_a_cancel_marker_aborts_the_alignment_and_unblocks() -> None:
    h = _Harness(2)
    h.feed(0, _barrier(3), ["a"])
    await h.drain()
    assert h.blocked == {0}
    assert h.delivered == []
    h.feed(1, CancelCheckpointMarker(3), ["b"])
    await h.drain()
    assert h.declined == [(3, CheckpointFailureReason.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER)]
    assert h.blocked == set()
    assert sorted(h.delivered) == ["a", "b"]
    assert h.snapshots == []
    h.feed(1, _barrier(3))  # the aborted checkpoint's late barrier starts nothing
    await h.drain()
    assert h.blocked == set()
    assert h.snapshots == []


async def test_end_of_partition_counts_as_the_channels_barrier() -> None:
    h = _Harness(3)
    h.feed(0, _barrier(1), ["a"])
    await h.drain()
    h.feed(1, ["b"], EndOfPartition())
    await h.drain()
    assert h.blocked == {0}
    assert h.snapshots == []
    h.feed(2, _barrier(1))
    await h.drain()
    assert h.snapshots == [(1, ["b"])]
    assert h.delivered == ["b", "a"]
    # With channel 1 ended, the next checkpoint needs barriers from 0 and 2 only.
    h.feed(2, _barrier(2), ["c"])
    await h.drain()
    assert h.blocked == {2}
    h.feed(0, _barrier(2))
    await h.drain()
    assert [cid for cid, _ in h.snapshots] == [1, 2]
    assert h.snapshots[1] == (2, ["b", "a"])
    assert h.blocked == set()


async def test_at_least_once_never_blocks() -> None:
    h = _Harness(2, CheckpointingMode.AT_LEAST_ONCE)
    h.feed(0, _barrier(1), ["a"])
    await h.drain()
    assert h.blocked == set()
    assert h.delivered == ["a"]  # read past the barrier: it may land in the snapshot too
    h.feed(1, ["b"], _barrier(1))
    await h.drain()
    assert h.blocked == set()
    assert h.snapshots == [(1, ["a", "b"])]
