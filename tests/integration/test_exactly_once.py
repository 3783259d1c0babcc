"""End-to-end exactly-once under injected faults and process crashes (issue 5).

For many seeds, the semantics job runs with checkpoints every 20 ms while seeded faults hit
random records, subtasks and phases (processing, snapshot, restore). The committed output
must equal the failure-free output: nothing lost, nothing repeated, and the per-key check
saw every key's records in order (no ALERT line). ``STREAMLET_SOAK_SEEDS`` raises the count
(``make soak``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.operators.sinks.file import read_committed
from streamlet.testing import FaultInjector, inject_faults

from .semantics_job import SPLITS, build, configure, expected_lines

pytestmark = pytest.mark.asyncio

RECORDS = 1200
SEEDS = int(os.environ.get("STREAMLET_SOAK_SEEDS", "50"))
ROOT = Path(__file__).resolve().parents[2]


async def _run(
    tmp_path: Path, seed: int, mode: CheckpointingMode, incremental: bool = False
) -> tuple[list[str], int, int]:
    env = StreamExecutionEnvironment.get_execution_environment()
    # Incremental: several retained generations share pieces, and restores fall back on them.
    configure(
        env,
        tmp_path / "checkpoints",
        mode=mode,
        incremental=incremental,
        retained=3 if incremental else 1,
    )
    injector = inject_faults(
        env,
        FaultInjector.random(
            seed,
            operators=["check", "sink", "to-key-seq"],
            parallelism=SPLITS,
            max_record=RECORDS // SPLITS,
            count=3,
        ),
    )
    build(env, RECORDS, tmp_path / "out", exactly_once=mode is CheckpointingMode.EXACTLY_ONCE)
    with anyio.fail_after(60):
        result = await env.execute(f"semantics-{seed}")
    return read_committed(tmp_path / "out"), result.restart_count, len(injector.fired)


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@pytest.mark.parametrize("seed", range(SEEDS))
async def test_exactly_once_under_random_faults(
    tmp_path: Path, seed: int, incremental: bool
) -> None:
    lines, restarts, fired = await _run(tmp_path, seed, CheckpointingMode.EXACTLY_ONCE, incremental)
    alerts = [line for line in lines if line.startswith("ALERT")]
    assert not alerts, alerts[:5]
    # Faults firing in the same attempt cause one restart between them.
    assert (restarts >= 1) == (fired >= 1) and restarts <= fired
    assert sorted(lines) == expected_lines(RECORDS)


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@pytest.mark.parametrize("seed", range(0, SEEDS, 5))
async def test_at_least_once_loses_nothing_under_random_faults(
    tmp_path: Path, seed: int, incremental: bool
) -> None:
    lines, _, _ = await _run(tmp_path, seed, CheckpointingMode.AT_LEAST_ONCE, incremental)
    assert not [line for line in lines if line.startswith("ALERT")]
    assert set(lines) == set(expected_lines(RECORDS))


async def test_failure_free_run_is_the_reference(tmp_path: Path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    configure(env, tmp_path / "checkpoints")
    build(env, RECORDS, tmp_path / "out")
    await env.execute("reference")
    lines = read_committed(tmp_path / "out")
    assert sorted(lines) == expected_lines(RECORDS)
    assert not Counter(lines) - Counter(expected_lines(RECORDS))


@pytest.mark.slow
@pytest.mark.parametrize("checkpoints", ["aligned", "unaligned", "incremental"])
def test_process_killed_at_random_moments_resumes_exactly_once(
    tmp_path: Path, checkpoints: str
) -> None:
    """SIGKILL the whole process again and again; each start restores "latest"."""
    records = 6000
    rng = random.Random(1234)
    command = [
        sys.executable,
        str(Path(__file__).with_name("semantics_job.py")),
        str(records),
        str(tmp_path),
        checkpoints,
    ]
    # Inherited entries first (under make mutants: the mutated copy's streamlet), then ROOT.
    inherited = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (inherited, str(ROOT)) if p)}
    kills = 0
    log = tmp_path / "job.log"
    for _ in range(6):
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
            )
            try:
                process.wait(timeout=rng.uniform(0.5, 1.5))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
        assert process.returncode == 0, log.read_text()[-2000:]
        break
    else:
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert kills >= 1
    lines = read_committed(tmp_path / "out")
    assert not [line for line in lines if line.startswith("ALERT")]
    assert sorted(lines) == expected_lines(records)
