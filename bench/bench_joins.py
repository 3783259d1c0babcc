"""Joins: what a keyed interval join costs against a plain loop (issue 15).

Two streams of ``N`` records each (1M by default), record ``i`` at timestamp ``i`` ms on
both sides and of key ``i % 1000``, bounded out-of-orderness 100 ms, watermarks every
200 ms, joined by ``key_by -> interval_join -> between(-1 s, +1 s) -> process`` (each left
record meets the three right records of its key at ``i - 1000``, ``i`` and ``i + 1000``:
3N - 2,000 pairs), into a counting sink.

The baseline is a plain Python loop doing the same join with per-key buffers
(``{key: {ts: [records]}}`` per side), fed the two streams in alternating batches of 512
as the job's sources are, calling a join function per pair, and removing each bucket once
the watermark (max timestamp - 100 ms - 1) passes its cleanup time (Flink's, as the
operator), found through a heap of cleanup times per side. Same run, interleaved, CPU time
(``time.process_time``), median of ``STREAMLET_BENCH_REPEAT``. Target >= 0.3x.
"""

from __future__ import annotations

import gc
import heapq
import os
import statistics
import time
from typing import Any

from bench.bench_time import CountingSink, timed_job
from streamlet import (
    Duration,
    ProcessJoinFunction,
    StreamExecutionEnvironment,
    Time,
    WatermarkStrategy,
)
from streamlet.operators.sources.collection import SequenceSource

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_JOIN_N", os.environ.get("STREAMLET_BENCH_N", "1000000")))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
KEYS = 1000
LOWER, UPPER = -1000, 1000
BOUND_MS = 100
BATCH = 512
TARGET = 0.3


def _key(i: int) -> int:
    return i % KEYS


def _timestamp(i: int, _record_timestamp: Any) -> int:
    return i


def expected_pairs(n: int) -> int:
    """Pairs of equal keys within [-1000, +1000] ms: left i meets right i, i +- 1000."""
    return sum(1 for i in range(n) for j in (i - KEYS, i, i + KEYS) if 0 <= j < n)


class Pair(ProcessJoinFunction):
    def process_element(self, left: int, right: int, ctx: Any) -> Any:
        return ((left, right),)


async def engine_join(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    sink = CountingSink()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(BOUND_MS)
    ).with_timestamp_assigner(_timestamp)
    left = env.from_source(SequenceSource(0, n - 1), strategy, "Left")
    right = env.from_source(SequenceSource(0, n - 1), strategy, "Right")
    (
        left.key_by(_key)
        .interval_join(right.key_by(_key))
        .between(Time.milliseconds(LOWER), Time.milliseconds(UPPER))
        .process(Pair())
        .sink_to(sink)
    )
    await env.execute("bench-interval-join")
    return sink.count


def _join(left: int, right: int) -> tuple[int, int]:
    return (left, right)


def plain_join(n: int) -> int:
    """The plain loop (see the module docstring)."""
    buffers: list[dict[int, dict[int, list[int]]]] = [{}, {}]
    # Per side: (bounds of a record's partners relative to its ts, its cleanup offset).
    sides = [(LOWER, UPPER, max(UPPER, 0)), (-UPPER, -LOWER, max(-LOWER, 0))]
    cleanups: list[list[tuple[int, int, int]]] = [[], []]
    emitted = 0
    newest = -(2**63)
    watermark = -(2**63)
    for base in range(0, n, BATCH):
        for side in (0, 1):
            own, other = buffers[side], buffers[1 - side]
            low_offset, high_offset, cleanup_offset = sides[side]
            heap = cleanups[side]
            out: list[Any] = []
            for i in range(base, min(n, base + BATCH)):
                key = _key(i)
                ts = i
                if ts < watermark:
                    continue  # late
                newest = max(newest, ts)
                mine = own.get(key)
                if mine is None:
                    mine = own[key] = {}
                bucket = mine.get(ts)
                if bucket is None:
                    mine[ts] = [i]
                    heapq.heappush(heap, (ts + cleanup_offset, key, ts))
                else:
                    bucket.append(i)
                others = other.get(key)
                if others:
                    low, high = ts + low_offset, ts + high_offset
                    for other_ts, records in others.items():
                        if low <= other_ts <= high:
                            for record in records:
                                out.append(_join(i, record) if side == 0 else _join(record, i))
            emitted += len(out)
        watermark = newest - BOUND_MS - 1
        for side in (0, 1):
            heap = cleanups[side]
            while heap and heap[0][0] <= watermark:
                _, key, ts = heapq.heappop(heap)
                mine = buffers[side][key]
                del mine[ts]
                if not mine:
                    del buffers[side][key]
    return emitted


def _compare() -> dict[str, Any]:
    ratios = []
    pairs = expected_pairs(N)
    for _ in range(REPEAT):
        gc.collect()
        cpu = time.process_time()
        base_count = plain_join(N)
        base = time.process_time() - cpu
        engine, count = timed_job(engine_join, N)
        assert count == base_count == pairs, (count, base_count, pairs)
        ratios.append(base / engine)
    ratio = statistics.median(ratios)
    return {
        "case": "interval join [-1 s, +1 s], 1,000 keys",
        "records_per_side": N,
        "pairs": pairs,
        "ratio": ratio,
        "target": TARGET,
        "meets_target": ratio >= TARGET,
    }


def run(report: dict[str, Any]) -> None:
    row = _compare()
    report["joins"] = {"throughput": [row]}
    print(f"\nJoins (CPU-time ratio vs a plain loop, median of {REPEAT})")
    print(f"{'case':<42}{'per side':>11}{'ratio':>8}{'target':>8}")
    print(
        f"{row['case']:<42}{row['records_per_side']:>11,}{row['ratio']:>8.2f}"
        f"{row['target']:>8.2f}" + ("" if row["meets_target"] else "  MISSED")
    )


if __name__ == "__main__":
    run({})
