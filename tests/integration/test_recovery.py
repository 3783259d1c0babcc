"""Restore at start, savepoints and rescaling (DESIGN §6)."""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    FileSink,
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    read_committed,
)
from streamlet.checkpoints.errors import CorruptCheckpointError
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sources.base import Source
from streamlet.state import ValueStateDescriptor
from streamlet.state.key_groups import assign_to_key_group, subtask_for_key_group
from streamlet.testing import FaultInjector, inject_faults
from tests.helpers import Ranges

pytestmark = pytest.mark.asyncio

N = 6000
KEYS = 40


class CountPerKey(KeyedProcessFunction):
    """Emits (key, subtask index, running count) per record."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))
        self.index = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: int, ctx: KeyedProcessFunction.Context):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield (ctx.get_current_key(), self.index, n)


def build(env: StreamExecutionEnvironment, source: Source[int], out: list[Any]) -> None:
    (
        env.from_source(source)
        .uid("source")
        .key_by(lambda i: f"k{i % KEYS}")
        .process(CountPerKey())
        .uid("counter")
        .add_sink(out.append)
    )


def env_for(tmp_path: Path, parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    return env


def finals(out: list[tuple[str, int, int]]) -> dict[str, int]:
    result: dict[str, int] = defaultdict(int)
    for key, _, n in out:
        result[key] = max(result[key], n)
    return dict(result)


def assert_placement(out: list[tuple[str, int, int]], parallelism: int) -> None:
    for key, index, _ in out:
        assert index == subtask_for_key_group(assign_to_key_group(key, 128), parallelism, 128)


async def _run_until_paused_then_stop(
    env: StreamExecutionEnvironment,
    source: Ranges,
    savepoints: Path,
    restore: str | None = None,
) -> str:
    client = await env.execute_async("rescale", restore=restore)
    with anyio.fail_after(10):
        while source.paused < 4:
            await anyio.sleep(0.005)
    path = await client.stop_with_savepoint(str(savepoints))
    result = await client.wait()
    assert result.savepoint_path == path
    return path


async def test_rescale_4_to_2_to_3_keeps_per_key_results_and_placement(tmp_path: Path) -> None:
    savepoints = tmp_path / "savepoints"
    # Phase 1 at parallelism 4: the first quarter of every split, then a savepoint.
    out1: list[Any] = []
    source = Ranges(N, pause_after=N // 16)
    env = env_for(tmp_path, 4)
    build(env, source, out1)
    sp1 = await _run_until_paused_then_stop(env, source, savepoints)
    assert_placement(out1, 4)

    # Phase 2 at parallelism 2, restored from it: up to half of every split.
    out2: list[Any] = []
    source = Ranges(N, pause_after=N // 8)
    env = env_for(tmp_path, 2)
    build(env, source, out2)
    sp2 = await _run_until_paused_then_stop(env, source, savepoints, restore=sp1)
    assert_placement(out2, 2)

    # Phase 3 at parallelism 3, restored from that: to the end.
    out3: list[Any] = []
    env = env_for(tmp_path, 3)
    build(env, Ranges(N), out3)
    await env.execute("rescale", restore=sp2)
    assert_placement(out3, 3)

    expected = {f"k{k}": N // KEYS for k in range(KEYS)}
    assert finals(out3) == expected
    # Every count from 1 to N/KEYS appears per key over the three runs (none skipped).
    seen: dict[str, set[int]] = defaultdict(set)
    for key, _, n in out1 + out2 + out3:
        seen[key].add(n)
    assert all(seen[key] == set(range(1, N // KEYS + 1)) for key in expected)


async def test_savepoint_while_running_then_restore_from_it(tmp_path: Path) -> None:
    source = Ranges(N, pause_after=N // 8)
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, source, out)
    client = await env.execute_async("savepoint")
    with anyio.fail_after(10):
        while source.paused < 4:
            await anyio.sleep(0.005)
    path = await client.trigger_savepoint(str(tmp_path / "savepoints"))
    assert Path(path, "_metadata").is_file()
    source.gate.set()
    await client.wait()
    assert finals(out) == {f"k{k}": N // KEYS for k in range(KEYS)}

    # The savepoint holds the state at its cut: restoring it and replaying the rest of the
    # input arrives at the same totals.
    again: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, Ranges(N), again)
    await env.execute("savepoint-restored", restore=path)
    assert finals(again) == {f"k{k}": N // KEYS for k in range(KEYS)}
    assert min(n for _, _, n in again) > 1  # counting resumed, not restarted


async def test_restore_latest_without_checkpoints_starts_fresh_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, Ranges(400), out)
    with caplog.at_level(logging.INFO, logger="streamlet.job.recovery"):
        await env.execute("fresh", restore="latest")
    assert "no completed checkpoint to restore; starting from scratch" in caplog.text
    assert finals(out) == {f"k{k}": 10 for k in range(KEYS)}


async def _checkpointed_run(tmp_path: Path, name: str, retained: int = 3) -> Path:
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_max_retained_checkpoints(retained)
    out: list[Any] = []
    build(env, Ranges(2000, pace_batches=8), out)
    result = await env.execute(name)
    assert result.checkpoints_completed >= 3
    return tmp_path / "checkpoints" / name


async def test_restore_latest_falls_back_past_a_corrupt_checkpoint_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No exactly-once sink can have committed past the older checkpoint: fall back, loudly."""
    job_dir = await _checkpointed_run(tmp_path, "corrupt")
    chks = sorted(job_dir.glob("chk-*"), key=lambda p: int(p.name[4:]))
    assert len(chks) >= 2
    newest = chks[-1]
    state_file = next(newest.glob("op-counter-*.state"))
    data = bytearray(state_file.read_bytes())
    data[-5] ^= 0xFF
    state_file.write_bytes(bytes(data))

    out: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, Ranges(2000), out)
    with caplog.at_level(logging.INFO, logger="streamlet.job.recovery"):
        result = await env.execute("corrupt", restore="latest")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        f"damaged checkpoint {newest.name[4:]}" in m and state_file.name in m for m in errors
    )
    previous = chks[-2]
    assert result.restored_from == str(previous)
    assert any(f"falling back past the damaged checkpoint(s) to {previous}" in m for m in errors)
    # Restored from the previous checkpoint, the job ends with exact per-key counts.
    totals = finals(out)
    for key, n in totals.items():
        assert n == 50, (key, n)

    env = env_for(tmp_path, 2)
    build(env, Ranges(2000), [])
    with pytest.raises(CorruptCheckpointError, match=state_file.name):
        await env.execute("corrupt-explicit", restore=str(newest))


