"""Windows: what a windowed count and sum cost against plain loops (issue 14).

(a) A tumbling 1 s event-time count per key: 1,000 keys, ``N`` records (2M by default),
ten records per ms of event time (timestamps in order, ten per key and window), bounded
out-of-orderness 100 ms, watermarks every 200 ms:
``key_by -> window(TumblingEventTimeWindows.of(1 s)) -> aggregate(count)``.
(b) The same stream summed over 5 s windows sliding by 1 s.
Each against a plain Python loop that keeps a dict of ``(key, window start) -> accumulator``
and flushes every window whose end the watermark (max timestamp - 100 ms) has passed, once
per 512 records (as a batch would), in the same run, interleaved, CPU time, median of
``STREAMLET_BENCH_REPEAT``. Targets: tumbling >= 0.4x, sliding >= 0.3x.

(d) The tumbling count of (a) on Bytewax 0.21 (``fold_window`` with an ``EventClock`` that
waits 100 ms and a ``TumblingWindower``, fed in batches of 512 as streamlet is), on a
quarter of the records, in the same run: streamlet's CPU time must be at most a third of
Bytewax's (>= 3x), both emitting the same windows. Needs the ``bench`` extra
(``pip install -e '.[bench]'``, which ``make bench`` does); without Bytewax the row says so.

(c) Memory: the heap bytes (``tracemalloc``) of 1M open (key, window) accumulators of one
int each, in a window operator's state, against a plain dict ``{(key, start): int}``.
Target <= 3x.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc
from datetime import UTC
from typing import Any

from bench.bench_time import CountingSink, timed_job
from streamlet import (
    AggregateFunction,
    Duration,
    SlidingEventTimeWindows,
    StreamExecutionEnvironment,
    Time,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from streamlet.operators.sources.collection import SequenceSource

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_N", "2000000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
KEYS = 1000
#: Records per ms of event time: each (key, 1 s window) gets 10 records.
PER_MS = 10
BOUND_MS = 100
BATCH = 512
#: Records for the Bytewax comparison (Bytewax needs about 10 us a record here).
BYTEWAX_N = int(os.environ.get("STREAMLET_BENCH_BYTEWAX_N", str(N // 4)))


class Count(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, acc_a: int, acc_b: int) -> int:
        return acc_a + acc_b


def _key(i: int) -> int:
    return i % KEYS


def _add(a: int, b: int) -> int:
    return a + b


def _timestamp(i: int, _record_timestamp: Any) -> int:
    return i // PER_MS


async def engine_tumbling(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = CountingSink()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(BOUND_MS)
    ).with_timestamp_assigner(_timestamp)
    (
        env.from_source(SequenceSource(0, n - 1), strategy, "Sequence")
        .key_by(_key)
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .aggregate(Count())
        .sink_to(sink)
    )
    await env.execute("bench-tumbling")
    return sink.count


async def engine_sliding(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = CountingSink()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(BOUND_MS)
    ).with_timestamp_assigner(_timestamp)
    (
        env.from_source(SequenceSource(0, n - 1), strategy, "Sequence")
        .key_by(_key)
        .window(SlidingEventTimeWindows.of(Time.seconds(5), Time.seconds(1)))
        .reduce(_add)
        .sink_to(sink)
    )
    await env.execute("bench-sliding")
    return sink.count


def plain_windows(n: int, size: int, slide: int, fold: Any, first: Any) -> int:
    """The plain loop: a dict of (key, window start) -> accumulator, flushed per batch."""
    windows: dict[tuple[int, int], int] = {}
    emitted = 0
    newest = -(2**63)
    for base in range(0, n, BATCH):
        for i in range(base, min(n, base + BATCH)):
            key = _key(i)
            ts = i // PER_MS
            newest = max(newest, ts)
            last_start = ts - ts % slide
            for start in range(last_start, ts - size, -slide):
                window = (key, start)
                acc = windows.get(window)
                windows[window] = first(i) if acc is None else fold(acc, i)
        watermark = newest - BOUND_MS - 1
        done = [w for w in windows if w[1] + size - 1 <= watermark]
        for window in done:
            del windows[window]
        emitted += len(done)
    return emitted + len(windows)  # the end of input fires the rest


def plain_tumbling(n: int) -> int:
    return plain_windows(n, 1000, 1000, lambda acc, _i: acc + 1, lambda _i: 1)


def plain_sliding(n: int) -> int:
    return plain_windows(n, 5000, 1000, _add, lambda i: i)


def _compare(label: str, plain: Any, job: Any, target: float) -> dict[str, Any]:
    ratios = []
    for _ in range(REPEAT):
        gc.collect()
        cpu = time.process_time()
        base_count = plain(N)
        base = time.process_time() - cpu
        engine, count = timed_job(job, N)
        assert count == base_count, (label, count, base_count)
        ratios.append(base / engine)
    ratio = statistics.median(ratios)
    return {
        "case": label,
        "records": N,
        "ratio": ratio,
        "target": target,
        "meets_target": ratio >= target,
    }


def bytewax_tumbling(n: int) -> int:
    """The tumbling count of (a) as a Bytewax dataflow (run in this process)."""
    from datetime import datetime, timedelta

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    # Event times start now: Bytewax's EventClock advances its watermark with the system
    # clock too, so events of 1970 would close every window at once.
    epoch = datetime.now(UTC).replace(microsecond=0)
    out: list[Any] = []
    flow = Dataflow("bench-tumbling")
    # Batches as streamlet's (Bytewax's TestingSource hands out one item at a time by
    # default, which costs it 0.5 ms an item here).
    records = op.input("in", flow, TestingSource(range(n), batch_size=BATCH))
    keyed = op.key_on("key", records, lambda i: str(i % KEYS))
    clock: Any = win.EventClock(
        ts_getter=lambda i: epoch + timedelta(milliseconds=i // PER_MS),
        wait_for_system_duration=timedelta(milliseconds=BOUND_MS),
    )
    windower = win.TumblingWindower(length=timedelta(seconds=1), align_to=epoch)
    counts = win.fold_window(
        "count", keyed, clock, windower, lambda: 0, lambda acc, _i: acc + 1, lambda a, b: a + b
    )
    op.output("out", counts.down, TestingSink(out))
    run_main(flow)
    return len(out)


def _versus_bytewax() -> dict[str, Any]:
    row: dict[str, Any] = {"case": "d: tumbling count vs Bytewax 0.21", "target": 3.0}
    try:
        import bytewax  # noqa: F401
    except ImportError:
        return {**row, "ratio": None, "meets_target": None, "note": "bytewax not installed"}
    ratios = []
    for _ in range(max(1, REPEAT // 2)):
        gc.collect()
        cpu = time.process_time()
        theirs = bytewax_tumbling(BYTEWAX_N)
        bytewax_cpu = time.process_time() - cpu
        ours_cpu, ours = timed_job(engine_tumbling, BYTEWAX_N)
        assert ours == theirs, ("windows emitted", ours, theirs)
        ratios.append(bytewax_cpu / ours_cpu)
    ratio = statistics.median(ratios)
    return {
        **row,
        "records": BYTEWAX_N,
        "ratio": ratio,
        "meets_target": ratio >= 3.0,
        "note": f"{BYTEWAX_N:,} records, the same windows emitted by both",
    }


def _memory() -> dict[str, Any]:
    """Heap bytes of 1M one-int accumulators: window state against a plain dict."""
    from streamlet.operators.windowing.windows import TimeWindow
    from streamlet.state.descriptors import ValueStateDescriptor
    from streamlet.state.heap_backend import HeapKeyedStateBackend
    from streamlet.state.key_groups import KeyGroupRange

    keys, per_key = 100_000, 10
    gc.collect()
    tracemalloc.start()
    plain = {(k, w * 1000): 1 for k in range(keys) for w in range(per_key)}
    plain_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del plain
    gc.collect()
    tracemalloc.start()
    backend = HeapKeyedStateBackend("bench", KeyGroupRange(0, 127), 128)
    contents = backend.get_state(ValueStateDescriptor("_window/contents"))
    for k in range(keys):
        backend.set_current_key(k)
        contents.update({TimeWindow(w * 1000, w * 1000 + 1000): 1 for w in range(per_key)})
    state_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    ratio = state_bytes / plain_bytes
    return {
        "case": "c: 1M open accumulators, bytes vs a plain dict",
        "ratio": ratio,
        "state_mb": state_bytes / 1e6,
        "plain_mb": plain_bytes / 1e6,
        "target": 3.0,
        "meets_target": ratio <= 3.0,
    }


def run(report: dict[str, Any]) -> None:
    rows = [
        _compare("a: tumbling 1 s count", plain_tumbling, engine_tumbling, 0.4),
        _compare("b: sliding 5 s / 1 s sum", plain_sliding, engine_sliding, 0.3),
    ]
    versus = _versus_bytewax()
    memory = _memory()
    report["windows"] = {"throughput": rows, "bytewax": versus, "memory": memory}
    print(f"\nWindows (CPU-time ratios vs plain loops, median of {REPEAT}, {N:,} records)")
    print(f"{'case':<34}{'ratio':>8}{'target':>8}")
    for r in rows:
        print(
            f"{r['case']:<34}{r['ratio']:>8.2f}{r['target']:>8.2f}"
            + ("" if r["meets_target"] else "  MISSED")
        )
    if versus["ratio"] is None:
        print(f"{versus['case']}: {versus['note']}")
    else:
        print(
            f"{versus['case']:<34}{versus['ratio']:>8.2f}{versus['target']:>8.2f}"
            + ("" if versus["meets_target"] else "  MISSED")
            + "  (Bytewax CPU time / streamlet's)"
        )
        print(f"   {versus['note']}")
    print(
        f"{memory['case']}: {memory['state_mb']:.0f} MB vs {memory['plain_mb']:.0f} MB = "
        f"{memory['ratio']:.2f}x (target <= {memory['target']:.0f}x)"
        + ("" if memory["meets_target"] else "  MISSED")
    )


if __name__ == "__main__":
    run({})
