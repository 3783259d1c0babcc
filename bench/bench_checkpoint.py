"""Checkpoint benchmark: what periodic checkpoints cost a running job, and how long they stop it.

(a) Throughput of the keyed running count ``map(i -> (i % 1000, 1)) -> key_by -> reduce(sum)``
    into a counting sink, with file checkpoints every 100 ms (EXACTLY_ONCE and AT_LEAST_ONCE)
    against the same job without checkpoints, at parallelism 1 and 2 (issue 12, part 3).
    Runs are interleaved (the order rotates per repetition); each ratio is the median, over
    ``STREAMLET_BENCH_REPEAT`` (default 5) repetitions, of ``off / on`` in that repetition.
    The CPU-time ratio (whole process, worker threads included) is the primary figure: it
    is what checkpointing costs in work, and other processes on a shared machine disturb it
    less than the wall-time ratio, which is printed beside it. Targets: >= 0.92 at p=1 and
    >= 0.88 at p=2, both modes.
(b) Large state (part 4): the same job over ``i % KEYS`` (``STREAMLET_BENCH_CKPT_KEYS``,
    default 1,000,000 keys; ``2 * KEYS`` records, so every key exists after the first half)
    at parallelism 2, EXACTLY_ONCE, against the same job without checkpoints. Every callback
    the event loop runs (one *loop step*: a task step, a timer) is timed in CPU time of the
    loop thread (``time.thread_time``) and in wall time. A step's *checkpoint work* is the
    whole step for a checkpoint task (the asynchronous part of a snapshot, the coordinator)
    and the time spent in the synchronous checkpoint calls (``snapshot_sync``,
    serialize-ahead) for a subtask's step; garbage-collector passes (``gc.callbacks``) are
    taken out of it and reported on their own line, since they pause the loop with or
    without checkpoints. Target: no step with over 5 ms CPU of checkpoint work. The gaps
    between records (a probe map after the keyed operator) are printed as context.

``STREAMLET_BENCH_N`` (default 4,000,000) scales (a): each run should last >= 1 s.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench.bench_engine import CountingSink, add, key_of, to_pair
from streamlet import MapFunction, StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.checkpoints.stats import CheckpointStats, CheckpointStatus

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_N", "4000000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
KEYS = int(os.environ.get("STREAMLET_BENCH_CKPT_KEYS", "1000000"))
INTERVAL_MS = 100
#: Throughput ratio targets (checkpoints on / off) by parallelism, for both modes.
THROUGHPUT_TARGETS = {1: 0.92, 2: 0.88}
#: No loop step may hold this much CPU time of checkpoint work (1M keys, p=2).
STEP_TARGET_MS = 5.0
#: Gaps shorter than this are not recorded (they are ordinary per-batch work).
_GAP_FLOOR_S = 0.0005
#: Names of the tasks whose every step is checkpoint work (how their names end).
_CHECKPOINT_TASKS = ("_write_and_ack", "run_coordinator", "final_checkpoint")

_MODES: dict[str, CheckpointingMode | None] = {
    "off": None,
    "exactly_once": CheckpointingMode.EXACTLY_ONCE,
    "at_least_once": CheckpointingMode.AT_LEAST_ONCE,
}


@dataclass
class _Run:
    seconds: float
    records: int
    #: CPU time of the whole process (every thread), which other processes' load on a
    #: shared machine disturbs less than wall time.
    cpu_seconds: float
    checkpoints: list[CheckpointStats] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    #: ``time.time() - time.perf_counter()`` when the job started (to place gaps in time).
    wall_offset_s: float = 0.0


def _environment(
    parallelism: int, mode: CheckpointingMode | None, directory: Path
) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    if mode is not None:
        env.enable_checkpointing(INTERVAL_MS, mode)
        env.get_checkpoint_config().set_checkpoint_storage_dir(directory)
    return env


async def _execute(env: StreamExecutionEnvironment, job_name: str, sink: CountingSink) -> _Run:
    offset = time.time() - time.perf_counter()
    start = time.perf_counter()
    cpu_start = time.process_time()
    client = await env.execute_async(job_name)
    await client.wait()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    completed = sorted(
        (s for s in client.checkpoint_stats() if s.status is CheckpointStatus.COMPLETED),
        key=lambda s: s.checkpoint_id,
    )
    return _Run(elapsed, sum(sink.counts), cpu, completed, wall_offset_s=offset)


# --- (a) throughput ---


def _throughput_run(parallelism: int, mode_name: str, directory: Path) -> _Run:
    async def main() -> _Run:
        env = _environment(parallelism, _MODES[mode_name], directory)
        sink = CountingSink()
        env.from_sequence(1, N).map(to_pair).key_by(key_of).reduce(add).sink_to(sink)
        return await _execute(env, f"bench-checkpoint-{mode_name}-p{parallelism}", sink)

    gc.collect()
    return anyio.run(main)


def _throughput(directory: Path) -> list[dict[str, Any]]:
    rows = []
    names = list(_MODES)
    for parallelism in (1, 2):
        runs: dict[str, list[_Run]] = {name: [] for name in names}
        for repetition in range(REPEAT):
            shift = repetition % len(names)
            for name in names[shift:] + names[:shift]:
                result = _throughput_run(parallelism, name, directory)
                assert result.records == N, (name, parallelism, result.records)
                runs[name].append(result)
        target = THROUGHPUT_TARGETS[parallelism]
        offs = runs["off"]
        for name in ("exactly_once", "at_least_once"):
            ons = runs[name]
            wall = statistics.median(o.seconds / r.seconds for o, r in zip(offs, ons, strict=True))
            cpu = statistics.median(
                o.cpu_seconds / r.cpu_seconds for o, r in zip(offs, ons, strict=True)
            )
            durations = [s.end_to_end_duration_ms or 0.0 for r in ons for s in r.checkpoints]
            rows.append(
                {
                    "mode": name,
                    "parallelism": parallelism,
                    "records": N,
                    "off_records_per_s": N / statistics.median(o.seconds for o in offs),
                    "on_records_per_s": N / statistics.median(r.seconds for r in ons),
                    "ratio": wall,
                    "cpu_ratio": cpu,
                    "checkpoints": round(statistics.mean(len(r.checkpoints) for r in ons)),
                    "checkpoint_ms_median": statistics.median(durations) if durations else None,
                    "target": target,
                    "meets_target": cpu >= target and wall >= target,
                }
            )
    return rows


# --- (b) large state and loop steps ---


class _GapLog:
    """Shared by every subtask's copy of the probe (deep copies return the original)."""

    def __init__(self) -> None:
        self.gaps: list[tuple[float, float]] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> _GapLog:
        return self


