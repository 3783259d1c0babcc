"""Control a job on a Flink cluster through Flink's REST API: status, cancel, savepoints.

PyFlink submits the job (it builds the JobGraph with its Python parts); everything after
the submission goes through the cluster's REST endpoint with the standard library's
``urllib``, so the client needs no JVM: :class:`FlinkJobClient` has the methods of
streamlet's :class:`~streamlet.job.client.JobClient` (``get_job_status``, ``cancel``,
``trigger_savepoint``, ``stop_with_savepoint``, ``wait``), blocking like
:class:`~streamlet.job.threaded.ThreadedJobClient`'s.

The cluster's answers are untrusted input: every field read is checked for its type (and
ids for their form before they go into a URL), and a malformed answer raises
:class:`FlinkRestError` naming the request and what was wrong.

Endpoints used (Flink's REST API, unversioned paths):

* ``GET /jobs/<id>``: the job's ``state``, ``duration``;
* ``GET /jobs/<id>/exceptions``: ``exceptionHistory.entries`` (newest first), the root
  exception of a failed job;
* ``PATCH /jobs/<id>?mode=cancel``;
* ``POST /jobs/<id>/savepoints`` (``target-directory``, ``cancel-job``) and
  ``POST /jobs/<id>/stop`` (``targetDirectory``, ``drain``): both answer a ``request-id``,
  polled at ``GET /jobs/<id>/savepoints/<request-id>`` until ``status.id`` is
  ``COMPLETED``, with either ``operation.location`` or ``operation.failure-cause``.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from streamlet.checkpoints.errors import CheckpointError, CheckpointFailureReason
from streamlet.errors import JobCancelledError, JobExecutionError
from streamlet.flink.result import FlinkJobResult
from streamlet.job.client import savepoint_arguments
from streamlet.job.result import JobStatus

__all__ = [
    "FLINK_STATES",
    "FlinkJobClient",
    "FlinkJobError",
    "FlinkRestClient",
    "FlinkRestError",
    "cluster_has_python_jar",
    "parse_address",
    "python_jar_keys",
    "run_remote",
]

#: Flink's job states (``org.apache.flink.api.common.JobStatus``), terminal or not.
FLINK_STATES = {
    "INITIALIZING": False,
    "CREATED": False,
    "RUNNING": False,
    "FAILING": False,
    "FAILED": True,
    "CANCELLING": False,
    "CANCELED": True,
    "FINISHED": True,
    "RESTARTING": False,
    "SUSPENDED": True,
    "RECONCILING": False,
}

#: Flink's states streamlet's JobStatus lacks, as the nearest one streamlet has.
_NEAREST = {"INITIALIZING": JobStatus.CREATED, "RECONCILING": JobStatus.RESTARTING}

_ID = re.compile(r"[0-9a-f]{32}")
_MAX_BODY = 16 * 1024 * 1024  # a job's exceptions with stack traces stay far below


def parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a ``host:port`` REST address.

    :raises ValueError: if it is not ``host:port`` with a port in 1..65535
    """
    if not isinstance(address, str):
        raise ValueError(f'flink_address must be "host:port", got {address!r}')
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'flink_address must be "host:port", got {address!r}')
    return host.strip("[]"), int(port)


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FlinkRestError(f"{what} must be 32 hexadecimal digits, got {value!r}")
    return value


class FlinkRestError(RuntimeError):
    """A request to Flink's REST API failed, or its answer was not what the API returns."""


class FlinkJobError(JobExecutionError, RuntimeError):
    """A job on Flink failed (or the cluster suspended it): its name, its Flink job id, and
    Flink's root exception (``/jobs/<id>/exceptions``).

    A :class:`~streamlet.errors.JobExecutionError` like a failed job of streamlet's own
    runtime, and a ``RuntimeError`` as the Flink runner raised before.

    :param flink_job_id: the job's id on the cluster
    :param root_exception: the exception's class and message, e.g.
        ``java.lang.RuntimeException: Error received from SDK harness``
    :param task_name: the Flink task that failed, when Flink names one
    :param stacktrace: Flink's whole stack trace (with the Python traceback of a Python
        function's error)
    """

    def __init__(
        self,
        job_name: str,
        flink_job_id: str,
        state: str,
        root_exception: str | None,
        *,
        task_name: str | None = None,
        stacktrace: str | None = None,
    ) -> None:
        where = f" in task {task_name!r}" if task_name else ""
        why = root_exception or "Flink recorded no exception"
        super().__init__(
            "",
            "",
            0,
            1,
            job_name=job_name,
            detail=f"{state} on Flink (job id {flink_job_id}){where}: {why}",
        )
        self.flink_job_id = flink_job_id
        self.state = state
        self.root_exception = root_exception
        self.task_name = task_name
        self.stacktrace = stacktrace


