"""Aligned checkpoints hold back a fast input: a record after barrier n is not in checkpoint n.

Two gated sources feed one keyed counter; the slow side's barrier is held back behind a
record an async map keeps until the test releases it. The fast side emits ``a2`` right after
its barrier. With alignment the counter cannot read ``a2`` before the savepoint's snapshot;
without it (``make mutants``, M2) ``a2`` lands in the savepoint, and a job restored from it
replays ``a2`` and counts it twice. Every step waits on an event; the one bounded wait gives a
broken aligner the chance to show itself and cannot make a correct engine fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    KeyedProcessFunction,
    MapFunction,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from streamlet.operators.sources.base import Source, SourceReader

pytestmark = pytest.mark.anyio


class _Gated(Source[str]):
    """Emit ``items`` one by one; item i waits for ``gates[i]`` first if there is one."""

    max_parallelism = 1

    def __init__(self, items: list[str], gates: dict[int, anyio.Event]) -> None:
        self.items = items
        self.gates = gates
        #: Set when the fast source's chain snapshots (see ``_Mark``).
        self.snapshotted = anyio.Event()

    def create_splits(self, parallelism: int) -> list[Any]:
        return ["only"]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[str]:
        return _GatedReader(self, 0 if position is None else int(position))


class _GatedReader(SourceReader[str]):
    def __init__(self, source: _Gated, start: int) -> None:
        self.source = source
        self.next = start

    async def read_batch(self, max_records: int) -> list[str] | None:
        if self.next >= len(self.source.items):
            return None
        gate = self.source.gates.get(self.next)
        if gate is not None:
            await gate.wait()
        self.next += 1
        return [self.source.items[self.next - 1]]

    def position(self) -> int:
        return self.next


class _Mark(MapFunction):
    """Pass records on; call ``on_snapshot`` when the chain snapshots (before its barrier)."""

    def __init__(self, on_snapshot: Callable[[], None]) -> None:
        self.on_snapshot = on_snapshot

    def map(self, value: str) -> str:
        return value

    def snapshot_state(self, context: Any) -> None:
        self.on_snapshot()


class _Count(KeyedProcessFunction):
    # The engine copies function objects per subtask; a function (closure) is shared as is.
    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note

    def open(self, runtime_context: Any) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value: str, ctx: Any) -> Any:
        self.count.update((self.count.value() or 0) + 1)
        self.note(value)
        yield self.count.value()


def _build(
    env: StreamExecutionEnvironment,
    fast: _Gated,
    slow: _Gated,
    hold: dict[str, anyio.Event],
    seen: list[str],
    counted: dict[str, anyio.Event],
    out: list[int],
) -> None:
    def note(value: str) -> None:
        seen.append(value)
        if value in counted:
            counted[value].set()

    async def held(x: str) -> str:
        if x in hold:
            await hold[x].wait()
        return x

    a = env.from_source(fast).uid("fast").map(_Mark(lambda: fast.snapshotted.set()))
    b = env.from_source(slow).uid("slow").map(held).uid("held")
    (a.union(b).key_by(lambda x: "all").process(_Count(note)).uid("count").add_sink(out.append))


def _env(tmp_path: Path) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.enable_checkpointing(3_600_000)  # only the savepoint the test triggers
    env.get_checkpoint_config().set_checkpoint_storage_dir(f"file://{tmp_path / 'chk'}")
    return env


async def test_a_record_after_the_barrier_is_not_in_the_savepoint(tmp_path: Path) -> None:
    gate_a2, release_b2, end_b = anyio.Event(), anyio.Event(), anyio.Event()
    counted = {name: anyio.Event() for name in ("a1", "b1", "a2")}
    fast = _Gated(["a1", "a2"], {1: gate_a2})
    # b2 only once b1 was counted: b1 must not wait in an output buffer behind a held b2.
    slow = _Gated(["b1", "b2", "b-end"], {1: counted["b1"], 2: end_b})
    seen: list[str] = []
    out: list[int] = []
    env = _env(tmp_path)
    _build(env, fast, slow, {"b2": release_b2}, seen, counted, out)
    with anyio.fail_after(30):
        client = await env.execute_async("align")
        await counted["a1"].wait()
        await counted["b1"].wait()
        async with anyio.create_task_group() as tg:
            savepoint: list[str] = []

            async def take() -> None:
                savepoint.append(await client.trigger_savepoint(str(tmp_path / "sp")))

            fast.snapshotted = anyio.Event()
            tg.start_soon(take)
            await fast.snapshotted.wait()  # the fast source's barrier goes out before a2
            gate_a2.set()
            # An aligned counter holds a2 behind the fast side's barrier until the slow
            # side's barrier (behind b2) arrives; a broken one counts a2 here.
            with anyio.move_on_after(0.5):
                await counted["a2"].wait()
            assert "a2" not in seen, "a record after the barrier was read before alignment"
            release_b2.set()
        end_b.set()
        await client.wait()
    assert sorted(seen) == ["a1", "a2", "b-end", "b1", "b2"]

    # Restored from the savepoint, a2 and b-end are replayed: counted once, total 5.
    fast2 = _Gated(["a1", "a2"], {})
    slow2 = _Gated(["b1", "b2", "b-end"], {})
    seen2: list[str] = []
    out2: list[int] = []
    env2 = _env(tmp_path / "second")
    _build(env2, fast2, slow2, {}, seen2, {}, out2)
    with anyio.fail_after(30):
        await env2.execute("align", restore=savepoint[0])
    assert sorted(seen2) == ["a2", "b-end"]
    assert out2[-1] == 5