class _GapProbe(MapFunction):
    """Pass-through map recording ``(end, length)`` of every long gap between two records."""

    def __init__(self, log: _GapLog) -> None:
        self.log = log
        self.last: float | None = None

    def map(self, value: Any) -> Any:
        now = time.perf_counter()
        last = self.last
        self.last = now
        if last is not None and now - last > _GAP_FLOOR_S:
            self.log.gaps.append((now, now - last))
        return value


@dataclass
class _StepLog:
    """What :class:`_LoopSteps` measured (milliseconds)."""

    steps: int = 0
    #: The longest checkpoint work of one loop step, GC taken out: CPU, and wall.
    checkpoint_cpu_ms: float = 0.0
    checkpoint_wall_ms: float = 0.0
    #: The whole of the loop step that holds the longest checkpoint work (CPU, wall).
    checkpoint_step_cpu_ms: float = 0.0
    checkpoint_step_wall_ms: float = 0.0
    #: Steps with over STEP_TARGET_MS CPU of checkpoint work.
    checkpoint_steps_over_target: int = 0
    #: The longest step of anything (GC included), CPU and wall.
    any_step_cpu_ms: float = 0.0
    any_step_wall_ms: float = 0.0
    #: Garbage-collector passes: count per generation, longest (CPU, wall), and the longest
    #: that ran inside a step with checkpoint work.
    gc_counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_cpu_ms: float = 0.0
    gc_wall_ms: float = 0.0
    gc_in_checkpoint_step_wall_ms: float = 0.0


