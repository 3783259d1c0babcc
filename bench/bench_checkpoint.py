"""Checkpoint benchmark: what periodic checkpoints cost a running job, and how long they stop it.

(a) Throughput of the keyed running count ``map(i -> (i % 1000, 1)) -> key_by -> reduce(sum)``
    into a counting sink, with file checkpoints every 100 ms (EXACTLY_ONCE and AT_LEAST_ONCE)
    against the same job without checkpoints, at parallelism 1 and 2. Runs are interleaved
    (the order rotates per repetition) and each figure is the best of
    ``STREAMLET_BENCH_REPEAT`` (default 3). Target: wall-time ratio >= 0.9x. The CPU-time
    ratio (whole process, I/O threads included) is printed too: it is what checkpointing
    costs in work, and other processes on a shared machine disturb it less.
(b) Large state: the same job over ``i % KEYS`` (``STREAMLET_BENCH_CKPT_KEYS``, default
    1,000,000 keys; ``2 * KEYS`` records, so every key exists after the first half) at
    parallelism 2, EXACTLY_ONCE. Reports the checkpoints' end-to-end, alignment, sync and
    async durations and state size, and the largest *pause* of record processing: a map
    chained after the keyed operator records the gap between consecutive records
    (``time.perf_counter``). Gaps overlapping a checkpoint (trigger to completion) are
    "during", the others "outside"; the same job without checkpoints gives the baseline
    (which includes garbage-collector pauses and the other subtasks' turns on the loop).
    The checkpoint's own pause is measured directly: the longest step of checkpoint work
    that holds the event loop (the synchronous part, serializing one key group; encoding
    a state file of over 1 MiB runs in a worker thread); while it runs no record is processed
    anywhere. Target: <= 10 ms. The gap figures are context: they also hold
    garbage-collector passes over the million state entries and the other subtasks' turns,
    with or without checkpoints.

``STREAMLET_BENCH_N`` (default 4,000,000) scales (a): each run should last >= 2 s.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
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
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "3"))
KEYS = int(os.environ.get("STREAMLET_BENCH_CKPT_KEYS", "1000000"))
INTERVAL_MS = 100
THROUGHPUT_TARGET = 0.9
PAUSE_TARGET_MS = 10.0
#: Gaps shorter than this are not recorded (they are ordinary per-batch work).
_GAP_FLOOR_S = 0.0005

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
        best: dict[str, _Run] = {}
        best_cpu: dict[str, float] = {}
        for repetition in range(REPEAT):
            shift = repetition % len(names)
            for name in names[shift:] + names[:shift]:
                result = _throughput_run(parallelism, name, directory)
                assert result.records == N, (name, parallelism, result.records)
                if name not in best or result.seconds < best[name].seconds:
                    best[name] = result
                best_cpu[name] = min(best_cpu.get(name, float("inf")), result.cpu_seconds)
        base = best["off"]
        for name in ("exactly_once", "at_least_once"):
            result = best[name]
            durations = [s.end_to_end_duration_ms or 0.0 for s in result.checkpoints]
            rows.append(
                {
                    "mode": name,
                    "parallelism": parallelism,
                    "records": N,
                    "off_records_per_s": N / base.seconds,
                    "on_records_per_s": N / result.seconds,
                    "ratio": base.seconds / result.seconds,
                    "cpu_ratio": best_cpu["off"] / best_cpu[name],
                    "checkpoints": len(result.checkpoints),
                    "checkpoint_ms_median": statistics.median(durations) if durations else None,
                    "target": THROUGHPUT_TARGET,
                    "meets_target": base.seconds / result.seconds >= THROUGHPUT_TARGET,
                }
            )
    return rows


# --- (b) large state and pauses ---


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


def _large_state_run(mode: CheckpointingMode | None, directory: Path) -> _Run:
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
    return anyio.run(main)


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


class _StepTimer:
    """Times the steps of checkpoint work that run on the event loop (context manager)."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self._patched: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)
        timer = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer.longest_ms = max(timer.longest_ms, (time.perf_counter() - start) * 1000)

        setattr(owner, name, timed)
        self._patched.append((owner, name, original))

    def __enter__(self) -> _StepTimer:
        import streamlet.state.heap_backend
        import streamlet.state.snapshot

        self._wrap(streamlet.state.snapshot.KeyedStateSnapshot, "serialize_key_group")
        self._wrap(streamlet.state.heap_backend.HeapKeyedStateBackend, "snapshot_sync")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)


