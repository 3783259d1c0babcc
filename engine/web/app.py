"""The ASGI app: Flink's REST API, a Prometheus endpoint and the dashboard, for mounting.

``create_app(client, ...)`` returns a Starlette app that an asyncio program mounts beside
its own routes (``Mount("/flink", app=create_app(client))``) or serves on its own
(``streamlet run --web-ui``, ``env.execute(..., web_ui=...)``). Routes:

* ``GET /`` the dashboard (static files inside the package, no build step);
* ``GET /config``, ``/overview``, ``/jobs``, ``/jobs/overview``, ``/jobs/<jid>``,
  ``/jobs/<jid>/vertices/<vid>`` (and ``/backpressure``, ``/watermarks``, ``/metrics``),
  ``/jobs/<jid>/metrics``, ``/jobs/<jid>/checkpoints`` (and ``/details/<cid>``,
  ``/details/<cid>/subtasks/<vid>``), ``/jobs/<jid>/exceptions``: Flink's REST API
  (:mod:`streamlet.web.rest`);
* actions, as Flink's: ``POST /jobs/<jid>/savepoints`` (``{"target-directory": ...,
  "cancel-job": false}``), ``POST /jobs/<jid>/stop`` (``{"targetDirectory": ...}``), both
  answered at once with a ``request-id`` whose outcome ``GET
  /jobs/<jid>/savepoints/<request-id>`` reports; ``PATCH /jobs/<jid>?mode=cancel``;
* ``GET /metrics``: the Prometheus exposition (:mod:`streamlet.web.prometheus`).

Security: reading is open; with ``token`` set, an action needs the header
``Authorization: Bearer <token>`` and is refused with 401 otherwise. Actions must send a
JSON body (``Content-Type: application/json``): a page of another site cannot send that
to this server without the browser asking first, which this app never allows. The
standalone server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import importlib.resources
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from streamlet.job.client import JobClient
from streamlet.job.metrics import JobMetrics
from streamlet.web import rest
from streamlet.web.prometheus import registry_for

__all__ = ["JobRegistry", "create_app"]


class _JSON(JSONResponse):
    """orjson, as the rest of streamlet (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _error(status: int, *messages: str) -> _JSON:
    """Flink's error body: ``{"errors": [...]}``."""
    return _JSON({"errors": list(messages)}, status_code=status)


@dataclass(slots=True)
class _Operation:
    """A savepoint or stop-with-savepoint requested through the API."""

    status: str = "IN_PROGRESS"
    location: str | None = None
    failure: str | None = None


@dataclass(slots=True)
class _Job:
    client: JobClient
    metrics: JobMetrics
    operations: dict[str, _Operation] = field(default_factory=dict)


class JobRegistry:
    """The jobs an app shows; an application adds jobs as it starts them."""

    def __init__(self, clients: Iterable[JobClient] = ()) -> None:
        self._jobs: dict[str, _Job] = {}
        for client in clients:
            self.add(client)

    def add(self, client: JobClient) -> None:
        """Show ``client``'s job (the async :class:`JobClient` of ``execute_async``).

        :raises TypeError: for anything else (a threaded client runs on another loop)
        """
        if not isinstance(client, JobClient):
            raise TypeError(
                "the web UI shows jobs started with 'await env.execute_async(...)' on this "
                f"event loop (a JobClient), got {type(client).__name__}"
            )
        runner = client._runner
        self._jobs[client.job_id] = _Job(client, JobMetrics(runner))

    def get(self, job_id: str) -> _Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[_Job]:
        return list(self._jobs.values())


def create_app(
    jobs: JobClient | Iterable[JobClient] | JobRegistry = (),
    *,
    token: str | None = None,
    refresh_interval_ms: int = 1000,
) -> Starlette:
    """Return the ASGI app showing ``jobs`` (see the module docstring).

    :param jobs: a job's client, several, or a :class:`JobRegistry` to add jobs to later
        (also reachable as ``app.state.jobs``)
    :param token: if set, actions (savepoint, stop, cancel) need ``Authorization: Bearer
        <token>``
    :param refresh_interval_ms: how often the dashboard polls
    :raises ValueError: for an empty token or a refresh interval below 100 ms
    """
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"token must be a non-empty str or None, got {token!r}")
    if not isinstance(refresh_interval_ms, int) or refresh_interval_ms < 100:
        raise ValueError(f"refresh_interval_ms must be an int >= 100, got {refresh_interval_ms!r}")
    if isinstance(jobs, JobRegistry):
        registry = jobs
    elif isinstance(jobs, JobClient):
        registry = JobRegistry([jobs])
    else:
        registry = JobRegistry(jobs)
    prometheus = registry_for(lambda: [job.metrics for job in registry.all()])
    expected = None if token is None else f"Bearer {token}".encode()

    def job_of(request: Request) -> _Job | None:
        return registry.get(request.path_params["jid"])

    def view_of(job: _Job) -> rest.JobView:
        return rest.JobView.of(job.client, job.metrics)

    Handler = Callable[[Request], Awaitable[Response]]

    def with_job(handler: Callable[[Request, _Job], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            job = job_of(request)
            if job is None:
                return _error(404, f"Job {request.path_params['jid']} not found")
            return await handler(request, job)

        return endpoint

    def with_vertex(
        handler: Callable[[rest.JobView, Any], Any],
    ) -> Handler:
        async def endpoint(request: Request, job: _Job) -> Response:
            view = view_of(job)
            chain = view.chain(request.path_params["vid"])
            if chain is None:
                return _error(404, f"Vertex {request.path_params['vid']} not found")
            return _JSON(handler(view, chain))

        return with_job(endpoint)

    def action(handler: Callable[[Request, _Job], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request, job: _Job) -> Response:
            if expected is not None:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return _error(
                        401, "this action needs the header 'Authorization: Bearer <token>'"
                    )
            return await handler(request, job)

        return with_job(endpoint)

    async def json_body(request: Request) -> dict[str, Any] | Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the request body as JSON (Content-Type: application/json)")
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, f"request body must be a JSON object, got {type(body).__name__}")
        return body

    # --- read routes ---

    async def config(request: Request) -> Response:
        return _JSON(
            {
                "refresh-interval": refresh_interval_ms,
                "timezone-name": "UTC",
                "timezone-offset": 0,
                "flink-version": "streamlet",
                "flink-revision": "",
                "features": {"web-submit": False, "web-cancel": True, "web-history": False},
                "streamlet-token-required": token is not None,
            }
        )

    async def overview(request: Request) -> Response:
        states = [job.client.status.value for job in registry.all()]
        return _JSON(
            {
                "taskmanagers": 1,
                "slots-total": 0,
                "slots-available": 0,
                "jobs-running": sum(s in ("RUNNING", "RESTARTING", "CREATED") for s in states),
                "jobs-finished": states.count("FINISHED"),
                "jobs-cancelled": states.count("CANCELED"),
                "jobs-failed": states.count("FAILED"),
                "flink-version": "streamlet",
                "flink-commit": "",
            }
        )

    async def jobs_list(request: Request) -> Response:
        return _JSON(
            {
                "jobs": [
                    {"id": j.client.job_id, "status": j.client.status.value} for j in registry.all()
                ]
            }
        )

    async def jobs_overview(request: Request) -> Response:
        return _JSON({"jobs": [rest.job_overview(view_of(job)) for job in registry.all()]})

    async def job_details(request: Request, job: _Job) -> Response:
        return _JSON(rest.job_details(view_of(job)))

    async def job_metrics(request: Request, job: _Job) -> Response:
        values = view_of(job).reading.job
        return _metric_list(values, request)

    async def vertex_metrics(request: Request, job: _Job) -> Response:
        view = view_of(job)
        chain = view.chain(request.path_params["vid"])
        if chain is None:
            return _error(404, f"Vertex {request.path_params['vid']} not found")
        return _metric_list(rest.vertex_metrics(view, chain), request)

    async def checkpoints(request: Request, job: _Job) -> Response:
        return _JSON(rest.checkpoints(view_of(job)))

    async def checkpoint_config(request: Request, job: _Job) -> Response:
        config = job.client._runner.config.checkpoint_config
        return _JSON(
            {
                "mode": config.mode.name.lower(),
                "interval": config.interval_ms if config.interval_ms is not None else -1,
                "timeout": config.timeout_ms,
                "min_pause": config.min_pause_between_checkpoints_ms,
                "max_concurrent": config.max_concurrent_checkpoints,
                "tolerable_failed_checkpoints": config.tolerable_failed_checkpoints,
            }
        )

    def checkpoint_id(request: Request) -> int | None:
        try:
            return int(request.path_params["cid"])
        except ValueError:
            return None

    async def checkpoint_details(request: Request, job: _Job) -> Response:
        cid = checkpoint_id(request)
        found = None if cid is None else rest.checkpoint_details(view_of(job), cid)
        if found is None:
            return _error(404, f"Checkpoint {request.path_params['cid']} not found")
        return _JSON(found)

    async def checkpoint_subtasks(request: Request, job: _Job) -> Response:
        view = view_of(job)
        chain = view.chain(request.path_params["vid"])
        if chain is None:
            return _error(404, f"Vertex {request.path_params['vid']} not found")
        cid = checkpoint_id(request)
        found = None if cid is None else rest.checkpoint_subtask_details(view, cid, chain)
        if found is None:
            return _error(404, f"Checkpoint {request.path_params['cid']} not found")
        return _JSON(found)

    async def job_exceptions(request: Request, job: _Job) -> Response:
        return _JSON(rest.exceptions(view_of(job)))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(prometheus), media_type=CONTENT_TYPE_LATEST)

    # --- actions ---

    def start_operation(job: _Job, run: Callable[[], Awaitable[str]]) -> tuple[str, BackgroundTask]:
        request_id = uuid.uuid4().hex
        operation = job.operations[request_id] = _Operation()

        async def perform() -> None:
            try:
                operation.location = await run()
                operation.status = "COMPLETED"
            except Exception as exc:  # reported through the status route
                operation.failure = f"{type(exc).__name__}: {exc}"
                operation.status = "COMPLETED"

        # The operation runs in the request's own task, after the response is sent.
        return request_id, BackgroundTask(perform)

    async def trigger_savepoint(request: Request, job: _Job) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        target = body.get("target-directory")
        cancel = body.get("cancel-job", False)
        if target is not None and not isinstance(target, str):
            return _error(400, f"'target-directory' must be a string, got {target!r}")
        if not isinstance(cancel, bool):
            return _error(400, f"'cancel-job' must be true or false, got {cancel!r}")
        client = job.client
        try:
            directory = client.savepoint_directory(target)
        except ValueError as exc:
            return _error(400, str(exc))

        async def run() -> str:
            if cancel:
                return await client.stop_with_savepoint(False, directory)
            return await client.trigger_savepoint(directory)

        request_id, task = start_operation(job, run)
        return _JSON({"request-id": request_id}, status_code=202, background=task)

    async def stop(request: Request, job: _Job) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        target = body.get("targetDirectory")
        drain = body.get("drain", False)
        if target is not None and not isinstance(target, str):
            return _error(400, f"'targetDirectory' must be a string, got {target!r}")
        if not isinstance(drain, bool):
            return _error(400, f"'drain' must be true or false, got {drain!r}")
        client = job.client
        try:
            directory = client.savepoint_directory(target)
        except ValueError as exc:
            return _error(400, str(exc))
        # Flink's drain: the MAX watermark fires every event-time timer and window before
        # the savepoint (PyFlink's advance_to_end_of_event_time=True).
        request_id, task = start_operation(
            job, lambda: client.stop_with_savepoint(drain, directory)
        )
        return _JSON({"request-id": request_id}, status_code=202, background=task)

    async def savepoint_status(request: Request, job: _Job) -> Response:
        operation = job.operations.get(request.path_params["trigger"])
        if operation is None:
            return _error(404, f"No savepoint request {request.path_params['trigger']}")
        result: dict[str, Any] = {"status": {"id": operation.status}}
        if operation.status == "COMPLETED":
            if operation.failure is None:
                result["operation"] = {"location": operation.location}
            else:
                result["operation"] = {
                    "failure-cause": {"class": "streamlet", "stack-trace": operation.failure}
                }
        return _JSON(result)

    async def cancel(request: Request, job: _Job) -> Response:
        mode = request.query_params.get("mode", "cancel")
        if mode != "cancel":
            return _error(400, f"mode must be 'cancel', got {mode!r}")
        if job.client.done:
            return _JSON({}, status_code=202)
        return _JSON({}, status_code=202, background=BackgroundTask(job.client.cancel))

    static = importlib.resources.files("streamlet.web") / "static"

    async def index(request: Request) -> Response:
        return Response((static / "index.html").read_bytes(), media_type="text/html")

    routes = [
        Route("/", index),
        Mount("/static", app=StaticFiles(packages=[("streamlet.web", "static")]), name="static"),
        Route("/config", config),
        Route("/overview", overview),
        Route("/metrics", metrics),
        Route("/jobs", jobs_list),
        Route("/jobs/overview", jobs_overview),
        Route("/jobs/{jid}", with_job(job_details), methods=["GET"]),
        Route("/jobs/{jid}", action(cancel), methods=["PATCH"]),
        Route("/jobs/{jid}/metrics", with_job(job_metrics)),
        Route("/jobs/{jid}/exceptions", with_job(job_exceptions)),
        Route("/jobs/{jid}/checkpoints", with_job(checkpoints)),
        Route("/jobs/{jid}/checkpoints/config", with_job(checkpoint_config)),
        Route("/jobs/{jid}/checkpoints/details/{cid}", with_job(checkpoint_details)),
        Route(
            "/jobs/{jid}/checkpoints/details/{cid}/subtasks/{vid}",
            with_job(checkpoint_subtasks),
        ),
        Route("/jobs/{jid}/savepoints", action(trigger_savepoint), methods=["POST"]),
        Route("/jobs/{jid}/savepoints/{trigger}", with_job(savepoint_status)),
        Route("/jobs/{jid}/stop", action(stop), methods=["POST"]),
        Route("/jobs/{jid}/vertices/{vid}", with_vertex(rest.vertex_details)),
        Route("/jobs/{jid}/vertices/{vid}/backpressure", with_vertex(rest.vertex_backpressure)),
        Route("/jobs/{jid}/vertices/{vid}/watermarks", with_vertex(rest.vertex_watermarks)),
        Route("/jobs/{jid}/vertices/{vid}/metrics", with_job(vertex_metrics)),
    ]
    app = Starlette(routes=routes)
    app.state.jobs = registry
    return app


def _metric_list(values: dict[str, Any], request: Request) -> Response:
    """Flink's metrics route: ``[{"id": name}]``, or with ``?get=a,b`` the values of those
    metrics as strings, ``[{"id": name, "value": "..."}]``."""
    wanted = request.query_params.get("get")
    if wanted is None:
        return _JSON([{"id": name} for name in values])
    out = []
    for name in wanted.split(","):
        if name in values:
            out.append({"id": name, "value": str(values[name])})
    return _JSON(out)
