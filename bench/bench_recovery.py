"""Recovery benchmark (issue 5).

(a) Recovery time with 1,000,000 keys of state: from the moment a subtask fails (after a
    checkpoint holding every key completed) to the first record processed after the
    restore. Target <= 2 s.
(b) The ingress write-ahead log's cost on socket ingest: the same job reading a local TCP
    server with and without ``write_ahead_log=True``, interleaved. Target: the log costs
    <= 30 % of ingest throughput.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from engine import RuntimeContext, Sink, SinkWriter, StreamExecutionEnvironment
from engine.restart import RestartStrategies

KEYS = int(os.environ.get("STREAMLET_BENCH_KEYS", "1000000"))
LINES = int(os.environ.get("STREAMLET_BENCH_LINES", "1000000"))
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


async def _serve(listener: anyio.abc.SocketListener, payload: bytes) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            view = memoryview(payload)
            for start in range(0, len(payload), 1 << 16):
                await stream.send(view[start : start + (1 << 16)])

    async with listener:
        await listener.serve(handle)


class _Count(Sink):
    def __init__(self) -> None:
        self.n = 0

    def create_writer(self) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            async def write_batch(self, records: list[Any]) -> None:
                sink.n += len(records)

        return Writer()


async def _ingest_once(lines: int, wal: bool, directory: Path) -> float:
    payload = b"".join(b"event %09d some payload text here\n" % i for i in range(lines))
    sink = _Count()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_checkpoint_config().set_checkpoint_storage_dir(directory)
    if wal:
        env.enable_checkpointing(500)
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
    return elapsed


def run(report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        recovery = []
        for i in range(REPEAT):
            seconds, restarts = anyio.run(_recovery_once, KEYS, Path(tmp) / f"r{i}")
            assert restarts == 1
            recovery.append(seconds)
        plain = []
        logged = []
        for i in range(REPEAT):
            plain.append(anyio.run(_ingest_once, LINES, False, Path(tmp) / f"p{i}"))
            logged.append(anyio.run(_ingest_once, LINES, True, Path(tmp) / f"w{i}"))
    best_plain, best_logged = min(plain), min(logged)
    cost = 1 - best_plain / best_logged
    report["recovery"] = {
        "keys": KEYS,
        "recovery_s_best": min(recovery),
        "recovery_s_all": recovery,
        "recovery_target_s": 2.0,
        "ingest_lines": LINES,
        "ingest_lines_per_s_without_wal": LINES / best_plain,
        "ingest_lines_per_s_with_wal": LINES / best_logged,
        "wal_cost_fraction": cost,
        "wal_cost_target": 0.30,
    }
    print(f"\nRecovery and write-ahead log (best of {REPEAT})")
    print(
        f"  recovery with {KEYS:,} keys: {min(recovery):.2f} s "
        f"(all runs: {', '.join(f'{r:.2f}' for r in recovery)}; target <= 2 s)"
    )
    print(
        f"  socket ingest: {LINES / best_plain:,.0f} lines/s without the log, "
        f"{LINES / best_logged:,.0f} lines/s with it: the log costs {cost:.0%} "
        f"(target <= 30%)"
    )


if __name__ == "__main__":
    run({})