class _LoopSteps:
    """Time every event-loop callback in loop-thread CPU and wall time (a context manager).

    It patches ``asyncio.Handle._run`` (every task step and timer goes through it), wraps
    the synchronous checkpoint calls a subtask makes on the loop, and listens to
    ``gc.callbacks``.
    """

    def __init__(self) -> None:
        self.log = _StepLog()
        self._patched: list[tuple[Any, str, Any]] = []
        self._thread = threading.get_ident()
        # Per step: checkpoint CPU / wall seen in wrapped calls, GC CPU / wall.
        self._cp = [0.0, 0.0]
        self._gc = [0.0, 0.0]
        self._gc_start: tuple[float, float] | None = None
        self._depth = 0

    # --- GC ---

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._gc_start = (time.thread_time(), time.perf_counter())
            return
        if self._gc_start is None:
            return
        cpu = time.thread_time() - self._gc_start[0]
        wall = time.perf_counter() - self._gc_start[1]
        self._gc_start = None
        log = self.log
        log.gc_counts[info["generation"]] += 1
        log.gc_cpu_ms = max(log.gc_cpu_ms, cpu * 1000)
        log.gc_wall_ms = max(log.gc_wall_ms, wall * 1000)
        self._gc[0] += cpu
        self._gc[1] += wall

    # --- checkpoint calls inside subtask steps ---

    def _wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)
        steps = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if steps._depth:
                return original(*args, **kwargs)
            steps._depth += 1
            gc_cpu, gc_wall = steps._gc
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                steps._depth -= 1
                steps._cp[0] += time.thread_time() - cpu - (steps._gc[0] - gc_cpu)
                steps._cp[1] += time.perf_counter() - wall - (steps._gc[1] - gc_wall)

        setattr(owner, name, timed)
        self._patched.append((owner, name, original))

    # --- loop steps ---

    def _run_step(self, original: Callable[[asyncio.Handle], None], handle: asyncio.Handle) -> None:
        self._cp = [0.0, 0.0]
        self._gc = [0.0, 0.0]
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            original(handle)
        finally:
            cpu = time.thread_time() - cpu
            wall = time.perf_counter() - wall
            self._account(handle, cpu, wall)

    def _account(self, handle: asyncio.Handle, cpu: float, wall: float) -> None:
        log = self.log
        log.steps += 1
        log.any_step_cpu_ms = max(log.any_step_cpu_ms, cpu * 1000)
        log.any_step_wall_ms = max(log.any_step_wall_ms, wall * 1000)
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        if isinstance(task, asyncio.Task) and _is_checkpoint_task(task):
            cp_cpu, cp_wall = cpu - self._gc[0], wall - self._gc[1]
        else:
            cp_cpu, cp_wall = self._cp
        if cp_cpu <= 0.0 and cp_wall <= 0.0:
            return
        log.gc_in_checkpoint_step_wall_ms = max(
            log.gc_in_checkpoint_step_wall_ms, self._gc[1] * 1000
        )
        if cp_cpu * 1000 > STEP_TARGET_MS:
            log.checkpoint_steps_over_target += 1
        if cp_cpu * 1000 > log.checkpoint_cpu_ms:
            log.checkpoint_cpu_ms = cp_cpu * 1000
            log.checkpoint_step_cpu_ms = cpu * 1000
            log.checkpoint_step_wall_ms = wall * 1000
        log.checkpoint_wall_ms = max(log.checkpoint_wall_ms, cp_wall * 1000)

    def __enter__(self) -> _LoopSteps:
        import streamlet.runtime.checkpointing
        import streamlet.state.heap_backend

        self._wrap(streamlet.state.heap_backend.HeapKeyedStateBackend, "snapshot_sync")
        self._wrap(streamlet.runtime.checkpointing, "_serialize_ahead")
        original = asyncio.Handle._run
        steps = self

        def run(handle: asyncio.Handle) -> None:
            steps._run_step(original, handle)

        asyncio.Handle._run = run  # type: ignore[method-assign,assignment]
        self._patched.append((asyncio.Handle, "_run", original))
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)


def _is_checkpoint_task(task: asyncio.Task[Any]) -> bool:
    # anyio names a task after its function (its coroutine may be anyio's wrapper).
    name = task.get_name()
    return name.endswith(_CHECKPOINT_TASKS)


def _large_state_run(mode: CheckpointingMode | None, directory: Path) -> tuple[_Run, _StepLog]:
    keys = KEYS

    def to_key_pair(i: int) -> tuple[int, int]:
        return (i % keys, 1)

    async def main() -> _Run:
        env = _environment(2, mode, directory)
        sink = CountingSink()
        log = _GapLog()
        (
            env.from_sequence(0, 2 * keys - 1)
            .map(to_key_pair)
            .key_by(key_of)
            .reduce(add)
            .map(_GapProbe(log))
            .sink_to(sink)
        )
        result = await _execute(env, "bench-checkpoint-large-state", sink)
        result.gaps = log.gaps
        return result

    gc.collect()
    with _LoopSteps() as steps:
        result = anyio.run(main)
    return result, steps.log


