"""A socket job with the ingress write-ahead log counts every line exactly once, although
it fails and restarts while the server streams (issue 5)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import anyio.abc
import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.testing import FaultInjector, inject_faults

pytestmark = pytest.mark.anyio

LINES = [f"line{i} w{i % 13} w{i % 7}" for i in range(3000)]


async def _serve(listener: anyio.abc.Listener[anyio.abc.SocketStream], lines: list[str]) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            for start in range(0, len(lines), 50):
                # Lines split across writes on purpose: a chunk ends mid-line.
                data = "".join(line + "\n" for line in lines[start : start + 50]).encode()
                cut = len(data) // 2 + 3
                await stream.send(data[:cut])
                await anyio.sleep(0.002)
                await stream.send(data[cut:])

    async with listener:
        await listener.serve(handle)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_line_counted_exactly_once_across_failures(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.enable_checkpointing(20)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(10, 0))
    injector = inject_faults(
        env,
        FaultInjector.random(
            seed,
            operators=["count", "words"],
            parallelism=2,
            max_record=3000,
            count=2,
            phases=("process", "snapshot"),
        ),
    )
    async with anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(_serve, listener, LINES)
        (
            env.socket_text_stream("127.0.0.1", port, write_ahead_log=True)
            .uid("socket")
            .flat_map(lambda line: line.split())
            .uid("words")
            .rebalance()
            .map(lambda word: (word, 1))
            .key_by(lambda pair: pair[0])
            .reduce(lambda a, b: (a[0], a[1] + b[1]))
            .uid("count")
            .sink_to(FileSink(tmp_path / "out", encoder=lambda p: f"{p[0]} {p[1]}"))
        )
        with anyio.fail_after(60):
            result = await env.execute("socket-wal")
        tg.cancel_scope.cancel()

    assert injector.fired and result.restart_count >= 1
    expected = Counter(word for line in LINES for word in line.split())
    seen: dict[str, list[int]] = defaultdict(list)
    for line in read_committed(tmp_path / "out"):
        word, n = line.split()
        seen[word].append(int(n))
    # A word's running counts are 1..total, each exactly once: nothing lost, none repeated.
    assert {w: sorted(ns) for w, ns in seen.items()} == {
        w: list(range(1, n + 1)) for w, n in expected.items()
    }


async def test_without_the_log_the_job_warns_that_it_is_at_most_once(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(_serve, listener, LINES[:100])
        env = StreamExecutionEnvironment.get_execution_environment()
        out: list[str] = []
        env.socket_text_stream("127.0.0.1", port).add_sink(out.append)
        await env.execute("no-wal")
        tg.cancel_scope.cancel()
    assert out == LINES[:100]
    assert "cannot replay its input" in caplog.text and "at-most-once" in caplog.text


@pytest.mark.parametrize("checkpoint_dir", [False, True], ids=["no-dir", "dir"])
async def test_the_at_most_once_warning_says_how_to_get_exactly_once(
    anyio_backend: str, caplog: pytest.LogCaptureFixture, tmp_path: Path, checkpoint_dir: bool
) -> None:
    async with anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(_serve, listener, LINES[:10])
        env = StreamExecutionEnvironment.get_execution_environment()
        if checkpoint_dir:
            env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ckpt"))
        env.socket_text_stream("127.0.0.1", port).uid("lines").add_sink(lambda _: None)
        with caplog.at_level(logging.WARNING, logger="streamlet.job"):
            await env.execute("no-wal")
        tg.cancel_scope.cancel()
    (warning,) = [r.getMessage() for r in caplog.records if "at-most-once" in r.getMessage()]
    assert "(uid 'lines')" in warning
    assert "for exactly-once, create it with write_ahead_log=True" in warning
    if checkpoint_dir:
        assert "its log is kept under the job's checkpoint directory" in warning
    else:
        assert "set a checkpoint directory for the log" in warning
        assert "set_checkpoint_storage_dir(DIR)" in warning and "--checkpoint-dir" in warning