async def test_state_of_an_unknown_uid_needs_allow_non_restored_state(tmp_path: Path) -> None:
    job_dir = await _checkpointed_run(tmp_path, "uids")
    latest = max(job_dir.glob("chk-*"), key=lambda p: int(p.name[4:]))
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    (
        env.from_source(Ranges(2000))
        .uid("source")
        .key_by(lambda i: f"k{i % KEYS}")
        .process(CountPerKey())
        .uid("renamed-counter")
        .add_sink(out.append)
    )
    with pytest.raises(
        ValueError, match=r"operator uid\(s\) \['counter'\] that this job does not have"
    ):
        await env.execute("uids", restore=str(latest))

    env = env_for(tmp_path, 2)
    (
        env.from_source(Ranges(2000))
        .uid("source")
        .key_by(lambda i: f"k{i % KEYS}")
        .process(CountPerKey())
        .uid("renamed-counter")
        .add_sink(out.append)
    )
    await env.execute("uids", restore=str(latest), allow_non_restored_state=True)


async def test_restart_restores_the_latest_checkpoint_and_counts_stay_exact(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path, 3)
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(5, 0))
    injector = inject_faults(
        env,
        FaultInjector().fail_record("counter", 300, subtask=1).fail_snapshot("counter", 2, 0),
    )
    out: list[Any] = []
    build(env, Ranges(N), out)
    result = await env.execute("restarts")
    assert result.restart_count == 2
    assert len(injector.fired) == 2
    assert finals(out) == {f"k{k}": N // KEYS for k in range(KEYS)}
    # A restart from scratch would give the same final counts: check it restored.
    assert result.restored_from is not None
    assert Path(result.restored_from).parent == tmp_path / "checkpoints" / "restarts"


async def test_exhausted_restart_strategy_raises_the_last_failure(tmp_path: Path) -> None:
    from streamlet import JobExecutionError
    from streamlet.testing.faults import InjectedFault

    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    inject_faults(env, FaultInjector().fail_record("counter", 50, 0).fail_record("counter", 100, 1))
    build(env, Ranges(N), [])
    with pytest.raises(JobExecutionError) as info:
        await env.execute("exhausted")
    assert isinstance(info.value.__cause__, InjectedFault)
    assert "record 100" in str(info.value.__cause__)


async def test_a_savepoint_on_disk_restores_into_a_job_with_in_memory_checkpoints(
    tmp_path: Path,
) -> None:
    # Regression: the path was resolved through the job's (memory) storage and not found.
    source = Ranges(N, pause_after=N // 8)
    env = env_for(tmp_path, 2)
    build(env, source, [])
    path = await _run_until_paused_then_stop(env, source, tmp_path / "savepoints")

    out: list[Any] = []
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    build(env, Ranges(N), out)  # no checkpoint directory: checkpoints in memory
    await env.execute("rescale", restore=path)
    assert finals(out) == {f"k{k}": N // KEYS for k in range(KEYS)}


# --- the restore policy: savepoints are recovery points, damage never rewinds committed output


def fail_once_when_armed(switch: dict[str, bool]) -> Any:
    """A map that raises once at the first record after ``switch["armed"]`` is set (a
    closure, not an object: function objects are copied per subtask)."""

    def fail(x: int) -> int:
        if switch["armed"] and not switch["fired"]:
            switch["fired"] = True
            raise RuntimeError("planted failure after the savepoint")
        return x

    return fail


def build_exactly_once(
    env: StreamExecutionEnvironment, source: Source[int], out_dir: Path, fail: Any = None
) -> None:
    stream = env.from_source(source).uid("source")
    if fail is not None:
        stream = stream.map(fail).uid("fail")
    stream.map(str).uid("str").sink_to(FileSink(str(out_dir))).uid("sink")


def assert_committed_exactly_once(out_dir: Path, n: int) -> None:
    lines = read_committed(out_dir)
    assert len(lines) == n and set(lines) == {str(i) for i in range(n)}


async def test_a_failover_after_a_savepoint_restores_the_savepoint(tmp_path: Path) -> None:
    # The savepoint's completion let the FileSink commit up to it; restoring anything older
    # (here: nothing, no periodic checkpoint completes) would commit those records again.
    source = Ranges(N, pause_after=N // 8)
    switch = {"armed": False, "fired": False}
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(3_600_000)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    build_exactly_once(env, source, tmp_path / "out", fail_once_when_armed(switch))
    client = await env.execute_async("savepoint-failover")
    with anyio.fail_after(10):
        while source.paused < 4:
            await anyio.sleep(0.005)
    path = await client.trigger_savepoint(str(tmp_path / "savepoints"))
    with anyio.fail_after(10):  # the savepoint's notification commits the sink
        while len(read_committed(tmp_path / "out")) < N // 2:
            await anyio.sleep(0.005)
    switch["armed"] = True
    source.gate.set()
    result = await client.wait()
    assert switch["fired"] and result.restart_count == 1
    assert result.restored_from == path
    assert_committed_exactly_once(tmp_path / "out", N)


async def test_stop_with_savepoint_then_restore_latest_resumes_from_it(tmp_path: Path) -> None:
    source = Ranges(N, pause_after=N // 8)
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(3_600_000)
    build_exactly_once(env, source, tmp_path / "out")
    client = await env.execute_async("stopped")
    with anyio.fail_after(10):
        while source.paused < 4:
            await anyio.sleep(0.005)
    path = await client.stop_with_savepoint(str(tmp_path / "savepoints"))
    await client.wait()
    # The sinks committed what the savepoint covers before the job stopped (Flink's
    # synchronous savepoint): what each of the 4 splits read before it paused (whole
    # batches of 16, up to N // 8 records), once.
    before = read_committed(tmp_path / "out")
    per_split = -(-(N // 8) // 16) * 16
    split_starts = [i * N // 4 for i in range(4)]
    assert sorted(before, key=int) == [str(lo + j) for lo in split_starts for j in range(per_split)]

    env = env_for(tmp_path, 2)
    env.enable_checkpointing(3_600_000)
    build_exactly_once(env, Ranges(N), tmp_path / "out")
    result = await env.execute("stopped", restore="latest")
    assert result.restored_from == path
    assert_committed_exactly_once(tmp_path / "out", N)


async def _committed_run(tmp_path: Path, name: str, retained: int) -> Path:
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_max_retained_checkpoints(retained)
    build_exactly_once(env, Ranges(2000, pace_batches=8), tmp_path / "out")
    result = await env.execute(name)
    assert result.checkpoints_completed >= 2
    return tmp_path / "checkpoints" / name


def newest_checkpoint(job_dir: Path) -> Path:
    return max(job_dir.glob("chk-*"), key=lambda p: int(p.name[4:]))


@pytest.mark.parametrize("damage", ["metadata lost", "state bit flipped", "metadata unreadable"])
async def test_restore_latest_refuses_to_rewind_past_what_an_exactly_once_sink_committed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    job_dir = await _committed_run(tmp_path, "committed", retained=2)
    newest = newest_checkpoint(job_dir)
    if damage == "metadata lost":
        (newest / "_metadata").unlink()
        bad = newest / "_metadata"
    elif damage == "metadata unreadable":
        (newest / "_metadata").unlink()
        (newest / "_metadata").mkdir()  # reading it fails (EISDIR), as a bad sector does (EIO)
        bad = newest / "_metadata"
    else:
        bad = next(newest.glob("op-*.state"))
        data = bytearray(bad.read_bytes())
        data[len(data) // 2] ^= 1
        bad.write_bytes(bytes(data))
    before = read_committed(tmp_path / "out")

    env = env_for(tmp_path, 2)
    build_exactly_once(env, Ranges(2000), tmp_path / "out")
    with caplog.at_level(logging.ERROR, logger="streamlet.job.recovery"):
        with pytest.raises(CorruptCheckpointError, match="exactly-once sink") as info:
            await env.execute("committed", restore="latest")
    assert str(bad) in str(info.value)
    assert any(
        f"damaged checkpoint {newest.name[4:]}" in r.getMessage() and str(bad) in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )
    assert read_committed(tmp_path / "out") == before  # nothing committed twice


async def test_restore_latest_refuses_when_no_valid_checkpoint_is_left(tmp_path: Path) -> None:
    job_dir = await _checkpointed_run(tmp_path, "nothing-left", retained=1)
    only = newest_checkpoint(job_dir)
    for state_file in only.glob("op-*.state"):
        data = bytearray(state_file.read_bytes())
        data[len(data) // 2] ^= 1
        state_file.write_bytes(bytes(data))
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, Ranges(2000), out)
    with pytest.raises(CorruptCheckpointError, match="no valid checkpoint is left"):
        await env.execute("nothing-left", restore="latest")
    assert out == []  # never started from empty state


async def test_unreadable_metadata_falls_back_like_corrupt_metadata(tmp_path: Path) -> None:
    # Without an exactly-once sink both kinds of damage fall back to the older checkpoint.
    job_dir = await _checkpointed_run(tmp_path, "unreadable")
    newest = newest_checkpoint(job_dir)
    (newest / "_metadata").unlink()
    (newest / "_metadata").mkdir()
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    build(env, Ranges(2000), out)
    result = await env.execute("unreadable", restore="latest")
    assert result.restored_from is not None and Path(result.restored_from) != newest
    assert out and all(n == 50 for n in finals(out).values())  # resumed, exact counts


async def test_a_start_removes_checkpoints_a_crash_left_without_metadata(tmp_path: Path) -> None:
    job_dir = await _checkpointed_run(tmp_path, "crashed")
    newest = newest_checkpoint(job_dir)
    crash_left = job_dir / f"chk-{int(newest.name[4:]) + 1}"
    crash_left.mkdir()
    shutil.copy(next(newest.glob("op-*.state")), crash_left)
    env = env_for(tmp_path, 2)
    build(env, Ranges(2000), [])
    result = await env.execute("crashed", restore="latest")
    assert result.restored_from == str(newest)  # an in-flight checkpoint is not damage
    assert not crash_left.exists()
