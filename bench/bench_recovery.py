"""Recovery benchmark (issue 5).

(a) Recovery time with 1,000,000 keys of state: from the moment a subtask fails (after a
    checkpoint holding every key completed) to the first record processed after the
    restore. Target <= 2 s.
(b) The ingress write-ahead log's cost on socket ingest: the same job reading a local TCP
    server with and without ``write_ahead_log=True``, interleaved. Both runs checkpoint
    every 100 ms (the log needs checkpoints, and a job that wants exactly-once has them),
    so the difference is the log's alone. Throughput is lines over the time from the
    sink's first record to its last: the steady state, without the start-up (the log
    scans its directory) and the final checkpoint. The whole job's time is reported too.
    Target: the log costs <= 30 % of ingest throughput.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from streamlet import RuntimeContext, Sink, SinkWriter, StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies

KEYS = int(os.environ.get("STREAMLET_BENCH_KEYS", "1000000"))
LINES = int(os.environ.get("STREAMLET_BENCH_LINES", "2000000"))
INGEST_CHECKPOINT_INTERVAL_MS = 100
REPEAT = int(os.environ.get("STREAMLET_BENCH_REPEAT", "3"))


class _Clock:
    failed_at: float | None = None
    first_after_restore: float | None = None


class FailOnceAfterCheckpoint:
    """Passes records on; after a checkpoint completed with every key in state, fails once."""

    def __init__(self, keys: int) -> None:
        self.keys = keys
        self.seen = 0
        self.checkpointed = False

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if self.seen >= self.keys:
            self.checkpointed = True

    def map(self, value: Any) -> Any:
        self.seen += 1
        if self.attempt == 0 and self.checkpointed:
            _Clock.failed_at = time.perf_counter()
            raise RuntimeError("benchmark failure")
        if self.attempt > 0 and _Clock.first_after_restore is None:
            _Clock.first_after_restore = time.perf_counter()
        return value


class _Discard(Sink):
    def create_writer(self) -> SinkWriter:
        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                return None

        return Writer()


async def _recovery_once(keys: int, directory: Path) -> tuple[float, int]:
    _Clock.failed_at = _Clock.first_after_restore = None
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(200)
    env.get_checkpoint_config().set_checkpoint_storage_dir(directory)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    (
        env.from_sequence(0, 3 * keys - 1)
        .map(lambda i: (i % keys, 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("counts")
        .map(FailOnceAfterCheckpoint(keys))
        .sink_to(_Discard())
    )
    result = await env.execute("bench-recovery")
    assert _Clock.failed_at is not None and _Clock.first_after_restore is not None
    return _Clock.first_after_restore - _Clock.failed_at, result.restart_count


async def _serve(listener: anyio.abc.Listener[anyio.abc.SocketStream], payload: bytes) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            view = memoryview(payload)
            for start in range(0, len(payload), 1 << 16):
                # No copy per chunk: the stream sends any buffer (its stub says bytes).
                await stream.send(view[start : start + (1 << 16)])  # type: ignore[arg-type]

    async with listener:
        await listener.serve(handle)


class _Count(Sink):
    """Counts lines and notes when the first and the last batch arrived."""

    def __init__(self) -> None:
        self.n = 0
        self.first_batch = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def create_writer(self) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                now = time.perf_counter()
                if not sink.n:
                    sink.first_at = now
                    sink.first_batch = len(records)
                sink.n += len(records)
                sink.last_at = now

        return Writer()


async def _ingest_once(
    payload: bytes, lines: int, wal: bool, directory: Path
) -> tuple[float, float]:
    """Return (lines/s from the sink's first batch to its last, the job's seconds)."""
    sink = _Count()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_checkpoint_config().set_checkpoint_storage_dir(directory)
    env.enable_checkpointing(INGEST_CHECKPOINT_INTERVAL_MS)
    async with anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(_serve, listener, payload)
        env.socket_text_stream("127.0.0.1", port, write_ahead_log=wal).sink_to(sink)
        start = time.perf_counter()
        await env.execute(f"bench-ingest-{wal}")
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    assert sink.n == lines, (sink.n, lines)
    return (sink.n - sink.first_batch) / (sink.last_at - sink.first_at), elapsed


def run(report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        recovery = []
        for i in range(REPEAT):
            seconds, restarts = anyio.run(_recovery_once, KEYS, Path(tmp) / f"r{i}")
            assert restarts == 1
            recovery.append(seconds)
        payload = b"".join(b"event %09d some payload text here\n" % i for i in range(LINES))
        plain = []
        logged = []
        for i in range(REPEAT):
            plain.append(anyio.run(_ingest_once, payload, LINES, False, Path(tmp) / f"p{i}"))
            logged.append(anyio.run(_ingest_once, payload, LINES, True, Path(tmp) / f"w{i}"))
    rate_plain = max(rate for rate, _ in plain)
    rate_logged = max(rate for rate, _ in logged)
    job_plain = min(seconds for _, seconds in plain)
    job_logged = min(seconds for _, seconds in logged)
    cost = 1 - rate_logged / rate_plain
    report["recovery"] = {
        "keys": KEYS,
        "recovery_s_best": min(recovery),
        "recovery_s_all": recovery,
        "recovery_target_s": 2.0,
        "ingest_lines": LINES,
        "ingest_checkpoint_interval_ms": INGEST_CHECKPOINT_INTERVAL_MS,
        "ingest_lines_per_s_without_wal": rate_plain,
        "ingest_lines_per_s_with_wal": rate_logged,
        "ingest_job_s_without_wal": job_plain,
        "ingest_job_s_with_wal": job_logged,
        "wal_cost_fraction": cost,
        "wal_cost_target": 0.30,
    }
    print(f"\nRecovery and write-ahead log (best of {REPEAT})")
    print(
        f"  recovery with {KEYS:,} keys: {min(recovery):.2f} s "
        f"(all runs: {', '.join(f'{r:.2f}' for r in recovery)}; target <= 2 s)"
    )
    print(
        f"  socket ingest ({LINES:,} lines, checkpoints every {INGEST_CHECKPOINT_INTERVAL_MS} "
        f"ms): {rate_plain:,.0f} lines/s without the log, {rate_logged:,.0f} lines/s with it: "
        f"the log costs {cost:.0%} (target <= 30%)"
    )
    print(
        f"  whole ingest job, start to end: {job_plain:.3f} s without the log, "
        f"{job_logged:.3f} s with it ({1 - job_plain / job_logged:.0%})"
    )


if __name__ == "__main__":
    run({})
