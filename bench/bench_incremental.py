"""Incremental checkpoint benchmark (issue 17): 1M keys of ValueState, 1% changed per checkpoint.

(a) Checkpoints of one keyed backend (``KEYS`` keys, default 1,000,000, parallelism 1, 128
    key groups) into file storage, as a subtask writes them (``snapshot_sync``, then
    ``write_subtask_snapshot``, then ``_metadata``). Before each of ``GENERATIONS``
    (default 20) generations, 1% of the keys (seeded) get a new value; then the same state
    is checkpointed both ways, the order alternating per generation: in full, and
    incrementally (the changes since the previous incremental one, on top of a base taken
    first). Reported: bytes written by an incremental checkpoint over a full one (target
    <= 5 %) and end-to-end duration, wall and CPU (target <= 15 %), medians over the
    generations.
(b) Recovery after those generations: reading and decoding the base and its 20 changes into
    a fresh backend, against a full checkpoint of the same state; interleaved, median of
    ``REPEAT``. Target <= 2x.
(c) Throughput of a keyed running sum over ``KEYS`` keys (first every key once, then
    ``UPDATES`` records over a window of 1 % of the keys that moves on every
    ``WINDOW_RECORDS`` records, about one checkpoint interval) with incremental file
    checkpoints every 100 ms, against the same job without checkpoints (and, for context,
    full checkpoints). Measured over the update phase (from the sink's ``KEYS``-th record to
    the end of the job, its final checkpoint included): the first phase only creates the
    state. Interleaved, median of ``REPEAT`` CPU-time ratios. Target >= 0.85.

``python -m bench.bench_incremental --quick`` (or ``STREAMLET_BENCH_QUICK=1``) runs it at
100,000 keys, for a quick look; the targets are stated for 1M keys.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.bench_engine import add, key_of
from streamlet import Sink, SinkWriter, StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.checkpoints.events import CheckpointKind
from streamlet.checkpoints.metadata import CheckpointMetadata, StatePiece
from streamlet.checkpoints.snapshotter import OperatorSnapshot, write_subtask_snapshot
from streamlet.checkpoints.stats import CheckpointStatus
from streamlet.checkpoints.storage import FileCheckpointStorage
from streamlet.state import HeapKeyedStateBackend, ValueStateDescriptor, key_group_range_for_subtask

__all__ = ["run"]

QUICK = "--quick" in sys.argv or os.environ.get("STREAMLET_BENCH_QUICK") == "1"
KEYS = int(os.environ.get("STREAMLET_BENCH_INC_KEYS", "100000" if QUICK else "1000000"))
GENERATIONS = 20
CHANGED = 0.01
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "2" if QUICK else "3"))
INTERVAL_MS = 100
UPDATES = 4 * KEYS
WINDOW_RECORDS = 100_000
MAXP = 128
TARGETS = {"bytes": 0.05, "duration": 0.15, "recovery": 2.0, "throughput": 0.85}
_UID = "counter"


# --- (a) checkpoints of one backend ---


def _backend() -> HeapKeyedStateBackend:
    backend = HeapKeyedStateBackend(_UID, key_group_range_for_subtask(0, 1, MAXP), MAXP)
    backend.enable_change_tracking()
    return backend


async def _checkpoint(
    storage: FileCheckpointStorage,
    backend: HeapKeyedStateBackend,
    checkpoint_id: int,
    base: tuple[StatePiece, ...] | None,
) -> tuple[float, float, int, tuple[StatePiece, ...]]:
    """One checkpoint; return (wall s, cpu s, bytes written, its pieces)."""
    wall, cpu = time.perf_counter(), time.process_time()
    storage.begin_checkpoint(checkpoint_id)
    snapshot = backend.snapshot_sync(checkpoint_id, incremental=bool(base))
    op = OperatorSnapshot(_UID, keyed=snapshot, shared_base=base)
    result = await write_subtask_snapshot(storage, checkpoint_id, 0, 1, MAXP, [op])
    assert result.ok, result.detail
    metadata = CheckpointMetadata.from_handles(
        checkpoint_id=checkpoint_id,
        kind=CheckpointKind.CHECKPOINT,
        job_name=storage.job_name,
        trigger_timestamp_ms=0,
        completion_timestamp_ms=0,
        handles=result.handles,
        max_parallelism=MAXP,
    )
    await storage.write_metadata(checkpoint_id, metadata)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    snapshot.release()
    return wall, cpu, metadata.checkpointed_size, result.handles[0].pieces


async def _generations(directory: Path) -> tuple[dict[str, Any], FileCheckpointStorage, int, int]:
    storage = FileCheckpointStorage(directory, "bench-incremental")
    backend = _backend()
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(KEYS):
        backend.set_current_key(key)
        state.update(key)
    rng = random.Random(17)
    next_id = 1
    _, _, base_bytes, pieces = await _checkpoint(storage, backend, next_id, ())
    backend.notify_checkpoint_complete(next_id)
    inc_id = next_id
    full_id = 0
    rows = []
    for generation in range(GENERATIONS):
        for key in rng.sample(range(KEYS), int(KEYS * CHANGED)):
            backend.set_current_key(key)
            state.update(-generation - 1)
        measured: dict[str, tuple[float, float, int]] = {}
        for kind in ("full", "incremental") if generation % 2 else ("incremental", "full"):
            next_id += 1
            gc.collect()
            if kind == "full":
                if full_id:
                    await storage.discard(full_id)
                wall, cpu, size, _ = await _checkpoint(storage, backend, next_id, None)
                full_id = next_id
            else:
                wall, cpu, size, pieces = await _checkpoint(storage, backend, next_id, pieces)
                backend.notify_checkpoint_complete(next_id)
                inc_id = next_id
            measured[kind] = (wall, cpu, size)
        rows.append(measured)
    assert len(pieces) == GENERATIONS + 1, "a new base was taken within the generations"

    def median_ratio(index: int) -> float:
        return statistics.median(r["incremental"][index] / r["full"][index] for r in rows)

    result = {
        "keys": KEYS,
        "generations": GENERATIONS,
        "changed_per_generation": CHANGED,
        "base_bytes": base_bytes,
        "full_bytes_median": statistics.median(r["full"][2] for r in rows),
        "incremental_bytes_median": statistics.median(r["incremental"][2] for r in rows),
        "bytes_ratio": median_ratio(2),
        "full_ms_median": 1000 * statistics.median(r["full"][0] for r in rows),
        "incremental_ms_median": 1000 * statistics.median(r["incremental"][0] for r in rows),
        "duration_ratio_wall": median_ratio(0),
        "duration_ratio_cpu": median_ratio(1),
    }
    del backend, state
    return result, storage, inc_id, full_id


# --- (b) recovery ---


async def _restore_incremental(storage: FileCheckpointStorage, checkpoint_id: int) -> float:
    gc.collect()
    start = time.perf_counter()
    checkpoint = await storage.load_checkpoint(checkpoint_id)
    backend = HeapKeyedStateBackend(_UID, key_group_range_for_subtask(0, 1, MAXP), MAXP)
    handle = checkpoint.metadata.states[0]
    changes: dict[int, list[bytes]] = {}
    for position, piece in enumerate(handle.pieces):
        part = await storage.read_piece(checkpoint.location, handle, piece)
        if position == 0:
            backend.restore(part.keyed)
        else:
            for kg, blob in part.keyed.items():
                changes.setdefault(kg, []).append(blob)
    backend.restore_changes(changes)
    backend.get_state(ValueStateDescriptor("v"))  # decodes everything
    elapsed = time.perf_counter() - start
    assert backend.state_size() == KEYS
    return elapsed


async def _restore_full(storage: FileCheckpointStorage, checkpoint_id: int) -> float:
    gc.collect()
    start = time.perf_counter()
    checkpoint = await storage.load_checkpoint(checkpoint_id)
    backend = HeapKeyedStateBackend(_UID, key_group_range_for_subtask(0, 1, MAXP), MAXP)
    handle = checkpoint.metadata.states[0]
    contents = await storage.read_state_file(checkpoint.location, handle)
    backend.restore(contents.keyed)
    backend.get_state(ValueStateDescriptor("v"))
    elapsed = time.perf_counter() - start
    assert backend.state_size() == KEYS
    return elapsed


async def _recovery(storage: FileCheckpointStorage, inc_id: int, full_id: int) -> dict[str, Any]:
    incremental, full = [], []
    for repetition in range(REPEAT):
        order = ("inc", "full") if repetition % 2 == 0 else ("full", "inc")
        for kind in order:
            if kind == "inc":
                incremental.append(await _restore_incremental(storage, inc_id))
            else:
                full.append(await _restore_full(storage, full_id))
    ratio = statistics.median(i / f for i, f in zip(incremental, full, strict=True))
    return {
        "incremental_restore_ms": 1000 * statistics.median(incremental),
        "full_restore_ms": 1000 * statistics.median(full),
        "ratio": ratio,
    }


# --- (c) throughput ---


def _key_pair(i: int) -> tuple[int, int]:
    if i < KEYS:
        return (i, 1)
    u = i - KEYS
    window = max(1, int(KEYS * CHANGED))
    return ((u % window + (u // WINDOW_RECORDS) * window) % KEYS, 1)


class _PhaseSink(Sink):
    """Counts records and notes the wall and CPU time when the update phase starts (the
    first ``KEYS`` records created every key)."""

    name = "Phase Sink"

    def __init__(self) -> None:
        self.count = 0
        self.started: tuple[float, float] | None = None

    def create_writer(self) -> SinkWriter:
        sink = self

        class _Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.count += len(records)
                if sink.started is None and sink.count >= KEYS:
                    sink.started = (time.perf_counter(), time.process_time())

        return _Writer()


def _job_run(mode: str, directory: Path) -> tuple[float, float, list[Any]]:
    """Run the job; return the wall and CPU seconds of its update phase (to its end, the
    final checkpoint included) and its completed checkpoints' statistics."""

    async def main() -> tuple[float, float, list[Any]]:
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
        if mode != "off":
            env.enable_checkpointing(INTERVAL_MS, CheckpointingMode.EXACTLY_ONCE)
            config = env.get_checkpoint_config()
            config.set_checkpoint_storage_dir(directory)
            config.enable_incremental_checkpointing(mode == "incremental")
        sink = _PhaseSink()
        env.from_sequence(0, KEYS + UPDATES - 1).map(_key_pair).key_by(key_of).reduce(add).sink_to(
            sink
        )
        client = await env.execute_async(f"bench-incremental-{mode}")
        await client.wait()
        assert sink.count == KEYS + UPDATES and sink.started is not None
        wall, cpu = time.perf_counter() - sink.started[0], time.process_time() - sink.started[1]
        # The checkpoints of the update phase (those of the first phase add every key).
        stats = [
            s
            for s in client.checkpoint_stats()
            if s.status is CheckpointStatus.COMPLETED
            and s.trigger_timestamp_ms / 1000
            >= time.time() - (time.perf_counter() - sink.started[0])
        ]
        return wall, cpu, stats

    gc.collect()
    return anyio.run(main)


