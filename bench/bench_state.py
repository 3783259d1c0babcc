"""State benchmark: the heap keyed backend at 1,000,000 keys, against plain dicts.

Measures, with ``STREAMLET_BENCH_STATE_KEYS`` (default 1,000,000) keys of ``ValueState[int]``:
the synchronous part of a snapshot (target <= 5 ms, independent of the number of keys), the
first-access copy-on-write cost it defers, serializing every key group, restoring them; the
per-record cost of ``set_current_key + value() + update()`` against a plain dict loop (over a
hot key set that stays in the key-group memo, and over all keys, which does not); and the
throughput of a running count over ``(key, 1)`` records written with ``ValueState`` against
the same count in a dict. Times are best of ``STREAMLET_BENCH_REPEAT`` (default 3); ratios
compare runs made in the same process.
"""

from __future__ import annotations

import gc
import os
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from streamlet.state import HeapKeyedStateBackend, ValueStateDescriptor, key_group_range_for_subtask

__all__ = ["run"]

KEYS = int(os.environ.get("STREAMLET_BENCH_STATE_KEYS", "1000000"))
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "3"))
MAX_PARALLELISM = 128
HOT_KEYS = 10_000
COUNT_RECORDS = 1_000_000
SNAPSHOT_TARGET_MS = 5.0


def _backend() -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(
        "bench", key_group_range_for_subtask(0, 1, MAX_PARALLELISM), MAX_PARALLELISM
    )


