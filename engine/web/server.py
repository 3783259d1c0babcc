"""Serve the web UI from the job's own event loop (uvicorn, signals left to the program).

``serve_web_ui`` runs a uvicorn server as a task of the caller's task group (started with
``task_group.start``, which returns once the socket listens, with the URL). The server does
not install signal handlers: Ctrl-C stays the program's (it cancels the job as before).
``run_with_web_ui`` runs one job with its dashboard, which ``env.execute(...,
web_ui=...)`` and ``streamlet run --web-ui`` use; the UI outlives the job by ``linger_s``
so its final figures can be read.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import sniffio
import uvicorn

from streamlet.job.client import JobClient
from streamlet.job.result import JobExecutionResult
from streamlet.job.runner import JobRunner

__all__ = ["parse_address", "run_with_web_ui", "serve_web_ui"]

logger = logging.getLogger("streamlet.web")


def parse_address(address: str | int) -> tuple[str, int]:
    """``[HOST:]PORT`` as ``(host, port)``; the host defaults to 127.0.0.1.

    :raises ValueError: if the port is not a number in 0..65535 (0: any free port) or the
        host is empty
    """
    text = str(address).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]")
    if not host:
        raise ValueError(f"web UI address {address!r}: the host before ':' is empty")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(
            f"web UI address must be [HOST:]PORT (e.g. 8081 or 0.0.0.0:8081), got {address!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError(f"web UI port must be in 0..65535, got {port}")
    return host, port


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the program owns Ctrl-C, and cancelling
    the server's task stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket at ``host:port``, bound here so that a taken port is an error
    the caller sees at once (uvicorn would log it and exit the process)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise RuntimeError(f"the web UI cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise RuntimeError(
            f"the web UI cannot listen on {host}:{port}: {exc} (choose another port, or 0 "
            "for any free one)"
        ) from exc
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


async def serve_web_ui(
    app: Any,
    address: str | int = 8081,
    *,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` at ``address`` until cancelled; report the URL through
    ``task_status`` once listening (``url = await task_group.start(serve_web_ui, app)``).

    :raises RuntimeError: if the event loop is not asyncio's (uvicorn needs it), or the
        address cannot be bound
    """
    if sniffio.current_async_library() != "asyncio":
        raise RuntimeError("the web UI runs on asyncio (uvicorn); run the program with asyncio")
    host, port = parse_address(address)
    sock = _bind(host, port)
    try:
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        server = _Server(config)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            task_status.started(_url(sock))
    finally:
        sock.close()


async def run_with_web_ui(
    runner: JobRunner,
    address: str | int,
    *,
    token: str | None = None,
    linger_s: float = 5.0,
    on_url: Callable[[str], None] | None = None,
) -> JobExecutionResult:
    """Run ``runner``'s job with its dashboard at ``address``; return the job's result.

    :param linger_s: how long the UI stays up after the job ended (``inf``: until
        cancelled, e.g. by Ctrl-C)
    :param on_url: called with the dashboard's URL once it listens (default: print it to
        stderr)
    """
    from streamlet.web.app import create_app

    client = JobClient(runner)
    app = create_app(client, token=token)
    async with anyio.create_task_group() as group:
        url = await group.start(serve_web_ui, app, address)
        (on_url or _print_url)(url)
        group.start_soon(client._main)
        try:
            result = await client.wait()
        except Exception:
            await _linger(linger_s)  # a failed job's exceptions are worth reading too
            raise
        await _linger(linger_s)
        group.cancel_scope.cancel()
    return result


async def _linger(linger_s: float) -> None:
    """Keep the UI up after the job ended (not after a cancellation: that ends it)."""
    if linger_s > 0:
        with anyio.move_on_after(linger_s):
            await anyio.sleep_forever()


def _print_url(url: str) -> None:
    print(f"streamlet web UI: {url}", file=sys.stderr, flush=True)
