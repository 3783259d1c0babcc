"""Event time: what timestamps, watermarks and timers cost (issue 13).

(a) The keyed running count ``map(i -> (i % 1000, 1)) -> key_by -> reduce`` with every
record timestamped (``from_source(..., WatermarkStrategy.for_bounded_out_of_orderness(...))``)
and periodic watermarks every 200 ms, against the same job without event time; CPU-time
ratio, interleaved, median of ``STREAMLET_BENCH_REPEAT``. Target >= 0.85x.

(b) Timers: a KeyedProcessFunction registers one event-time timer per record (1M timers over
10k keys) and all of them fire (at the final watermark of the bounded input), against a
plain loop that does the same with a dict of per-key heaps (push per record, then pop and
call per timer, key by key). Target >= 0.3x.

(c) Watermark latency: records pushed at 100,000/s with their push time as timestamp,
``PushSource -> key_by -> map -> key_by -> KeyedProcessFunction`` at parallelism 4 (two
shuffles), watermarks every 10 ms from a monotonous generator. Every 100th record registers
an event-time timer at its timestamp; a timer's latency is from the moment the source's
generator emitted the first watermark that covers it to the moment it fired
(``time.perf_counter``). Target p99 <= 5 ms.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from streamlet import (
    Duration,
    KeyedProcessFunction,
    PushSource,
    Sink,
    SinkWriter,
    StreamExecutionEnvironment,
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
)
from streamlet.operators.sources.collection import SequenceSource

__all__ = ["run"]

T = TypeVar("T")

N = int(os.environ.get("STREAMLET_BENCH_N", "2000000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
TIMERS = int(os.environ.get("STREAMLET_BENCH_TIMERS", "1000000"))
TIMER_KEYS = 10_000
LATENCY_RATE = 100_000
LATENCY_S = float(os.environ.get("STREAMLET_BENCH_LATENCY_S", "3"))
WARMUP_S = 0.5


class CountingSink(Sink):
    """Counts the records it gets (the benchmarks' sink: no per-record work)."""

    name = "Counting Sink"

    def __init__(self) -> None:
        self.count = 0

    def create_writer(self) -> SinkWriter:
        sink = self

        class _Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.count += len(records)

        return _Writer()


def to_pair(i: int) -> tuple[int, int]:
    return (i % 1000, 1)


def key_of(t: tuple[int, int]) -> int:
    return t[0]


def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0], a[1] + b[1])


def timed_job(job: Callable[..., Awaitable[T]], *args: Any) -> tuple[float, T]:
    """Run ``job(*args)`` in a fresh event loop; return (CPU seconds, its result)."""

    async def main() -> tuple[float, T]:
        cpu = time.process_time()
        n = await job(*args)
        return time.process_time() - cpu, n

    gc.collect()
    return anyio.run(main)


# --- (a) event time's overhead on the keyed count ---