def _split_gaps(result: _Run) -> tuple[float, float]:
    """Return the longest gap (ms) overlapping a checkpoint, and the longest outside any."""
    windows = [
        (
            s.trigger_timestamp_ms / 1000,
            s.trigger_timestamp_ms / 1000 + s.end_to_end_duration_ms / 1000,
        )
        for s in result.checkpoints
        if s.end_to_end_duration_ms is not None
    ]
    during = outside = 0.0
    for end, length in result.gaps:
        end_wall = end + result.wall_offset_s
        start_wall = end_wall - length
        if any(start_wall < w_end and end_wall > w_start for w_start, w_end in windows):
            during = max(during, length)
        else:
            outside = max(outside, length)
    return during * 1000, outside * 1000


def _max_subtask(stats: list[CheckpointStats], attribute: str) -> float:
    return max((getattr(sub, attribute) for s in stats for sub in s.subtasks), default=0.0)


def _large_state(directory: Path) -> dict[str, Any]:
    off, off_steps = _large_state_run(None, directory)
    on, steps = _large_state_run(CheckpointingMode.EXACTLY_ONCE, directory)
    assert off.records == on.records == 2 * KEYS
    largest = max((s.state_size for s in on.checkpoints), default=0)
    # Checkpoints taken once (nearly) every key existed.
    full = [s for s in on.checkpoints if s.state_size >= 0.9 * largest]
    durations = [s.end_to_end_duration_ms or 0.0 for s in full]
    during_ms, outside_ms = _split_gaps(on)
    baseline_ms = max((length for _, length in off.gaps), default=0.0) * 1000
    return {
        "keys": KEYS,
        "records": 2 * KEYS,
        "parallelism": 2,
        "off_records_per_s": off.records / off.seconds,
        "on_records_per_s": on.records / on.seconds,
        "cpu_ratio": off.cpu_seconds / on.cpu_seconds,
        "checkpoints": len(on.checkpoints),
        "full_size_checkpoints": len(full),
        "state_size_bytes": largest,
        "end_to_end_ms_median": statistics.median(durations) if durations else None,
        "end_to_end_ms_max": max(durations, default=None),
        "alignment_ms_max": _max_subtask(full, "alignment_duration_ms"),
        "sync_ms_max": _max_subtask(full, "sync_duration_ms"),
        "async_ms_max": _max_subtask(full, "async_duration_ms"),
        "loop_steps": steps.steps,
        "checkpoint_step_cpu_ms_max": steps.checkpoint_cpu_ms,
        "checkpoint_step_wall_ms_max": steps.checkpoint_wall_ms,
        "checkpoint_whole_step_cpu_ms": steps.checkpoint_step_cpu_ms,
        "checkpoint_whole_step_wall_ms": steps.checkpoint_step_wall_ms,
        "checkpoint_steps_over_target": steps.checkpoint_steps_over_target,
        "any_step_cpu_ms_max": steps.any_step_cpu_ms,
        "any_step_wall_ms_max": steps.any_step_wall_ms,
        "any_step_cpu_ms_max_without_checkpointing": off_steps.any_step_cpu_ms,
        "gc_counts": steps.gc_counts,
        "gc_cpu_ms_max": steps.gc_cpu_ms,
        "gc_wall_ms_max": steps.gc_wall_ms,
        "gc_in_checkpoint_step_wall_ms_max": steps.gc_in_checkpoint_step_wall_ms,
        "gc_counts_without_checkpointing": off_steps.gc_counts,
        "gc_wall_ms_max_without_checkpointing": off_steps.gc_wall_ms,
        "pause_during_checkpoint_ms": during_ms,
        "pause_outside_checkpoint_ms": outside_ms,
        "pause_without_checkpointing_ms": baseline_ms,
        "step_target_ms": STEP_TARGET_MS,
        "meets_target": steps.checkpoint_cpu_ms <= STEP_TARGET_MS,
    }