def _best(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _filled(keys: list[int]) -> tuple[HeapKeyedStateBackend, Any, float]:
    backend = _backend()
    state = backend.get_state(ValueStateDescriptor("count"))
    set_key, update = backend.set_current_key, state.update
    start = time.perf_counter()
    for key in keys:
        set_key(key)
        update(key)
    return backend, state, time.perf_counter() - start


def _access_loop(backend: HeapKeyedStateBackend, state: Any, keys: list[int]) -> None:
    set_key, value, update = backend.set_current_key, state.value, state.update
    for key in keys:
        set_key(key)
        update(value() + 1)


def _dict_loop(table: dict[int, int], keys: list[int]) -> None:
    for key in keys:
        table[key] = table[key] + 1


def _count_with_state(records: list[tuple[int, int]]) -> int:
    backend = _backend()
    state = backend.get_state(ValueStateDescriptor("count", default_value=0))
    set_key, value, update = backend.set_current_key, state.value, state.update
    for record in records:
        set_key(record[0])
        update(value() + record[1])
    return backend.state_size()


def _count_with_dict(records: list[tuple[int, int]]) -> int:
    counts: dict[int, int] = {}
    for record in records:
        key = record[0]
        counts[key] = counts.get(key, 0) + record[1]
    return len(counts)


def _snapshot_part(report: dict[str, Any], keys: list[int]) -> tuple[Any, Any]:
    backend, state, fill_s = _filled(keys)
    report["fill_s"] = fill_s
    report["snapshot_sync_ms"] = _best(backend.snapshot_sync, max(REPEAT, 5)) * 1000

    # What a snapshot defers: the first write to one key of every captured key group (per-entry
    # copy-on-write records just that key's old value; nothing is copied wholesale).
    snapshot = backend.snapshot_sync()
    one_key_per_group: dict[int, int] = {}
    for key in keys:
        backend.set_current_key(key)
        one_key_per_group.setdefault(backend.current_key_group, key)  # type: ignore[arg-type]
        if len(one_key_per_group) == MAX_PARALLELISM:
            break
    start = time.perf_counter()
    for key in one_key_per_group.values():
        backend.set_current_key(key)
        state.update(key)
    report["copy_on_write_all_groups_ms"] = (time.perf_counter() - start) * 1000
    snapshot.release()

    chunks: dict[int, bytes] = {}

    def serialize() -> None:
        # A fresh snapshot each time: a snapshot keeps the bytes of the groups it serialized.
        chunks.clear()
        fresh_snapshot = backend.snapshot_sync()
        for kg in fresh_snapshot.key_groups():
            chunks[kg] = fresh_snapshot.serialize_key_group(kg)

    report["serialize_s"] = _best(serialize, 2)
    report["serialized_bytes"] = sum(map(len, chunks.values()))

    def restore() -> None:
        fresh = _backend()
        fresh.restore(chunks)
        fresh.get_state(ValueStateDescriptor("count"))
        assert fresh.state_size() == len(keys)

    report["restore_s"] = _best(restore, 2)
    return backend, state


def _access_part(report: dict[str, Any], backend: Any, state: Any, keys: list[int]) -> None:
    rng = random.Random(1)
    hot = [rng.randrange(HOT_KEYS) for _ in range(len(keys))]
    sweep = keys.copy()
    rng.shuffle(sweep)
    table = dict.fromkeys(keys, 0)
    for label, pattern in (("hot", hot), ("all", sweep)):
        state_s = _best(partial(_access_loop, backend, state, pattern))
        dict_s = _best(partial(_dict_loop, table, pattern))
        report[f"access_{label}_state_ns"] = state_s / len(pattern) * 1e9
        report[f"access_{label}_dict_ns"] = dict_s / len(pattern) * 1e9
        report[f"access_{label}_ratio"] = state_s / dict_s


def _count_part(report: dict[str, Any]) -> None:
    rng = random.Random(2)
    records = [(rng.randrange(1000), 1) for _ in range(COUNT_RECORDS)]
    assert _count_with_state(records[:10_000]) == _count_with_dict(records[:10_000])
    state_s = _best(lambda: _count_with_state(records))
    dict_s = _best(lambda: _count_with_dict(records))
    report["count_state_records_per_s"] = COUNT_RECORDS / state_s
    report["count_dict_records_per_s"] = COUNT_RECORDS / dict_s
    report["count_ratio"] = dict_s / state_s


def run(report: dict[str, Any]) -> None:
    """Run the state benchmark, fill ``report["state"]`` and print a table."""
    keys = list(range(KEYS))
    out: dict[str, Any] = {"keys": KEYS, "max_parallelism": MAX_PARALLELISM}
    backend, state = _snapshot_part(out, keys)
    _access_part(out, backend, state, keys)
    _count_part(out)
    out["snapshot_sync_target_ms"] = SNAPSHOT_TARGET_MS
    out["snapshot_sync_meets_target"] = out["snapshot_sync_ms"] <= SNAPSHOT_TARGET_MS
    report["state"] = out

    print(f"\nHeap keyed state, {KEYS:,} keys of ValueState[int], best of {REPEAT}")
    rows = [
        ("fill (set_current_key + update)", f"{out['fill_s']:.2f} s"),
        (
            "snapshot_sync (sync part)",
            f"{out['snapshot_sync_ms']:.3f} ms (target <= {SNAPSHOT_TARGET_MS:g} ms)"
            + ("" if out["snapshot_sync_meets_target"] else "  MISSED"),
        ),
        (
            "first write to each of 128 groups after a snapshot",
            f"{out['copy_on_write_all_groups_ms']:.1f} ms",
        ),
        (
            "serialize all key groups",
            f"{out['serialize_s']:.3f} s ({out['serialized_bytes'] / 1e6:.1f} MB)",
        ),
        ("restore + register", f"{out['restore_s']:.3f} s"),
    ]
    for label in ("hot", "all"):
        keys_desc = f"{HOT_KEYS:,} hot keys" if label == "hot" else f"all {KEYS:,} keys"
        rows.append(
            (
                f"access, {keys_desc}",
                f"{out[f'access_{label}_state_ns']:.0f} ns/record vs dict "
                f"{out[f'access_{label}_dict_ns']:.0f} ns ({out[f'access_{label}_ratio']:.1f}x)",
            )
        )
    rows.append(
        (
            "running count, 1,000 keys",
            f"{out['count_state_records_per_s']:,.0f} rec/s vs dict "
            f"{out['count_dict_records_per_s']:,.0f} rec/s (ratio {out['count_ratio']:.2f})",
        )
    )
    width = max(len(r[0]) for r in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value}")


if __name__ == "__main__":
    run({})
