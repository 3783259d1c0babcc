"""streamlet.cli.demo (``make demo`` / ``streamlet demo``): a shortened run passes its own check,
also through a failure; ``--host/--port`` reads from a server of the user's."""

from __future__ import annotations

import io
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
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


# --- Ctrl-C with --host/--port: the demo prints what it counted ---

LINES = ["to be or not to be", "that is the question", "to be"]
EXPECTED = Counter(w.upper() for line in LINES for w in line.split())


def _printed_counts(text: str) -> dict[str, int]:
    """The word counts of the report's "top words" table."""
    rows = text.split("top words:\n", 1)[1].split("\n")
    table = [row.split() for row in itertools.takewhile(lambda row: row.startswith("  "), rows)]
    return {word: int(n.replace(",", "")) for word, n in table}


class _Terminal(io.StringIO):
    """A terminal (a status line every 0.25 s) that tells when every word sent was counted."""

    def __init__(self) -> None:
        super().__init__()
        self.all_counted = anyio.Event()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if f"| {sum(EXPECTED.values())} words counted" in text:
            self.all_counted.set()
        return super().write(text)


async def test_cancelling_the_demo_prints_what_it_counted(tmp_path: Path) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:  # `nc -lk 9999` with lines typed and the connection kept open
            await stream.send(("\n".join(LINES) + "\n").encode())
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    out = _Terminal()
    with anyio.fail_after(30):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            demo = anyio.CancelScope()

            async def run() -> None:
                with demo:
                    await run_demo(host="127.0.0.1", port=port, workdir=tmp_path / "d", out=out)
                tg.cancel_scope.cancel()

            tg.start_soon(run)
            await out.all_counted.wait()
            demo.cancel()  # what Ctrl-C does to anyio.run's main task
    text = out.getvalue()
    assert "stopped after" in text and "counted 12 words (8 distinct)" in text, text
    assert _printed_counts(text) == EXPECTED
    assert "checkpoints:" in text


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery to a child is POSIX here")
def test_ctrl_c_on_the_demo_exits_cleanly_with_the_counts(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        conn.sendall(("\n".join(LINES) + "\n").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    argv = ["demo", "--host", "127.0.0.1", "--port", str(port), "--workdir", "d"]
    child = subprocess.Popen(
        [sys.executable, "-m", "streamlet", *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        thread.join(timeout=30)  # the job's source connected and got the lines
        assert accepted, "the demo never connected"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        for conn in accepted:
            conn.close()
        server.close()
    assert child.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "stopped after" in out and "top words:" in out, out
    # What it counted by then (the lines may still be on their way): never more than sent.
    assert all(n <= EXPECTED[w] for w, n in _printed_counts(out).items())
    assert "interrupted (Ctrl-C)" in out