def _throughput(directory: Path) -> dict[str, Any]:
    modes = ["off", "incremental", "full"]
    runs: dict[str, list[tuple[float, float, list[Any]]]] = {m: [] for m in modes}
    for repetition in range(REPEAT):
        shift = repetition % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            runs[mode].append(_job_run(mode, directory / f"{mode}-{repetition}"))
    out: dict[str, Any] = {"records": KEYS + UPDATES}
    for mode in ("incremental", "full"):
        pairs = list(zip(runs["off"], runs[mode], strict=True))
        stats = [s for r in runs[mode] for s in r[2]]
        out[mode] = {
            "cpu_ratio": statistics.median(o[1] / r[1] for o, r in pairs),
            "wall_ratio": statistics.median(o[0] / r[0] for o, r in pairs),
            "checkpoints": round(statistics.mean(len(r[2]) for r in runs[mode])),
            "end_to_end_ms_median": statistics.median(s.end_to_end_duration_ms for s in stats)
            if stats
            else None,
            "checkpointed_bytes_median": statistics.median(s.checkpointed_size for s in stats)
            if stats
            else None,
            "state_bytes_median": statistics.median(s.state_size for s in stats) if stats else None,
        }
    out["off_records_per_s"] = (KEYS + UPDATES) / statistics.median(r[0] for r in runs["off"])
    return out