async def count_plain(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = CountingSink()
    env.from_sequence(1, n).map(to_pair).key_by(key_of).reduce(add).sink_to(sink)
    await env.execute("bench-count")
    return sink.count


async def count_event_time(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = CountingSink()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(100)
    ).with_timestamp_assigner(lambda value, _ts: value)
    (
        env.from_source(SequenceSource(1, n), strategy, "Sequence")
        .map(to_pair)
        .key_by(key_of)
        .reduce(add)
        .sink_to(sink)
    )
    await env.execute("bench-count-event-time")
    return sink.count


def _event_time_overhead() -> dict[str, Any]:
    ratios = []
    for _ in range(REPEAT):
        base, n1 = timed_job(count_plain, N)
        timed, n2 = timed_job(count_event_time, N)
        assert n1 == n2 == N
        ratios.append(base / timed)
    ratio = statistics.median(ratios)
    return {
        "case": "a: keyed count with event time",
        "records": N,
        "ratio": ratio,
        "target": 0.85,
        "meets_target": ratio >= 0.85,
    }


# --- (b) timers ---


class OneTimerPerRecord(KeyedProcessFunction):
    def open(self, runtime_context: Any) -> None:
        self.fired = 0

    def process_element(self, value: int, ctx: KeyedProcessFunction.Context) -> None:
        ctx.timer_service().register_event_time_timer(value)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> None:
        self.fired += 1


def _timer_key(i: int) -> int:
    return i % TIMER_KEYS


def plain_timers(n: int) -> int:
    heaps: dict[int, list[int]] = {}
    for i in range(n):
        key = _timer_key(i)
        heap = heaps.get(key)
        if heap is None:
            heap = heaps[key] = []
        heapq.heappush(heap, i)
    fired = 0

    def on_timer(timestamp: int, key: int) -> None:
        nonlocal fired
        fired += 1

    for key, heap in heaps.items():
        while heap:
            on_timer(heapq.heappop(heap), key)
    return fired


async def engine_timers(n: int) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    fired: list[int] = []

    class Counted(OneTimerPerRecord):
        def close(self) -> None:
            fired.append(self.fired)

    strategy = WatermarkStrategy.no_watermarks().with_timestamp_assigner(lambda v, _ts: v)
    (
        env.from_source(SequenceSource(0, n - 1), strategy, "Sequence")
        .key_by(_timer_key)
        .process(Counted())
        .sink_to(CountingSink())
    )
    await env.execute("bench-timers")
    return sum(fired)


def _timers() -> dict[str, Any]:
    ratios = []
    for _ in range(max(1, REPEAT // 2)):
        gc.collect()
        cpu = time.process_time()
        base_fired = plain_timers(TIMERS)
        base = time.process_time() - cpu
        engine, fired = timed_job(engine_timers, TIMERS)
        assert fired == base_fired == TIMERS, (fired, base_fired)
        ratios.append(base / engine)
    ratio = statistics.median(ratios)
    return {
        "case": "b: 1 timer per record, all fire",
        "records": TIMERS,
        "ratio": ratio,
        "target": 0.3,
        "meets_target": ratio >= 0.3,
    }


# --- (c) watermark latency ---


class _StampedWatermarks(WatermarkGenerator):
    """Monotonous watermarks that note when each was emitted (shared by the bench)."""

    def __init__(self, emitted: list[tuple[int, float]]) -> None:
        self._emitted = emitted
        self._max = -(2**63)
        self._last = -(2**63)

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        self._max = max(self._max, event_timestamp)

    def on_events(self, events: list[Any], timestamps: list[int], output: WatermarkOutput) -> None:
        self._max = max(self._max, max(timestamps))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        watermark = self._max - 1
        if watermark > self._last:
            self._last = watermark
            self._emitted.append((watermark, time.perf_counter()))
            output.emit_watermark(Watermark(watermark))


class _FireTimes(KeyedProcessFunction):
    def __init__(self, fired: Any) -> None:
        self._fired = fired

    def process_element(self, value: tuple[int, int], ctx: KeyedProcessFunction.Context) -> None:
        if value[0] % 100 == 0:
            ctx.timer_service().register_event_time_timer(value[1])

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> None:
        self._fired.append((timestamp, time.perf_counter()))

    def __deepcopy__(self, memo: Any) -> _FireTimes:
        return self  # the subtasks share the list of firings (one process, one loop)


async def _produce(source: PushSource, rate: int, seconds: float) -> None:
    total = int(rate * seconds)
    start = time.perf_counter()
    i = 0
    while i < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while i < due:
            await source.push((i, int((start + i / rate) * 1000)))
            i += 1
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await anyio.sleep(delay)
    source.end()


def _latency() -> dict[str, Any]:
    # The push source warns that it is at-most-once (no write-ahead log): expected here.
    logging.getLogger("streamlet.job").setLevel(logging.ERROR)
    emitted: list[tuple[int, float]] = []
    fired: list[tuple[int, float]] = []

    async def main() -> None:
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(4)
        env.get_config().set_auto_watermark_interval(10)
        source = PushSource(max_buffered=LATENCY_RATE // 10)
        strategy = WatermarkStrategy.for_generator(
            lambda: _StampedWatermarks(emitted)
        ).with_timestamp_assigner(lambda value, _ts: value[1])
        (
            env.from_source(source, strategy, "Push")
            .key_by(lambda r: r[0] % 64)
            .map(lambda r: r)
            .key_by(lambda r: r[0] % 128)
            .process(_FireTimes(fired))
            .sink_to(CountingSink())
        )
        client = await env.execute_async("bench-watermark-latency")
        await _produce(source, LATENCY_RATE, LATENCY_S + WARMUP_S)
        await client.wait()

    gc.collect()
    anyio.run(main)
    marks = [w for w, _ in emitted]
    times = [t for _, t in emitted]
    start = times[0] if times else 0.0
    latencies = []
    for timestamp, at in fired:
        index = bisect.bisect_left(marks, timestamp)
        if index == len(marks) or times[index] - start < WARMUP_S:
            continue  # fired by the final watermark, or during the warm-up
        latencies.append((at - times[index]) * 1000)
    latencies.sort()
    n = len(latencies)
    p99 = latencies[min(n - 1, int(n * 0.99))] if n else float("nan")
    return {
        "case": "c: watermark -> timer latency, p=4, 2 shuffles",
        "timers": n,
        "p50_ms": latencies[n // 2] if n else float("nan"),
        "p99_ms": p99,
        "max_ms": latencies[-1] if n else float("nan"),
        "target_p99_ms": 5.0,
        "meets_target": p99 <= 5.0,
    }


def run(report: dict[str, Any]) -> None:
    rows = [_event_time_overhead(), _timers()]
    latency = _latency()
    report["time"] = {"throughput": rows, "watermark_latency": latency}
    print(f"\nEvent time (CPU-time ratios, median of {REPEAT}; baselines in the same run)")
    print(f"{'case':<36}{'records':>11}{'ratio':>8}{'target':>8}")
    for r in rows:
        print(
            f"{r['case']:<36}{r['records']:>11,}{r['ratio']:>8.2f}{r['target']:>8.2f}"
            + ("" if r["meets_target"] else "  MISSED")
        )
    print(
        f"{latency['case']}: {latency['timers']:,} timers, p50 {latency['p50_ms']:.2f} ms, "
        f"p99 {latency['p99_ms']:.2f} ms, max {latency['max_ms']:.2f} ms (target p99 <= "
        f"{latency['target_p99_ms']:.0f} ms)" + ("" if latency["meets_target"] else "  MISSED")
    )


if __name__ == "__main__":
    run({})