class FlinkRestClient:
    """Requests to one cluster's REST endpoint (``host:port``), with checked answers.

    :param timeout_s: the timeout of each HTTP request
    """

    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        host, port = parse_address(address)
        netloc = f"[{host}]" if ":" in host else host
        self.address = address
        self.base_url = f"http://{netloc}:{port}"
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON answer (``{}`` for an empty one).

        :raises FlinkRestError: if the cluster is unreachable, answers an HTTP error (its
            ``errors`` list is quoted), or answers something other than JSON
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = self.base_url + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        what = f"{method} {url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                raw = response.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            raise FlinkRestError(
                f"{what}: HTTP {exc.code}: {_errors_of(exc.read(_MAX_BODY))}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FlinkRestError(f"{what}: the cluster did not answer ({reason})") from None
        if len(raw) > _MAX_BODY:
            raise FlinkRestError(f"{what}: the answer is larger than {_MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise FlinkRestError(f"{what}: the answer is not JSON: {raw[:200]!r}") from None

    def _object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.request(method, path, body)
        if not isinstance(answer, dict):
            raise FlinkRestError(f"{method} {path}: expected a JSON object, got {answer!r:.200}")
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/<id>``, with ``state`` checked to be one of Flink's job states."""
        path = f"/jobs/{_check_id(job_id, 'job id')}"
        answer = self._object("GET", path)
        state = answer.get("state")
        if state not in FLINK_STATES:
            raise FlinkRestError(f"GET {path}: 'state' is not a Flink job state: {state!r:.100}")
        return answer

    def job_state(self, job_id: str) -> str:
        """The job's state, one of :data:`FLINK_STATES`."""
        return str(self.job(job_id)["state"])

    def cancel(self, job_id: str) -> None:
        """``PATCH /jobs/<id>?mode=cancel``: ask the cluster to cancel the job."""
        self.request("PATCH", f"/jobs/{_check_id(job_id, 'job id')}?mode=cancel")

    def root_exception(self, job_id: str) -> dict[str, str | None] | None:
        """The newest entry of the job's exception history: ``exception`` (class and the
        first line of its message), ``task`` and ``stacktrace``; ``None`` if empty."""
        path = f"/jobs/{_check_id(job_id, 'job id')}/exceptions"
        answer = self._object("GET", path)
        history = answer.get("exceptionHistory", {})
        entries = history.get("entries", []) if isinstance(history, dict) else None
        if not isinstance(entries, list):
            raise FlinkRestError(f"GET {path}: 'exceptionHistory.entries' is not a list")
        if entries:
            entry = entries[0]
            if not isinstance(entry, dict):
                raise FlinkRestError(f"GET {path}: an exception entry is not an object")
            trace = _optional_str(entry, "stacktrace", path)
            name = _optional_str(entry, "exceptionName", path)
            task = _optional_str(entry, "taskName", path)
            return {"exception": _headline(name, trace), "task": task, "stacktrace": trace}
        legacy = answer.get("root-exception")  # Flink 1.x
        if isinstance(legacy, str) and legacy:
            return {"exception": _headline(None, legacy), "task": None, "stacktrace": legacy}
        return None

    def trigger_savepoint(
        self, job_id: str, directory: str | None, *, cancel_job: bool = False
    ) -> str:
        """``POST /jobs/<id>/savepoints``; return the request id to poll."""
        path = f"/jobs/{_check_id(job_id, 'job id')}/savepoints"
        body: dict[str, Any] = {"cancel-job": cancel_job}
        if directory is not None:
            body["target-directory"] = directory
        return _request_id(self._object("POST", path, body), path)

    def stop(self, job_id: str, directory: str | None, *, drain: bool = False) -> str:
        """``POST /jobs/<id>/stop`` (stop with a savepoint); return the request id to poll."""
        path = f"/jobs/{_check_id(job_id, 'job id')}/stop"
        body: dict[str, Any] = {"drain": drain}
        if directory is not None:
            body["targetDirectory"] = directory
        return _request_id(self._object("POST", path, body), path)

    def savepoint_location(
        self, job_id: str, request_id: str, *, timeout_s: float = 300.0, poll_s: float = 0.1
    ) -> str:
        """Poll ``/jobs/<id>/savepoints/<request id>`` until the savepoint completed; return
        its location.

        :raises CheckpointError: if the savepoint failed (Flink's failure cause quoted)
        :raises TimeoutError: if it has not completed within ``timeout_s``
        """
        path = (
            f"/jobs/{_check_id(job_id, 'job id')}/savepoints/"
            f"{_check_id(request_id, 'savepoint request id')}"
        )
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self._object("GET", path)
            status = answer.get("status")
            state = status.get("id") if isinstance(status, dict) else None
            if state not in ("IN_PROGRESS", "COMPLETED"):
                raise FlinkRestError(f"GET {path}: 'status.id' is {state!r:.100}")
            if state == "COMPLETED":
                return _savepoint_outcome(answer.get("operation"), path)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the savepoint of job {job_id} took longer than {timeout_s} s")
            time.sleep(poll_s)


def _optional_str(entry: dict[str, Any], key: str, path: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise FlinkRestError(f"GET {path}: {key!r} is not a string: {value!r:.100}")
    return value


def _headline(name: str | None, trace: str | None) -> str:
    """The exception's class and message, and the deepest ``Caused by`` (the Python error
    of a Python function is the last line of the message that carries its traceback)."""
    lines = [line.strip() for line in (trace or "").splitlines() if line.strip()]
    head = lines[0] if lines else (name or "unknown exception")
    causes = [line for line in lines if line.startswith("Caused by:")]
    python = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)]
    parts = [head]
    if causes and causes[-1].removeprefix("Caused by:").strip() not in head:
        parts.append(causes[-1])
    if python and python[-1] not in parts and not python[-1].startswith(("java.", "org.")):
        parts.append(python[-1])
    return " / ".join(p[:500] for p in parts)