def _check(value: float, target: float, higher: bool = False) -> str:
    ok = value >= target if higher else value <= target
    return "" if ok else "  MISSED"


def run(report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="streamlet-bench-incremental-") as tmp:
        directory = Path(tmp)

        async def state_parts() -> tuple[dict[str, Any], dict[str, Any]]:
            generations, storage, inc_id, full_id = await _generations(directory / "state")
            return generations, await _recovery(storage, inc_id, full_id)

        generations, recovery = anyio.run(state_parts)
        throughput = _throughput(directory / "jobs")
    g, r, t = generations, recovery, throughput
    print(
        f"\nIncremental checkpoints: {KEYS:,} keys of ValueState, {CHANGED:.0%} changed per "
        f"checkpoint, {GENERATIONS} generations (medians)"
    )
    print(
        f"  bytes per checkpoint, incremental / full     {g['incremental_bytes_median']:,.0f} / "
        f"{g['full_bytes_median']:,.0f} = {g['bytes_ratio']:.3f} (target <= "
        f"{TARGETS['bytes']}){_check(g['bytes_ratio'], TARGETS['bytes'])}"
    )
    print(
        f"  end-to-end ms, incremental / full            {g['incremental_ms_median']:,.1f} / "
        f"{g['full_ms_median']:,.1f} = {g['duration_ratio_wall']:.3f} wall, "
        f"{g['duration_ratio_cpu']:.3f} cpu (target <= {TARGETS['duration']})"
        f"{_check(g['duration_ratio_wall'], TARGETS['duration'])}"
    )
    print(
        f"  restore ms, base + {GENERATIONS} changes / full          "
        f"{r['incremental_restore_ms']:,.0f} / {r['full_restore_ms']:,.0f} = {r['ratio']:.2f} "
        f"(target <= {TARGETS['recovery']}){_check(r['ratio'], TARGETS['recovery'])}"
    )
    for mode in ("incremental", "full"):
        m = t[mode]
        print(
            f"  job throughput, {mode} checkpoints every {INTERVAL_MS} ms / none: cpu "
            f"{m['cpu_ratio']:.2f}, wall {m['wall_ratio']:.2f} ({m['checkpoints']} checkpoints,"
            f" {_size(m['checkpointed_bytes_median'])} written of {_size(m['state_bytes_median'])}"
            f", {_ms(m['end_to_end_ms_median'])} ms each)"
            + (_throughput_target(m["cpu_ratio"]) if mode == "incremental" else "")
        )
    print(f"  (no checkpoints: {t['off_records_per_s']:,.0f} records/s)")
    report["incremental"] = {
        "generations": generations,
        "recovery": recovery,
        "throughput": throughput,
        "targets": TARGETS,
    }


def _throughput_target(ratio: float) -> str:
    target = TARGETS["throughput"]
    return f" (target >= {target}){_check(ratio, target, True)}"


def _size(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.2f} MB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


if __name__ == "__main__":
    run({})
