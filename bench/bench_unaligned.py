"""Unaligned checkpoints under backpressure (issue 17).

(a) Checkpoint end-to-end time, aligned against unaligned, in the same run. The keyed job
    ``from_sequence -> map(i -> (i % 1000, 1)) -> key_by -> reduce(sum) -> slow sink`` at
    parallelism 2, the sink sleeping ``SINK_DELAY_S`` per batch and ``CAPACITY`` buffers per
    channel, so every channel of the key_by edge is full all the time. Checkpoints every
    100 ms; the figure is the median end-to-end time of the completed periodic checkpoints
    of a run, and the ratio is the median over ``STREAMLET_BENCH_REPEAT`` (default 5)
    interleaved repetitions of ``unaligned / aligned``. Target: <= 0.10. The persisted
    in-flight bytes per unaligned checkpoint are printed too.
(b) Throughput with unaligned checkpoints every 100 ms against no checkpoints, CPU time of
    the whole process (primary) and wall time, median of interleaved repetitions of
    ``off / on``: the fast keyed count of the checkpoint benchmark (``STREAMLET_BENCH_N``
    records, parallelism 2; its key_by edge is backpressured by the keyed reduce) and the
    slow-sink job of (a). Target: >= 0.90. Aligned checkpoints against none are measured in
    the same interleaved runs, as the reference for what checkpointing costs anyway.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.bench_engine import CountingSink, add, key_of, to_pair
from streamlet import Sink, SinkWriter, StreamExecutionEnvironment
from streamlet.checkpoints.stats import CheckpointStats, CheckpointStatus

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_N", "4000000"))
SLOW_N = int(os.environ.get("STREAMLET_BENCH_UC_N", "300000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
INTERVAL_MS = 100
SINK_DELAY_S = float(os.environ.get("STREAMLET_BENCH_UC_SINK_MS", "2")) / 1000
CAPACITY = int(os.environ.get("STREAMLET_BENCH_UC_CAPACITY", "64"))
PARALLELISM = 2
E2E_TARGET = 0.10
THROUGHPUT_TARGET = 0.90

#: mode -> (checkpointing, unaligned)
_MODES = {"off": (False, False), "aligned": (True, False), "unaligned": (True, True)}


class SlowSink(Sink):
    """Counts records, sleeping ``delay_s`` per batch: a sink slower than its input."""

    name = "Slow Sink"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.counts: list[int] = []

    def create_writer(self) -> SinkWriter:
        counts, delay_s = self.counts, self.delay_s

        class _Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                counts.append(len(records))
                await anyio.sleep(delay_s)

        return _Writer()


def _job(mode: str, slow: bool, directory: Path) -> tuple[float, float, list[CheckpointStats]]:
    """Run one job; return (wall seconds, CPU seconds, completed periodic checkpoints)."""
    checkpointing, unaligned = _MODES[mode]

    async def main() -> tuple[float, float, list[CheckpointStats]]:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(PARALLELISM)
        if slow:
            env.set_channel_capacity(CAPACITY)
        if checkpointing:
            env.enable_checkpointing(INTERVAL_MS)
            config = env.get_checkpoint_config()
            config.set_checkpoint_storage_dir(directory)
            config.enable_unaligned_checkpoints(unaligned)
        sink: Any = SlowSink(SINK_DELAY_S) if slow else CountingSink()
        n = SLOW_N if slow else N
        env.from_sequence(1, n).map(to_pair).key_by(key_of).reduce(add).sink_to(sink)
        start, cpu = time.perf_counter(), time.process_time()
        client = await env.execute_async(f"bench-uc-{mode}-{'slow' if slow else 'fast'}")
        await client.wait()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert sum(sink.counts) == n
        completed = sorted(
            (s for s in client.checkpoint_stats() if s.status is CheckpointStatus.COMPLETED),
            key=lambda s: s.checkpoint_id,
        )
        # The last one is the final checkpoint of the bounded job (taken once the input
        # ended, so nothing is in flight): not a checkpoint under backpressure.
        return wall, cpu, completed[:-1]

    gc.collect()
    return anyio.run(main)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _end_to_end(directory: Path) -> dict[str, Any]:
    e2e: dict[str, list[float]] = {"aligned": [], "unaligned": []}
    persisted: list[float] = []
    ratios = []
    for repetition in range(REPEAT):
        order = ["aligned", "unaligned"] if repetition % 2 == 0 else ["unaligned", "aligned"]
        medians = {}
        for mode in order:
            _, _, checkpoints = _job(mode, True, directory)
            times = [s.end_to_end_duration_ms or 0.0 for s in checkpoints]
            medians[mode] = _median(times)
            e2e[mode].append(medians[mode])
            if mode == "unaligned":
                persisted.append(_median([float(s.persisted_data) for s in checkpoints]))
        ratios.append(medians["unaligned"] / medians["aligned"])
    return {
        "aligned_e2e_ms": _median(e2e["aligned"]),
        "unaligned_e2e_ms": _median(e2e["unaligned"]),
        "ratio": _median(ratios),
        "target": E2E_TARGET,
        "persisted_bytes_per_checkpoint": _median(persisted),
        "sink_delay_ms_per_batch": SINK_DELAY_S * 1000,
        "channel_capacity": CAPACITY,
    }


def _throughput(directory: Path, slow: bool) -> dict[str, Any]:
    modes = ["off", "aligned", "unaligned"]
    cpu: dict[str, list[float]] = {"aligned": [], "unaligned": []}
    wall: dict[str, list[float]] = {"aligned": [], "unaligned": []}
    for repetition in range(REPEAT):
        shift = repetition % len(modes)
        runs = {mode: _job(mode, slow, directory) for mode in modes[shift:] + modes[:shift]}
        for mode in cpu:
            cpu[mode].append(runs["off"][1] / runs[mode][1])
            wall[mode].append(runs["off"][0] / runs[mode][0])
    return {
        "job": "slow sink" if slow else "keyed count",
        "records": SLOW_N if slow else N,
        "cpu_ratio": _median(cpu["unaligned"]),
        "wall_ratio": _median(wall["unaligned"]),
        "aligned_cpu_ratio": _median(cpu["aligned"]),
        "aligned_wall_ratio": _median(wall["aligned"]),
        "target": THROUGHPUT_TARGET,
    }


def run(report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-uc-") as tmp:
        directory = Path(tmp)
        e2e = _end_to_end(directory)
        throughput = [_throughput(directory, slow=False), _throughput(directory, slow=True)]
    print(f"\n== unaligned checkpoints (parallelism {PARALLELISM}, every {INTERVAL_MS} ms) ==")
    print(
        f"(a) end-to-end under backpressure (sink {e2e['sink_delay_ms_per_batch']:.0f} ms per "
        f"batch, {CAPACITY} buffers per channel): aligned {e2e['aligned_e2e_ms']:.1f} ms, "
        f"unaligned {e2e['unaligned_e2e_ms']:.1f} ms, ratio {e2e['ratio']:.3f} "
        f"(target <= {E2E_TARGET}); persisted {e2e['persisted_bytes_per_checkpoint']:,.0f} "
        f"bytes per checkpoint"
    )
    for row in throughput:
        print(
            f"(b) throughput, {row['job']} ({row['records']:,} records), unaligned every "
            f"{INTERVAL_MS} ms / none: CPU {row['cpu_ratio']:.3f}, wall {row['wall_ratio']:.3f}"
            f" (target >= {THROUGHPUT_TARGET}); aligned / none: CPU "
            f"{row['aligned_cpu_ratio']:.3f}, wall {row['aligned_wall_ratio']:.3f}"
        )
    report["unaligned"] = {"end_to_end": e2e, "throughput": throughput}
