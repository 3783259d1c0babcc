"""``make bench``: run every benchmark, print tables, write bench/results/latest.json.

Figures are ratios against baselines measured in the same run (shared machines are noisy).
Select parts with ``python -m bench engine state checkpoint recovery latency time windows
broadcast joins unaligned metrics incremental flink``
(``flink`` needs the ``streamlet[flink]`` extra and Java, and says so otherwise).
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

PARTS = {
    "engine": "bench.bench_engine",
    "state": "bench.bench_state",
    "checkpoint": "bench.bench_checkpoint",
    "recovery": "bench.bench_recovery",
    "latency": "bench.bench_latency",
    "time": "bench.bench_time",
    "windows": "bench.bench_windows",
    "broadcast": "bench.bench_broadcast",
    "joins": "bench.bench_joins",
    "unaligned": "bench.bench_unaligned",
    "metrics": "bench.bench_metrics",
    "incremental": "bench.bench_incremental",
    "flink": "bench.bench_flink",
}


def main(argv: list[str]) -> int:
    wanted = argv or list(PARTS)
    unknown = [w for w in wanted if w not in PARTS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(PARTS)}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for name in wanted:
        try:
            module = importlib.import_module(PARTS[name])
        except ModuleNotFoundError as exc:
            if exc.name == PARTS[name]:
                print(f"(benchmark {name!r} not available yet)")
                continue
            raise
        module.run(report)
    out = Path(__file__).parent / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nreport written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
