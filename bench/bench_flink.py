"""What the Flink runner costs over a hand-written PyFlink job of the same shape (issue 19).

The job: ``from_sequence(1, N) -> map(x -> (x % 1000, 1)) -> key_by(t[0]) -> sum(1)
-> filter(nothing) -> print`` (the filter keeps the sink from printing a million lines;
it is the same work in every variant). Three variants, interleaved, on Flink's local
mini-cluster at parallelism 1 and 2:

* ``streamlet``: streamlet's own runtime (``runner="local"``), for scale;
* ``runner``: the same streamlet job with ``runner="flink"`` (the translation: pickled
  records, normalised keys, a KeyedProcessFunction with a named ValueState for ``sum``);
* ``pyflink``: the job written against PyFlink directly, as its documentation would
  (typed tuples, ``KeyedStream.sum``).

Times are Flink's net runtime of each job (``JobExecutionResult.get_net_runtime()``, also
what the runner returns): no JVM or mini-cluster start. The runtime of a trivial job (10
records) of each variant is measured too and subtracted, leaving the per-record cost
without the job's fixed start (deploying tasks, starting the Python workers). Medians of
``STREAMLET_BENCH_REPEAT`` rounds. Target: the runner at most 1.25x hand-written PyFlink.

``STREAMLET_BENCH_FLINK_N`` records per job, 10,000 by default: not the million of the
other benchmarks, since PyFlink's Python operators ran about 1,000 records/s on the 2-core
machine the figures were first taken on (shared with other JVM test runs): 20,000 records
took 20-30 s per job, in the runner and in hand-written PyFlink alike.

Needs the ``streamlet[flink]`` extra and Java; without them it prints why it is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import sys
from typing import Any

__all__ = ["run"]

N = int(os.environ.get("STREAMLET_BENCH_FLINK_N", "10000"))
TRIVIAL = 10
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "3"))
KEYS = 1000
TARGET = 1.25
PARALLELISMS = (1, 2)


def _skip_reason() -> str | None:
    if importlib.util.find_spec("pyflink") is None:
        return "needs PyFlink: pip install -e '.[flink]'"
    if shutil.which("java") is None:
        return "needs Java 11+ on PATH for PyFlink"
    return None


def _streamlet_job(env: Any, n: int) -> None:
    (
        env.from_sequence(1, n)
        .map(lambda x: (x % KEYS, 1))
        .key_by(lambda t: t[0])
        .sum(1)
        .filter(lambda t: False)
        .print()
    )


def streamlet_ms(n: int, parallelism: int) -> float:
    from streamlet import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    _streamlet_job(env, n)
    return float(env.execute("bench-flink-streamlet").net_runtime_ms)


def runner_ms(n: int, parallelism: int) -> float:
    from streamlet import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    _streamlet_job(env, n)
    return float(env.execute("bench-flink-runner", runner="flink").net_runtime_ms)


def pyflink_ms(n: int, parallelism: int) -> float:
    """The job hand-written in PyFlink, with the configuration the runner sets."""
    from pyflink.common import Configuration, Types
    from pyflink.common.watermark_strategy import WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors.number_seq import NumberSequenceSource

    conf = Configuration()
    conf.set_string("parallelism.default", str(parallelism))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("restart-strategy.type", "none")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    pair = Types.TUPLE([Types.LONG(), Types.LONG()])
    (
        env.from_source(NumberSequenceSource(1, n), WatermarkStrategy.no_watermarks(), "seq")
        .map(lambda x: (x % KEYS, 1), output_type=pair)
        .key_by(lambda t: t[0], key_type=Types.LONG())
        .sum(1)
        .filter(lambda t: False)
        .print()
    )
    return float(env.execute("bench-flink-pyflink").get_net_runtime())


VARIANTS = {"streamlet": streamlet_ms, "runner": runner_ms, "pyflink": pyflink_ms}


def _measure(parallelism: int) -> dict[str, Any]:
    names = list(VARIANTS)
    runs: dict[str, list[float]] = {name: [] for name in names}
    trivial: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(REPEAT):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]  # interleaved
        for name in order:
            trivial[name].append(VARIANTS[name](TRIVIAL, parallelism))
            runs[name].append(VARIANTS[name](N, parallelism))
    median = {name: statistics.median(runs[name]) for name in names}
    start = {name: statistics.median(trivial[name]) for name in names}
    net = {name: max(median[name] - start[name], 1.0) for name in names}
    return {
        "parallelism": parallelism,
        "records": N,
        "ms": median,
        "trivial_job_ms": start,
        "ms_without_start": net,
        "runs_ms": runs,
        "ratio_runner_pyflink": median["runner"] / median["pyflink"],
        "ratio_runner_pyflink_without_start": net["runner"] / net["pyflink"],
        "target": TARGET,
        "meets_target": net["runner"] / net["pyflink"] <= TARGET,
    }


def run(report: dict[str, Any]) -> None:
    reason = _skip_reason()
    if reason is not None:
        print(f"\nFlink runner benchmark skipped: {reason}")
        report["flink"] = {"skipped": reason}
        return
    # The runner runs a local job's Python workers in processes of their own; hand-written
    # PyFlink reads the same switch, so every variant is measured with the same kind.
    from streamlet.flink.translate import use_worker_processes

    use_worker_processes()
    rows = [_measure(p) for p in PARALLELISMS]
    report["flink"] = {"rows": rows}
    print(
        f"\nFlink runner vs hand-written PyFlink (local mini-cluster, {N:,} records, "
        f"Flink's net runtime, median of {REPEAT}; 'start' = a {TRIVIAL}-record job)"
    )
    print(
        f"{'p':>2}{'streamlet ms':>14}{'runner ms':>11}{'pyflink ms':>12}{'start r/p ms':>16}"
        f"{'ratio':>7}{'w/o start':>11}{'target':>8}"
    )
    for row in rows:
        ms, start = row["ms"], row["trivial_job_ms"]
        print(
            f"{row['parallelism']:>2}{ms['streamlet']:>14.0f}{ms['runner']:>11.0f}"
            f"{ms['pyflink']:>12.0f}{start['runner']:>8.0f}/{start['pyflink']:<7.0f}"
            f"{row['ratio_runner_pyflink']:>7.2f}{row['ratio_runner_pyflink_without_start']:>11.2f}"
            f"{row['target']:>8.2f}" + ("" if row["meets_target"] else "  MISSED")
        )


if __name__ == "__main__":
    run({})
