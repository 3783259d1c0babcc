"""An application feeds a job through the push source; with the write-ahead log every
pushed record is counted exactly once across failures (issue 5)."""

from __future__ import annotations

import dataclasses
import datetime
import math
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.operators.sources.push import PushSource
from streamlet.testing import FaultInjector, inject_faults

pytestmark = pytest.mark.anyio

RECORDS: list[dict[str, Any]] = [{"user": f"u{i % 9}", "amount": i % 5 + 1} for i in range(2000)]


async def test_pushed_records_are_counted_exactly_once_across_failures(
    anyio_backend: str, tmp_path: Path
) -> None:
    source = PushSource(max_buffered=256, write_ahead_log=True)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.enable_checkpointing(15)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(10, 0))
    inject_faults(
        env, FaultInjector().fail_record("sum", 300, subtask=0).fail_snapshot("sum", 3, 1)
    )
    (
        env.from_source(source)
        .uid("pushed")
        .map(lambda r: (r["user"], r["amount"]))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("sum")
        .sink_to(FileSink(tmp_path / "out", encoder=lambda t: f"{t[0]} {t[1]}"))
    )

    async def application() -> None:
        for start in range(0, len(RECORDS), 20):
            await source.push_many(RECORDS[start : start + 20])
            await anyio.sleep(0.001)
        source.end()

    async with anyio.create_task_group() as tg:
        tg.start_soon(application)
        with anyio.fail_after(60):
            result = await env.execute("push-wal")
    assert result.restart_count >= 1

    totals: dict[str, int] = defaultdict(int)
    for record in RECORDS:
        totals[record["user"]] += record["amount"]
    finals: dict[str, int] = {}
    seen: dict[str, list[int]] = defaultdict(list)
    for line in read_committed(tmp_path / "out"):
        user, value = line.split()
        seen[user].append(int(value))
        finals[user] = max(finals.get(user, 0), int(value))
    assert finals == totals
    # Running sums strictly increase per user: no record was applied twice.
    assert all(len(set(values)) == len(values) for values in seen.values())
    per_user: dict[str, int] = defaultdict(int)
    for record in RECORDS:
        per_user[record["user"]] += 1
    assert {u: len(v) for u, v in seen.items()} == per_user


_CRASHING_CHILD = r"""
import os, signal, sys
import anyio
from streamlet import StreamExecutionEnvironment
from streamlet.operators.sinks.file import FileSink
from streamlet.operators.sources.push import PushSource

base, mode = sys.argv[1], sys.argv[2]
all_seen = anyio.Event()
seen = []

def note(x):
    seen.append(x)
    if len(seen) == 100:
        all_seen.set()
    return str(x)

async def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(600_000)  # no checkpoint completes before the kill
    env.get_checkpoint_config().set_checkpoint_storage_dir(base + "/ckpt")
    src = PushSource(write_ahead_log=True)
    env.from_source(src).uid("push").map(note).uid("note").sink_to(FileSink(base + "/out"))
    client = await env.execute_async("wal-job", restore="latest")
    if mode == "first":
        await src.push_many(range(100))
        with anyio.fail_after(20):
            await all_seen.wait()  # the job saw them all, so all are logged and synced
        os.kill(os.getpid(), signal.SIGKILL)
    src.end()
    with anyio.fail_after(20):
        await client.wait()
    print(len(seen))

anyio.run(main)
"""


def test_logged_records_survive_a_crash_before_the_first_checkpoint(tmp_path: Path) -> None:
    """A start that restores no checkpoint replays what the log holds beyond the last
    completed one: here none completed, so all of it (issue 10)."""
    child = tmp_path / "child.py"
    child.write_text(_CRASHING_CHILD)

    def run(stage: str) -> subprocess.CompletedProcess[str]:
        # The environment as inherited: streamlet is the one the suite imports (the
        # checkout, or a mutant's copy under make mutants).
        return subprocess.run(
            [sys.executable, str(child), str(tmp_path), stage],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = run("first")
    assert first.returncode == -signal.SIGKILL, first.stderr[-500:]
    assert not (tmp_path / "out").exists() or read_committed(tmp_path / "out") == []
    second = run("second")
    assert second.returncode == 0, second.stderr[-500:]
    assert second.stdout.split() == ["100"]  # replayed from the log, not pushed again
    assert sorted(read_committed(tmp_path / "out"), key=int) == [str(i) for i in range(100)]
    # Its final checkpoint covered them: a third fresh start replays nothing.
    third = run("third")
    assert third.returncode == 0, third.stderr[-500:]
    assert third.stdout.split() == ["0"]
    assert len(read_committed(tmp_path / "out")) == 100


async def test_sources_whose_uids_differ_in_unsafe_characters_keep_separate_logs(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Uids "in/1" and "in_1" used to share one log directory and corrupt it (issue 10)."""
    a, b = PushSource(write_ahead_log=True), PushSource(write_ahead_log=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(15)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    inject_faults(env, FaultInjector().fail_record("m", 150))
    stream_a = env.from_source(a).uid("in/1")
    stream_b = env.from_source(b).uid("in_1")
    stream_a.union(stream_b).map(lambda r: r).uid("m").sink_to(FileSink(tmp_path / "out"))
    want = [f"A{i}" for i in range(200)] + [f"B{i}" for i in range(200)]

    async def application() -> None:
        for i in range(0, 200, 10):
            await a.push_many(want[i : i + 10])
            await b.push_many(want[200 + i : 210 + i])
            await anyio.sleep(0.001)
        a.end()
        b.end()

    async with anyio.create_task_group() as tg:
        tg.start_soon(application)
        with anyio.fail_after(60):
            result = await env.execute("collide")
    assert result.restart_count == 1
    assert sorted(read_committed(tmp_path / "out")) == sorted(want)
    logs = sorted(p.name for p in (tmp_path / "checkpoints" / "collide" / "wal").iterdir())
    assert len(logs) == 2 and "in_1" in logs


@dataclasses.dataclass(frozen=True)
class Click:
    page: str
    at: datetime.datetime


TYPED = [
    Click("/docs", datetime.datetime(2024, 1, 1, 12)),
    (1, 2),
    datetime.datetime(2024, 5, 6, 7, 8, 9),
    {"k": (1, "x")},
    float("inf"),
]


async def test_records_keep_their_types_through_the_log_and_its_replay(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Turning the log on must not change what user functions receive (issue 10)."""
    source = PushSource(write_ahead_log=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(600_000)  # the failover replays everything from the log
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    inject_faults(env, FaultInjector().fail_record("m", len(TYPED) + 1))
    received: list[object] = []
    env.from_source(source).uid("typed").map(received.append).uid("m").add_sink(lambda r: None)
    for record in [*TYPED, float("nan")]:
        await source.push(record)
    source.end()
    with anyio.fail_after(60):
        result = await env.execute("typed")
    assert result.restart_count == 1
    # The first attempt got TYPED and failed at the NaN; the second replayed all of it.
    first, replayed = received[: len(TYPED)], received[-len(TYPED) - 1 : -1]
    assert math.isnan(received[-1])  # type: ignore[arg-type]
    for got in (first, replayed):
        assert got == TYPED and [type(r) for r in got] == [type(r) for r in TYPED]
    assert replayed[0] is not TYPED[0]  # decoded from the log, equal and of the same type
