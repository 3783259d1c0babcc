"""A web app that feeds a streaming job from its request handlers (starlette + uvicorn).

Needs the ``web`` extra (``pip install -e '.[web]'``; ``make`` installs it). Then::

    python examples/web_app.py                  # serves http://127.0.0.1:8000
    curl -X POST localhost:8000/events -d '{"user": "ada", "amount": 12}'
    curl localhost:8000/totals                  # {"ada": 12}
    curl localhost:8000/job                     # the job's status, restarts, records read
    open http://127.0.0.1:8000/flink/           # the job's dashboard (Flink's REST API too)

How the pieces fit:

- ``POST /events`` takes ``{"user": ..., "amount": ...}`` (or a list of them) and hands each
  event to a :class:`~streamlet.PushSource` with ``await source.push(event)``. The push waits
  while the source's buffer is full, so a job that falls behind slows the clients down
  (backpressure) instead of growing memory.
- The job runs in the same event loop as the server. It is started by the app's lifespan
  with ``env.execute_async(...)``, which returns a :class:`~streamlet.JobClient` at once; on
  shutdown the lifespan ends the source, lets the job drain what was pushed, and cancels it
  if that takes too long.
- ``/flink/`` is streamlet's web UI mounted beside these routes: the dashboard, Flink's
  REST API (``/flink/jobs/<id>/checkpoints`` ...) and Prometheus metrics
  (``/flink/metrics``). The lifespan adds the job to it once started.
- The job keys events by user and keeps a running sum per user (keyed state, parallelism
  2). Its sink writes each new total into a dict, the *view*, which ``GET /totals`` serves.
  The view is eventually consistent: a ``POST`` returns when the event is buffered, and the
  total includes it a moment later.

Guarantees: with ``--checkpoint-dir`` the source keeps a write-ahead log and the job
checkpoints every second, so after a failure inside the job no accepted event is lost or
counted twice in the totals: they come from restored state, and the sink overwrites the
view with them (an idempotent "upsert"), so while the job replays the events since the
checkpoint a total may briefly go back, then catches up. Without it the push source is
at-most-once: events handed to a failing attempt are lost, and the job says so in a warning
when it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
except ImportError as exc:  # pragma: no cover - the web extra is part of `make`
    raise SystemExit(f"this example needs the web extra: pip install -e '.[web]' ({exc})") from exc

from streamlet import JobClient, PushSource, StreamExecutionEnvironment
from streamlet.web import JobRegistry
from streamlet.web import create_app as web_ui

logger = logging.getLogger("web_app")

JOB_NAME = "web-totals"


class TotalsView:
    """The latest total per user, written by the job and read by the request handlers.

    Both run on the one event loop, so a plain dict needs no lock.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def update(self, user_total: tuple[str, float]) -> None:
        user, total = user_total
        self.totals[user] = total


def build_job(env: StreamExecutionEnvironment, source: PushSource, view: TotalsView) -> None:
    """events -> (user, amount) -> key by user -> running sum -> the view."""
    (
        env.from_source(source)
        .uid("events")
        .map(lambda event: (event["user"], event["amount"]))
        .uid("parse")
        .key_by(lambda pair: pair[0])
        .sum(1)
        .uid("totals")
        .add_sink(view.update)  # a bound method is shared by the subtasks, not copied
        .name("totals view")
    )


def _check_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or set(event) != {"user", "amount"}:
        raise ValueError('an event is {"user": str, "amount": number}')
    user, amount = event["user"], event["amount"]
    if not isinstance(user, str) or not user:
        raise ValueError("user must be a non-empty string")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError("amount must be a number")
    return {"user": user, "amount": amount}


def create_app(checkpoint_dir: str | None = None, parallelism: int = 2) -> Starlette:
    """Return the app; its lifespan starts the job and stops it on shutdown."""
    source = PushSource(max_buffered=1024, write_ahead_log=checkpoint_dir is not None)
    view = TotalsView()
    jobs = JobRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        if checkpoint_dir is not None:
            env.enable_checkpointing(1000)
            env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoint_dir)
        build_job(env, source, view)
        client = await env.execute_async(JOB_NAME)
        app.state.job = client
        jobs.add(client)  # the dashboard at /flink/ shows it from now on
        try:
            yield
        finally:
            await _stop(client, source)

    async def post_events(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            events = [_check_event(e) for e in (body if isinstance(body, list) else [body])]
        except ValueError as exc:  # bad JSON, or a bad event
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            await source.push_many(events)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return JSONResponse({"error": "the job is not running"}, status_code=503)
        return JSONResponse({"accepted": len(events)}, status_code=202)

    async def get_totals(request: Request) -> JSONResponse:
        return JSONResponse(view.totals)

    async def get_job(request: Request) -> JSONResponse:
        job: JobClient = request.app.state.job
        stats = job.statistics()
        return JSONResponse(
            {
                "name": job.job_name,
                "status": job.status.value,
                "restarts": job.restart_count,
                "records_in": stats["records_in"],
                "buffered": source.buffered,
            }
        )

    return Starlette(
        routes=[
            Route("/events", post_events, methods=["POST"]),
            Route("/totals", get_totals),
            Route("/job", get_job),
            Mount("/flink", app=web_ui(jobs)),
        ],
        lifespan=lifespan,
    )


async def _stop(client: JobClient, source: PushSource, drain_timeout_s: float = 10) -> None:
    """End the input, give the job time to process what was pushed, then cancel it."""
    source.end()
    with anyio.move_on_after(drain_timeout_s):
        try:
            await client.wait()
        except Exception:
            logger.exception("the job %r failed", client.job_name)
    if not client.done:
        await client.cancel()


@contextlib.asynccontextmanager
async def serving(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the background of the current event loop.

    Yields the base URL once the server accepts requests (``port=0`` picks a free port);
    on exit shuts the server down, which runs the lifespan's shutdown (the job stops).

    :raises RuntimeError: if the server stopped before it started (see its log)
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stopped.set()

    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            while not server.started:
                if stopped.is_set():
                    raise RuntimeError("the server stopped before it started")
                await anyio.sleep(0.01)
            try:
                yield f"http://{host}:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--checkpoint-dir", help="checkpoints and the write-ahead log go here")
    args = parser.parse_args()
    uvicorn.run(create_app(args.checkpoint_dir), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