def _request_id(answer: dict[str, Any], path: str) -> str:
    value = answer.get("request-id")
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FlinkRestError(f"POST {path}: no valid 'request-id' in the answer: {answer!r:.200}")
    return value


def _savepoint_outcome(operation: Any, path: str) -> str:
    if not isinstance(operation, dict):
        raise FlinkRestError(f"GET {path}: a completed savepoint has no 'operation' object")
    failure = operation.get("failure-cause")
    if failure is not None:
        trace = failure.get("stack-trace") if isinstance(failure, dict) else None
        detail = _headline(None, trace if isinstance(trace, str) else str(failure))
        raise CheckpointError(CheckpointFailureReason.TRIGGER_CHECKPOINT_FAILURE, detail=detail)
    location = operation.get("location")
    if not isinstance(location, str) or not location:
        raise FlinkRestError(f"GET {path}: 'operation.location' is {location!r:.100}")
    return location


def _errors_of(raw: bytes) -> str:
    """Flink's ``{"errors": [...]}`` body as text (the first lines of each)."""
    try:
        errors = json.loads(raw).get("errors")
    except (ValueError, AttributeError):
        return raw[:300].decode(errors="replace") or "(no body)"
    if not isinstance(errors, list):
        return str(errors)[:300]
    return "; ".join(str(e).strip().splitlines()[0][:300] for e in errors if str(e).strip())