# --- report ---


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _print_throughput(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nCheckpoint cost: keyed running count, file checkpoints every {INTERVAL_MS} ms "
        f"({N:,} records, median of {REPEAT} interleaved on/off ratios)"
    )
    print(
        f"{'mode':<15}{'p':>3}{'off rec/s':>13}{'on rec/s':>13}{'cpu ratio':>11}"
        f"{'wall ratio':>12}{'target':>8}{'chk':>6}{'chk ms (med)':>14}"
    )
    for r in rows:
        print(
            f"{r['mode']:<15}{r['parallelism']:>3}{r['off_records_per_s']:>13,.0f}"
            f"{r['on_records_per_s']:>13,.0f}{r['cpu_ratio']:>11.2f}{r['ratio']:>12.2f}"
            f"{r['target']:>8.2f}{r['checkpoints']:>6}{_fmt(r['checkpoint_ms_median']):>14}"
            + ("" if r["meets_target"] else "  MISSED")
        )


def _print_large_state(r: dict[str, Any]) -> None:
    print(
        f"\nLarge state: {r['keys']:,} keys, {r['records']:,} records, parallelism "
        f"{r['parallelism']}, EXACTLY_ONCE every {INTERVAL_MS} ms"
    )
    gc_on = "/".join(map(str, r["gc_counts"]))
    gc_off = "/".join(map(str, r["gc_counts_without_checkpointing"]))
    lines: list[tuple[str, str]] = [
        (
            "throughput off / on (rec/s), cpu ratio",
            f"{r['off_records_per_s']:,.0f} / {r['on_records_per_s']:,.0f}, {r['cpu_ratio']:.2f}",
        ),
        ("checkpoints (full size)", f"{r['checkpoints']} ({r['full_size_checkpoints']})"),
        ("state size", f"{r['state_size_bytes'] / 1e6:,.1f} MB"),
        (
            "end-to-end ms (median / max)",
            f"{_fmt(r['end_to_end_ms_median'])} / {_fmt(r['end_to_end_ms_max'])}",
        ),
        ("sync part ms (max)", f"{r['sync_ms_max']:,.2f}"),
        ("async part ms (max)", f"{r['async_ms_max']:,.0f}"),
        (
            "longest checkpoint work in one loop step, CPU / wall ms",
            f"{r['checkpoint_step_cpu_ms_max']:,.2f} / {r['checkpoint_step_wall_ms_max']:,.2f}"
            f"  (target CPU <= {r['step_target_ms']:.0f})"
            + ("" if r["meets_target"] else "  MISSED"),
        ),
        (
            "  that whole step (with records, GC), CPU / wall ms",
            f"{r['checkpoint_whole_step_cpu_ms']:,.2f} / {r['checkpoint_whole_step_wall_ms']:,.2f}",
        ),
        ("  steps over the target", f"{r['checkpoint_steps_over_target']}"),
        (
            "longest loop step of any kind, CPU / wall ms",
            f"{r['any_step_cpu_ms_max']:,.1f} / {r['any_step_wall_ms_max']:,.1f} "
            f"(without checkpointing: CPU {r['any_step_cpu_ms_max_without_checkpointing']:,.1f})",
        ),
        (
            "GC passes gen0/1/2, longest CPU / wall ms",
            f"{gc_on}, {r['gc_cpu_ms_max']:,.1f} / {r['gc_wall_ms_max']:,.1f} (without "
            f"checkpointing: {gc_off}, wall {r['gc_wall_ms_max_without_checkpointing']:,.1f})",
        ),
        (
            "  longest GC inside a checkpoint step ms",
            f"{r['gc_in_checkpoint_step_wall_ms_max']:,.1f}",
        ),
        ("largest record gap during a checkpoint ms", f"{r['pause_during_checkpoint_ms']:,.1f}"),
        ("largest record gap outside checkpoints ms", f"{r['pause_outside_checkpoint_ms']:,.1f}"),
        (
            "largest record gap without checkpointing ms",
            f"{r['pause_without_checkpointing_ms']:,.1f}",
        ),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"  {label:<{width}}  {value}")


def run(report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="streamlet-bench-checkpoint-") as tmp:
        directory = Path(tmp)
        rows = _throughput(directory)
        _print_throughput(rows)
        large = _large_state(directory)
        _print_large_state(large)
    report["checkpoint"] = {"throughput": rows, "large_state": large}


if __name__ == "__main__":
    run({})
