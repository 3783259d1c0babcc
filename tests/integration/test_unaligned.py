"""Unaligned checkpoints end to end (issue 17): exactly-once under seeded faults while a slow
sink keeps every channel full, the aligned timeout, and restore at another parallelism.

The job is the semantics job's pipeline (per-key sequence check, exactly-once file sink)
with a slow step after the check, tiny channels and small batches: the key_by edge is always
full, so every unaligned checkpoint persists in-flight records. The committed output must
equal the failure-free output and the check must never see a gap, a repeat or a reordering.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import anyio
import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.checkpoints import cli as checkpoints_cli
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.checkpoints.errors import CorruptCheckpointError
from streamlet.checkpoints.stats import CheckpointStatus
from streamlet.errors import JobCancelledError
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.testing import FaultInjector, inject_faults

from .semantics_job import SPLITS, SequenceCheck, configure, expected_lines, to_key_seq

pytestmark = pytest.mark.asyncio

RECORDS = 600
SEEDS = int(os.environ.get("STREAMLET_SOAK_SEEDS", "8"))


def _build(
    env: StreamExecutionEnvironment,
    out_dir: Path,
    *,
    check_parallelism: int = SPLITS,
    delay_s: float = 0.0,
) -> None:
    per_split = RECORDS // SPLITS

    async def slow(line: str) -> str:
        # A slow sink: each record waits (at least a loop round), so the key_by edge in
        # front of it stays full.
        await anyio.sleep(delay_s)
        return line

    (
        env.from_sequence(0, RECORDS - 1)
        .uid("source")
        .map(to_key_seq(per_split))
        .uid("to-key-seq")
        .key_by(lambda t: t[0])
        .process(SequenceCheck())
        .uid("check")
        .set_parallelism(check_parallelism)
        .map(slow)
        .uid("slow")
        .set_parallelism(check_parallelism)
        .sink_to(FileSink(out_dir))
        .uid("sink")
        .set_parallelism(check_parallelism)
    )


def _configure(env: StreamExecutionEnvironment, base: Path, timeout_ms: int = 0) -> None:
    configure(env, base / "checkpoints", interval_ms=10)
    env.set_channel_capacity(2)
    env.set_batch_size(4)
    config = env.get_checkpoint_config()
    config.enable_unaligned_checkpoints()
    config.set_aligned_checkpoint_timeout(timeout_ms)


def _assert_exactly_once(lines: list[str]) -> None:
    alerts = [line for line in lines if line.startswith("ALERT")]
    assert not alerts, alerts[:5]
    assert sorted(lines) == expected_lines(RECORDS)


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_exactly_once_under_random_faults_with_unaligned_checkpoints(
    tmp_path: Path, seed: int
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)
    injector = inject_faults(
        env,
        FaultInjector.random(
            seed,
            operators=["check", "slow", "to-key-seq"],
            parallelism=SPLITS,
            max_record=RECORDS // SPLITS,
            count=3,
        ),
    )
    _build(env, tmp_path / "out")
    with anyio.fail_after(60):
        client = await env.execute_async(f"unaligned-{seed}")
        result = await client.wait()
    _assert_exactly_once(read_committed(tmp_path / "out"))
    assert (result.restart_count >= 1) == (len(injector.fired) >= 1)
    stats = client.checkpoint_stats()
    assert any(s.unaligned and s.persisted_data > 0 for s in stats)


async def test_aligned_timeout_switches_checkpoints_to_unaligned(tmp_path: Path) -> None:
    # Start aligned; under full channels the 1 ms alignment timeout passes at once.
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path, timeout_ms=1)
    _build(env, tmp_path / "out")
    with anyio.fail_after(60):
        client = await env.execute_async("unaligned-timeout")
        await client.wait()
    _assert_exactly_once(read_committed(tmp_path / "out"))
    subtasks = [sub for s in client.checkpoint_stats() for sub in s.subtasks]
    # Sources start aligned (the timeout is > 0); subtasks behind full channels switched.
    assert not any(
        sub.unaligned_checkpoint for sub in subtasks if sub.operator.startswith("Source")
    )
    assert any(sub.unaligned_checkpoint and sub.persisted_data > 0 for sub in subtasks)


async def _run_until_checkpoint_with_inflight_data(base: Path) -> None:
    """Run the job at parallelism 3 until a completed checkpoint holds in-flight records,
    then cancel it."""
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, base)
    _build(env, base / "out", delay_s=0.002)
    client = await env.execute_async("rescale")
    with anyio.fail_after(30):
        while not any(
            s.persisted_data > 0 and s.status is CheckpointStatus.COMPLETED
            for s in client.checkpoint_stats()
        ):
            await anyio.sleep(0.005)
    await client.cancel()
    with pytest.raises(JobCancelledError):
        await client.wait()


@pytest.mark.parametrize("new_parallelism", [2, 4])
async def test_restore_unaligned_checkpoint_at_another_parallelism(
    tmp_path: Path, new_parallelism: int
) -> None:
    await _run_until_checkpoint_with_inflight_data(tmp_path)
    # The checkpoint to restore holds in-flight records, so they are rescaled.
    latest = _latest_checkpoint(tmp_path, "rescale")
    assert any(b'"channel_state"' in f.read_bytes() for f in latest.iterdir())
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)
    _build(env, tmp_path / "out", check_parallelism=new_parallelism)
    with anyio.fail_after(60):
        result = await env.execute("rescale", restore="latest")
    assert result.restored_from == str(latest)
    _assert_exactly_once(read_committed(tmp_path / "out"))


def _latest_checkpoint(base: Path, job: str) -> Path:
    checkpoints = (base / "checkpoints" / job).glob("chk-*")
    return max(checkpoints, key=lambda p: int(p.name.removeprefix("chk-")))


async def test_show_validate_and_corrupt_channel_state(tmp_path: Path) -> None:
    await _run_until_checkpoint_with_inflight_data(tmp_path)
    latest = _latest_checkpoint(tmp_path, "rescale")
    out = io.StringIO()
    assert checkpoints_cli.main(["show", str(latest)], out=out) == 0
    assert re.search(r"\d+ rec in \d+ ch", out.getvalue()), out.getvalue()
    # Damage one byte inside the in-flight records of one state file.
    victim = next(f for f in latest.iterdir() if b'"channel_state"' in f.read_bytes())
    data = bytearray(victim.read_bytes())
    at = data.index(b'"records":[') + len(b'"records":[')
    data[at] ^= 0x01
    victim.write_bytes(bytes(data))
    out = io.StringIO()
    assert checkpoints_cli.main(["validate", str(latest)], out=out) == 1
    assert victim.name in out.getvalue() and "corrupt" in out.getvalue()
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)
    _build(env, tmp_path / "out")
    with pytest.raises(CorruptCheckpointError, match=victim.name):
        await env.execute("rescale", restore=str(latest))


async def test_at_least_once_ignores_the_switch_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)
    env.get_checkpoint_config().set_checkpointing_mode(CheckpointingMode.AT_LEAST_ONCE)
    _build(env, tmp_path / "out")
    with anyio.fail_after(60):
        client = await env.execute_async("unaligned-alo")
        await client.wait()
    assert "unaligned checkpoints apply to EXACTLY_ONCE only" in caplog.text
    subtasks = [sub for s in client.checkpoint_stats() for sub in s.subtasks]
    assert subtasks and not any(sub.unaligned_checkpoint for sub in subtasks)


@pytest.mark.parametrize("forced", [False, True])
async def test_forward_edges_stay_aligned_unless_forced(tmp_path: Path, forced: bool) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)
    env.get_checkpoint_config().set_force_unaligned_checkpoints(forced)
    env.disable_operator_chaining()  # source -> map is a forward edge between subtasks
    _build(env, tmp_path / "out")
    with anyio.fail_after(60):
        client = await env.execute_async("unaligned-forward")
        await client.wait()
    _assert_exactly_once(read_committed(tmp_path / "out"))
    # "to-key-seq" reads only the forward edge from the source.
    mapper = [
        sub
        for s in client.checkpoint_stats()
        for sub in s.subtasks
        if sub.operator.startswith("Map")
    ]
    assert mapper
    assert any(sub.unaligned_checkpoint for sub in mapper) is forced