def _large_state(directory: Path) -> dict[str, Any]:
    off = _large_state_run(None, directory)
    with _StepTimer() as steps:
        on = _large_state_run(CheckpointingMode.EXACTLY_ONCE, directory)
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
        "checkpoints": len(on.checkpoints),
        "full_size_checkpoints": len(full),
        "state_size_bytes": largest,
        "end_to_end_ms_median": statistics.median(durations) if durations else None,
        "end_to_end_ms_max": max(durations, default=None),
        "alignment_ms_max": _max_subtask(full, "alignment_duration_ms"),
        "start_delay_ms_max": _max_subtask(full, "start_delay_ms"),
        "sync_ms_max": _max_subtask(full, "sync_duration_ms"),
        "async_ms_max": _max_subtask(full, "async_duration_ms"),
        "checkpoint_step_ms_max": steps.longest_ms,
        "pause_during_checkpoint_ms": during_ms,
        "pause_outside_checkpoint_ms": outside_ms,
        "pause_without_checkpointing_ms": baseline_ms,
        "pause_target_ms": PAUSE_TARGET_MS,
        "meets_target": steps.longest_ms <= PAUSE_TARGET_MS,
    }


# --- report ---


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _print_throughput(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nCheckpoint cost: keyed running count, file checkpoints every {INTERVAL_MS} ms "
        f"({N:,} records, best of {REPEAT}, interleaved)"
    )
    print(
        f"{'mode':<15}{'p':>3}{'off rec/s':>13}{'on rec/s':>13}{'ratio':>8}{'target':>8}"
        f"{'cpu ratio':>11}{'chk':>6}{'chk ms (med)':>14}"
    )
    for r in rows:
        print(
            f"{r['mode']:<15}{r['parallelism']:>3}{r['off_records_per_s']:>13,.0f}"
            f"{r['on_records_per_s']:>13,.0f}{r['ratio']:>8.2f}{r['target']:>8.2f}"
            f"{r['cpu_ratio']:>11.2f}{r['checkpoints']:>6}{_fmt(r['checkpoint_ms_median']):>14}"
            + ("" if r["meets_target"] else "  MISSED")
        )


def _print_large_state(r: dict[str, Any]) -> None:
    print(
        f"\nLarge state: {r['keys']:,} keys, {r['records']:,} records, parallelism "
        f"{r['parallelism']}, EXACTLY_ONCE every {INTERVAL_MS} ms"
    )
    lines: list[tuple[str, str]] = [
        (
            "throughput off / on (rec/s)",
            f"{r['off_records_per_s']:,.0f} / {r['on_records_per_s']:,.0f}",
        ),
        ("checkpoints (full size)", f"{r['checkpoints']} ({r['full_size_checkpoints']})"),
        ("state size", f"{r['state_size_bytes'] / 1e6:,.1f} MB"),
        (
            "end-to-end ms (median / max)",
            f"{_fmt(r['end_to_end_ms_median'])} / {_fmt(r['end_to_end_ms_max'])}",
        ),
        ("alignment ms (max)", f"{r['alignment_ms_max']:,.2f}"),
        ("start delay ms (max)", f"{r['start_delay_ms_max']:,.1f}"),
        ("sync part ms (max)", f"{r['sync_ms_max']:,.2f}"),
        ("async part ms (max)", f"{r['async_ms_max']:,.0f}"),
        ("longest checkpoint step on the loop ms", f"{r['checkpoint_step_ms_max']:,.1f}"),
        ("largest gap during a checkpoint ms", f"{r['pause_during_checkpoint_ms']:,.1f}"),
        ("largest gap outside checkpoints ms", f"{r['pause_outside_checkpoint_ms']:,.1f}"),
        ("largest gap without checkpointing ms", f"{r['pause_without_checkpointing_ms']:,.1f}"),
        (
            "pause target ms",
            f"{r['pause_target_ms']:.0f}" + ("" if r["meets_target"] else "  MISSED"),
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
