"""Incremental checkpoints end to end: shared pieces, reference counting, damage, savepoints.

Every test ends with the same invariant over the job's checkpoint directory: each piece a
completed checkpoint references is in ``shared/`` (nothing a retained checkpoint needs was
removed), and ``shared/`` holds nothing else (nothing leaked).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.checkpoints.metadata import decode_metadata
from streamlet.checkpoints.validation import Validity, inspect_checkpoint_dir
from streamlet.job.restart import RestartStrategies
from streamlet.testing import FaultInjector, inject_faults
from tests.helpers import Ranges
from tests.integration.test_recovery import CountPerKey, finals

pytestmark = pytest.mark.asyncio

N = 4000
KEYS = 500


def env_for(tmp_path: Path, parallelism: int, retained: int = 3) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    config = env.get_checkpoint_config()
    config.set_checkpoint_storage_dir(tmp_path / "checkpoints")
    config.enable_incremental_checkpointing(True)
    config.set_max_retained_checkpoints(retained)
    return env


def build(env: StreamExecutionEnvironment, source: Ranges, out: list[Any]) -> None:
    (
        env.from_source(source)
        .uid("source")
        .key_by(lambda i: f"k{i % KEYS}")
        .process(CountPerKey())
        .uid("counter")
        .add_sink(out.append)
    )


def expected() -> dict[str, int]:
    return {f"k{k}": N // KEYS for k in range(KEYS)}


def assert_resumed_exactly(out: list[tuple[str, int, int]]) -> None:
    """Each key's counts after a restore run on, one by one, to the key's record count:
    which holds only if the restored count was exact (the replay starts at the cut)."""
    counts: dict[str, list[int]] = {}
    for key, _, n in out:
        counts.setdefault(key, []).append(n)
    assert counts
    for key, ns in counts.items():
        assert sorted(ns) == list(range(min(ns), N // KEYS + 1)), (key, ns)
    assert any(min(ns) > 1 for ns in counts.values())  # resumed, not restarted


def completed_dirs(job_dir: Path) -> list[Path]:
    dirs = [d for d in job_dir.glob("chk-*") if (d / "_metadata").is_file()]
    return sorted(dirs, key=lambda d: int(d.name[4:]))


def referenced(chk: Path) -> set[str]:
    return set(decode_metadata((chk / "_metadata").read_bytes()).pieces)


def assert_pieces_consistent(job_dir: Path) -> None:
    needed: set[str] = set()
    for chk in completed_dirs(job_dir):
        needed |= referenced(chk)
    present = {p.name for p in (job_dir / "shared").glob("*.piece")}
    assert needed <= present, f"removed while referenced: {sorted(needed - present)}"
    assert present <= needed, f"left behind: {sorted(present - needed)}"


async def checkpointed_run(
    tmp_path: Path, name: str, *, parallelism: int = 2, retained: int = 3
) -> Path:
    env = env_for(tmp_path, parallelism, retained)
    env.enable_checkpointing(10)
    out: list[Any] = []
    build(env, Ranges(N, pace_batches=4), out)
    result = await env.execute(name)
    assert result.checkpoints_completed >= 4
    assert finals(out) == expected()
    return tmp_path / "checkpoints" / name


async def test_checkpoints_share_pieces_and_write_only_changes(tmp_path: Path) -> None:
    job_dir = await checkpointed_run(tmp_path, "shares", retained=5)
    chks = completed_dirs(job_dir)
    assert len(chks) == 5
    metas = [decode_metadata((c / "_metadata").read_bytes()) for c in chks]
    # A base is followed by changes on top of it (until the changes outweigh it), so
    # among five generations some reference pieces of earlier ones, and wrote less than
    # their full size.
    shared = [
        m
        for m in metas
        if any(p.checkpoint_id < m.checkpoint_id for h in m.states for p in h.pieces)
    ]
    assert shared
    assert all(m.checkpointed_size < m.state_size for m in shared)
    assert all(m.checkpointed_size <= m.state_size for m in metas)
    for chk in chks:
        report = inspect_checkpoint_dir(chk, deep=True)
        assert report.validity is Validity.VALID, report.problems
    assert_pieces_consistent(job_dir)


@pytest.mark.parametrize("parallelism", [1, 3])
async def test_restore_from_an_older_generation_at_another_parallelism(
    tmp_path: Path, parallelism: int
) -> None:
    job_dir = await checkpointed_run(tmp_path, "rescale", retained=6)
    # The oldest generation whose keyed state is a base and changes on top of it.
    oldest = next(
        chk
        for chk in completed_dirs(job_dir)[:-1]
        if any(len(h.pieces) > 1 for h in decode_metadata((chk / "_metadata").read_bytes()).states)
    )
    out: list[Any] = []
    env = env_for(tmp_path, parallelism)
    env.enable_checkpointing(10)
    build(env, Ranges(N, pace_batches=4), out)
    result = await env.execute("rescale", restore=str(oldest))
    assert result.restored_from == str(oldest)
    assert_resumed_exactly(out)
    # The restored checkpoint and those of the first run keep every piece they need;
    # retention removed only what no checkpoint on disk references.
    assert_pieces_consistent(job_dir)
    for chk in completed_dirs(job_dir):
        assert inspect_checkpoint_dir(chk, deep=False).validity is Validity.VALID


@pytest.mark.parametrize("seed", range(6))
async def test_reference_counting_under_failover(tmp_path: Path, seed: int) -> None:
    env = env_for(tmp_path, 3, retained=2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(1000)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 0))
    injector = inject_faults(
        env,
        FaultInjector.random(
            seed, operators=["counter"], parallelism=3, max_record=N // 3, count=3
        ),
    )
    out: list[Any] = []
    build(env, Ranges(N, pace_batches=4), out)
    with anyio.fail_after(60):
        result = await env.execute("failover")
    assert (result.restart_count >= 1) == (len(injector.fired) >= 1)
    assert finals(out) == expected()
    assert_pieces_consistent(tmp_path / "checkpoints" / "failover")


async def test_missing_or_corrupt_shared_piece_is_detected_and_restore_falls_back(
    tmp_path: Path,
) -> None:
    job_dir = await checkpointed_run(tmp_path, "damaged")
    chks = completed_dirs(job_dir)
    newest = chks[-1]
    # The newest checkpoint may have written nothing of its own (the bounded job's final
    # checkpoint, when the last records came before the one ahead of it): damage the piece
    # it references that the latest checkpoint wrote, so that an earlier one does not need it.
    writer, own = next(
        (chk, own)
        for chk, before in zip(reversed(chks[1:]), reversed(chks[:-1]), strict=True)
        if (own := (referenced(chk) & referenced(newest)) - referenced(before))
    )
    victim = job_dir / "shared" / sorted(own)[0]
    fallback = [chk for chk in chks if victim.name not in referenced(chk)][-1]
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF
    victim.write_bytes(bytes(data))
    report = inspect_checkpoint_dir(newest, deep=True)
    assert report.validity is Validity.CORRUPT
    assert any(p.file == str(victim) and "shared piece" in p.reason for p in report.problems)

    victim.unlink()
    report = inspect_checkpoint_dir(newest, deep=False)
    assert [p.reason for p in report.problems] == [
        f"missing shared piece (written by checkpoint {writer.name[4:]})"
    ]
    env = env_for(tmp_path, 2)
    build(env, Ranges(N), [])
    result = await env.execute("damaged", restore="latest")
    assert result.restored_from == str(fallback)


async def test_a_savepoint_is_self_contained(tmp_path: Path) -> None:
    source = Ranges(N, pause_after=N // 8, pace_batches=4)
    out: list[Any] = []
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    build(env, source, out)
    client = await env.execute_async("savepoint")
    with anyio.fail_after(10):
        while source.paused < 4:
            await anyio.sleep(0.005)
    path = await client.stop_with_savepoint(str(tmp_path / "savepoints"))
    await client.wait()
    metadata = decode_metadata((Path(path) / "_metadata").read_bytes())
    assert not metadata.pieces
    assert metadata.checkpointed_size == metadata.state_size
    # Nothing of the checkpoints is needed to restore it.
    shutil.rmtree(tmp_path / "checkpoints")
    again: list[Any] = []
    env = env_for(tmp_path, 3)
    build(env, Ranges(N), again)
    await env.execute("savepoint", restore=path)
    assert_resumed_exactly(again)
