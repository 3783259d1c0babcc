"""The broadcast state pattern: what enrichment from broadcast rules costs (issue 15).

100 rules (the broadcast side: rule ``c`` maps key class ``c`` to a factor) and 2M events
(non-keyed: ``from_sequence -> map(i -> (key, value))``, rebalanced to nothing at
parallelism 1), ``events.connect(rules.broadcast(RULES)).process(Enrich())`` where
``process_element`` looks the event's rule up in the read-only broadcast state and emits
``(key, value, value * factor)``; against a plain Python loop doing the same enrichment (make
the event, look its key class up in a dict of the rules, build the tuple, hand it on in
batches) in the same run. CPU time (``time.process_time``), median of
``STREAMLET_BENCH_REPEAT`` interleaved runs. Target >= 0.5x.

The rules are read at the start of the job, concurrently with the first events: events
whose rule has not arrived yet go out unenriched (factor None); the run checks that every
event came out and reports how many were enriched.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any

from bench.bench_time import timed_job
from streamlet import (
    BroadcastProcessFunction,
    MapStateDescriptor,
    Sink,
    SinkWriter,
    StreamExecutionEnvironment,
)

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_N", "2000000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "5"))
RULE_COUNT = 100
KEYS = 10_000
TARGET = 0.5
BATCH = 1024

RULES = MapStateDescriptor("rules")


def make_event(i: int) -> tuple[int, int]:
    return (i % KEYS, i)


def make_rules() -> list[tuple[int, int]]:
    return [(c, c % 7 + 1) for c in range(RULE_COUNT)]


class EnrichedSink(Sink):
    """Counts the records, and those enriched (no per-record work beyond that)."""

    name = "Enriched Sink"

    def __init__(self) -> None:
        self.count = 0
        self.enriched = 0

    def create_writer(self) -> SinkWriter:
        sink = self

        class _Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.count += len(records)
                sink.enriched += sum(1 for r in records if r[2] is not None)

        return _Writer()


class Enrich(BroadcastProcessFunction):
    def process_element(self, value: tuple[int, int], ctx: Any) -> Any:
        factor = ctx.get_broadcast_state(RULES).get(value[0] % RULE_COUNT)
        return [(value[0], value[1], None if factor is None else value[1] * factor)]

    def process_broadcast_element(self, value: tuple[int, int], ctx: Any) -> None:
        ctx.get_broadcast_state(RULES).put(value[0], value[1])


async def engine_enrich(n: int) -> tuple[int, int]:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    sink = EnrichedSink()
    events = env.from_sequence(0, n - 1).map(make_event)
    rules = env.from_collection(make_rules())
    events.connect(rules.broadcast(RULES)).process(Enrich()).sink_to(sink)
    await env.execute("bench-broadcast")
    return sink.count, sink.enriched


def plain_enrich(n: int) -> tuple[int, int]:
    """The same enrichment as a loop over a dict of the rules, output handed on per batch."""
    rules = dict(make_rules())
    count = enriched = 0
    out: list[Any] = []
    for i in range(n):
        value = make_event(i)
        factor = rules.get(value[0] % RULE_COUNT)
        out.append((value[0], value[1], None if factor is None else value[1] * factor))
        if len(out) == BATCH:
            count += len(out)
            enriched += sum(1 for r in out if r[2] is not None)
            out = []
    count += len(out)
    enriched += sum(1 for r in out if r[2] is not None)
    return count, enriched


def _timed_plain(n: int) -> tuple[float, tuple[int, int]]:
    gc.collect()
    cpu = time.process_time()
    result = plain_enrich(n)
    return time.process_time() - cpu, result


def _enrichment() -> dict[str, Any]:
    ratios = []
    enriched = []
    for _ in range(REPEAT):
        base, (plain_count, plain_enriched) = _timed_plain(N)
        engine, (count, engine_enriched) = timed_job(engine_enrich, N)
        assert count == plain_count == plain_enriched == N, (count, plain_count)
        # Only events before the first rules arrived may lack their rule.
        assert engine_enriched >= N * 0.99, engine_enriched
        enriched.append(engine_enriched)
        ratios.append(base / engine)
    ratio = statistics.median(ratios)
    return {
        "case": "broadcast rules enrichment (non-keyed)",
        "records": N,
        "rules": RULE_COUNT,
        "enriched_min": min(enriched),
        "ratio": ratio,
        "ratios": ratios,
        "target": TARGET,
        "meets_target": ratio >= TARGET,
    }


def run(report: dict[str, Any]) -> None:
    row = _enrichment()
    report["broadcast"] = {"throughput": [row]}
    print(f"\nBroadcast state (CPU-time ratio vs a plain loop, median of {REPEAT})")
    print(f"{'case':<40}{'records':>11}{'ratio':>8}{'target':>8}")
    print(
        f"{row['case']:<40}{row['records']:>11,}{row['ratio']:>8.2f}{row['target']:>8.2f}"
        + ("" if row["meets_target"] else "  MISSED")
    )
    print(f"   {row['enriched_min']:,} of {N:,} events enriched (the rest came before a rule)")


if __name__ == "__main__":
    run({})
