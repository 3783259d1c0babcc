"""streamlet.cli.demo (``make demo`` / ``streamlet demo``): a shortened run passes its own check,
also through a failure; ``--host/--port`` reads from a server of the user's."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import anyio
import anyio.abc
import pytest

from streamlet import cli
from streamlet.cli.demo import demo_text, run_demo
from streamlet.operators.sinks.file import read_committed

pytestmark = pytest.mark.asyncio


async def test_short_demo_verifies_exact_counts_through_a_failure(tmp_path: Path) -> None:
    out = io.StringIO()
    assert await run_demo(lines=1500, rate=3000, workdir=tmp_path / "demo", out=out)
    text = out.getvalue()
    assert "1 restart(s)" in text
    assert "word counts equal the text sent" in text and text.rstrip().endswith("OK")
    assert "top words:" in text and "checkpoints:" in text


async def test_demo_reads_a_server_of_the_users(tmp_path: Path) -> None:
    lines = ["to be or not to be", "that is the question", "to be"]

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:  # what `nc -lk 9999` would send as the user types
            await stream.send(("\n".join(lines) + "\n").encode())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    out = io.StringIO()
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        ok = await run_demo(host="127.0.0.1", port=port, workdir=tmp_path / "demo", out=out)
        tg.cancel_scope.cancel()
    assert ok
    text = out.getvalue()
    assert f"127.0.0.1:{port}" in text
    counts: dict[str, int] = {}
    for line in read_committed(tmp_path / "demo" / "out"):
        word, _, n = line.rpartition(",")
        counts[word] = max(counts.get(word, 0), int(n))
    assert counts == Counter(w.upper() for line in lines for w in line.split())
    assert "TO" in text  # the top words are printed


def test_demo_text_is_deterministic() -> None:
    assert demo_text(50) == demo_text(50)
    assert all(3 <= len(line.split()) <= 9 for line in demo_text(50))


def test_streamlet_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["demo", "--lines", "600", "--rate", "6000", "--workdir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "- OK" in out