class FlinkJobClient:
    """The handle of a job running on a Flink cluster, returned by
    ``env.execute_async(name, runner="flink", flink_address=...)``.

    Its methods block (call them from a worker thread inside an event loop) and work from
    any thread. Savepoints go to the directory given, else to the job's default
    (``env.set_default_savepoint_directory``), else to the cluster's
    ``execution.checkpointing.savepoint-dir``.

    :param poll_s: how often :meth:`wait` and the savepoint calls ask the cluster
    """

    def __init__(
        self,
        rest: FlinkRestClient,
        job_id: str,
        job_name: str,
        *,
        savepoint_directory: str | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self._rest = rest
        self._job_id = _check_id(job_id, "job id")
        self._job_name = job_name
        self._savepoint_directory = savepoint_directory
        self._poll_s = poll_s
        self._cancel_requested = False

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def job_name(self) -> str:
        return self._job_name

    @property
    def address(self) -> str:
        return self._rest.address

    def get_job_id(self) -> str:
        return self._job_id

    def get_flink_job_status(self) -> str:
        """Flink's own name of the job's state (``INITIALIZING``, ``RECONCILING``, ...)."""
        return self._rest.job_state(self._job_id)

    def get_job_status(self) -> JobStatus:
        """The job's state as streamlet's :class:`JobStatus`: Flink's INITIALIZING shows as
        CREATED, RECONCILING as RESTARTING, SUSPENDED as FAILED (the job no longer runs
        here); :meth:`get_flink_job_status` gives Flink's own name."""
        state = self.get_flink_job_status()
        if state == "SUSPENDED":
            return JobStatus.FAILED
        return _NEAREST.get(state) or JobStatus(state)

    @property
    def status(self) -> JobStatus:
        return self.get_job_status()

    def wait_until_running(self, timeout_s: float = 120.0) -> None:
        """Wait until the job and all its tasks run (a savepoint needs running tasks: a
        RUNNING job may still be deploying them, or starting their Python workers).

        :raises FlinkJobError: if the job failed instead
        :raises TimeoutError: if that takes longer than ``timeout_s``
        """
        deadline = time.monotonic() + timeout_s
        path = f"/jobs/{self._job_id}"
        while True:
            job = self._rest.job(self._job_id)
            if FLINK_STATES[job["state"]]:
                self.wait()  # raises why it ended; a finished job ran and is done
                raise RuntimeError(
                    f"job {self._job_name!r} (Flink job id {self._job_id}) finished "
                    f"before all its tasks were seen running"
                )
            vertices = job.get("vertices")
            if not isinstance(vertices, list) or not all(isinstance(v, dict) for v in vertices):
                raise FlinkRestError(f"GET {path}: 'vertices' is not a list of objects")
            if job["state"] == "RUNNING" and all(v.get("status") == "RUNNING" for v in vertices):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self._job_name!r} (Flink job id {self._job_id}): its tasks are "
                    f"not all running after {timeout_s} s"
                )
            time.sleep(self._poll_s)

    def wait(self, timeout_s: float | None = None) -> Any:
        """Wait until the job ends; return its
        :class:`~streamlet.flink.result.FlinkJobResult` (``net_runtime_ms`` is Flink's
        job duration, from scheduling to the end, without the client's start-up).

        :raises FlinkJobError: if the job failed (Flink's root exception in the message)
        :raises JobCancelledError: if it was cancelled
        :raises TimeoutError: if it still runs after ``timeout_s``
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self._rest.job(self._job_id)
            state = job["state"]
            if FLINK_STATES[state]:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self._job_name!r} (Flink job id {self._job_id}) still {state} "
                    f"after {timeout_s} s"
                )
            time.sleep(self._poll_s)
        if state == "CANCELED":
            raise JobCancelledError(
                f"job {self._job_name!r} (Flink job id {self._job_id}) was cancelled"
            )
        if state in ("FAILED", "SUSPENDED"):
            root = self._rest.root_exception(self._job_id) or {}
            raise FlinkJobError(
                self._job_name,
                self._job_id,
                state,
                root.get("exception"),
                task_name=root.get("task"),
                stacktrace=root.get("stacktrace"),
            )
        duration = job.get("duration")
        if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
            raise FlinkRestError(f"GET /jobs/{self._job_id}: 'duration' is {duration!r:.100}")
        return FlinkJobResult(self._job_id, self._job_name, float(duration))

    get_job_execution_result = wait

    def cancel(self, timeout_s: float = 60.0) -> None:
        """Cancel the job and wait until it is CANCELED (or ended otherwise)."""
        self._cancel_requested = True
        self._rest.cancel(self._job_id)
        self._wait_terminal(timeout_s)

    def _wait_terminal(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self._rest.job_state(self._job_id)
            if FLINK_STATES[state]:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self._job_name!r} (Flink job id {self._job_id}) still {state} "
                    f"after {timeout_s} s"
                )
            time.sleep(self._poll_s)

    def _directory(self, directory: str | os.PathLike[str] | None) -> str | None:
        return os.fspath(directory) if directory is not None else self._savepoint_directory

    def trigger_savepoint(
        self, savepoint_directory: str | os.PathLike[str] | None = None, timeout_s: float = 300.0
    ) -> str:
        """Take a savepoint while the job runs; return its location (a ``file:`` URI for a
        local directory), the path to restore from.

        :raises CheckpointError: if Flink reports the savepoint failed
        """
        request = self._rest.trigger_savepoint(self._job_id, self._directory(savepoint_directory))
        return self._rest.savepoint_location(
            self._job_id, request, timeout_s=timeout_s, poll_s=self._poll_s
        )

    def stop_with_savepoint(
        self,
        advance_to_end_of_event_time: bool | str | os.PathLike[str] = False,
        savepoint_directory: str | os.PathLike[str] | None = None,
        timeout_s: float = 300.0,
    ) -> str:
        """Take a savepoint, then stop the job (it ends FINISHED); return the savepoint's
        location. The arguments are those of streamlet's JobClient (PyFlink's signature, or
        ``stop_with_savepoint(path)``); ``advance_to_end_of_event_time`` is Flink's drain.
        """
        directory, drain = savepoint_arguments(advance_to_end_of_event_time, savepoint_directory)
        request = self._rest.stop(self._job_id, self._directory(directory), drain=drain)
        location = self._rest.savepoint_location(
            self._job_id, request, timeout_s=timeout_s, poll_s=self._poll_s
        )
        self._wait_terminal(timeout_s)
        return location


def run_remote(
    env: Any,
    job_name: str,
    address: str,
    iterators: list[Any],
    *,
    detached: bool = False,
    savepoint_directory: str | None = None,
    drain: Callable[[Any], list[list[Any]]] | None = None,
) -> Any:
    """Submit the translated job (PyFlink's ``env``) to the cluster at ``address``; return
    its :class:`FlinkJobClient` (``detached``), or wait and return its ``FlinkJobResult``
    with what the ``iterators`` (``collectAsync`` of the collect sinks) collected, read by
    ``drain(pyflink_job_client)`` when given (which may also feed ``add_sink`` functions).

    :raises FlinkJobError: if the job failed, with Flink's root exception
    :raises FlinkRestError: if the submission or the REST API failed
    """
    rest = FlinkRestClient(address)
    try:
        submitted = env.execute_async(job_name)
        job_id = str(submitted.get_job_id())
    except Exception as exc:
        raise FlinkRestError(
            f"submitting job {job_name!r} to the Flink cluster at {address} failed: "
            f"{_headline(type(exc).__name__, str(exc))}"
        ) from exc
    client = FlinkJobClient(rest, job_id, job_name, savepoint_directory=savepoint_directory)
    if detached:
        return client
    collected: list[list[Any]] = []
    try:
        if drain is not None:
            collected = drain(submitted)
        else:
            for it in iterators:
                collected.append(list(it))
    except JobExecutionError:
        raise  # an add_sink() function failed (and cancelled the job): it is named
    except Exception:
        # The collect fetcher fails when the job does: report the job's root exception
        # (wait raises it); only a job that ended well makes this a collect error.
        client.wait()
        raise
    result = client.wait()
    result.collected = collected
    return result


def cluster_has_python_jar(rest: FlinkRestClient) -> bool:
    """Whether the JobManager's class path (``GET /jobmanager/environment``) holds
    flink-python, the jar with PyFlink's operators; ``False`` if it cannot tell."""
    try:
        answer = rest.request("GET", "/jobmanager/environment")
    except FlinkRestError:
        return False
    classpath = answer.get("classpath") if isinstance(answer, dict) else None
    if not isinstance(classpath, list):
        return False
    return any(
        isinstance(entry, str) and os.path.basename(entry).startswith("flink-python")
        for entry in classpath
    )


def python_jar_keys(address: str) -> dict[str, str]:
    """``pipeline.jars`` with the installed PyFlink's ``opt/flink-python-*.jar`` when the
    cluster's ``lib/`` lacks it, else nothing.

    A stock Flink distribution keeps flink-python in ``opt/``: its JobManager then cannot
    even deserialize a Python operator (``ClassNotFoundException:
    ...ExternalPythonKeyedProcessOperator``) unless the job ships the jar, as ``flink run
    -py`` does. Shipped, it is loaded per job by the user-code class loader; with it in
    ``lib/`` (checked first) nothing is uploaded.
    """
    if cluster_has_python_jar(FlinkRestClient(address, timeout_s=10)):
        return {}
    import pyflink

    opt = os.path.join(os.path.dirname(pyflink.__file__), "opt")
    jars = sorted(
        name
        for name in (os.listdir(opt) if os.path.isdir(opt) else [])
        if name.startswith("flink-python") and name.endswith(".jar")
    )
    if not jars:
        raise FileNotFoundError(
            f"the cluster at {address} has no flink-python jar in lib/ and this PyFlink has "
            f"none in {opt} to ship: copy flink-python-*.jar from a Flink distribution's opt/ "
            f"into the cluster's lib/"
        )
    return {"pipeline.jars": "file://" + os.path.join(opt, jars[-1])}
