"""The Flink REST client against a fake cluster (no JVM, no PyFlink): the requests it sends,
savepoint polling, failures with Flink's root exception, and answers it refuses."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streamlet.checkpoints.errors import CheckpointError
from streamlet.errors import JobCancelledError, JobExecutionError
from streamlet.flink.cluster import (
    FlinkJobClient,
    FlinkJobError,
    FlinkRestClient,
    FlinkRestError,
    cluster_has_python_jar,
    parse_address,
)
from streamlet.job.result import JobStatus

JOB = "a" * 32
TRIGGER = "b" * 32


class _Fake:
    """Answers by ``(method, path)``: a list is served in turn (its last item repeats)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.address = ""

    def route(self, method: str, path: str, *answers: Any, status: int = 200) -> None:
        self.routes[(method, path)] = [(status, a) for a in answers]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        answers = self.routes.get((method, path))
        if not answers:
            return 404, {"errors": [f"Not found: {path}"]}
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def fake():
    fake = _Fake()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.answer(self.command, self.path, body)
            raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.address = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _client(fake: _Fake) -> FlinkJobClient:
    return FlinkJobClient(FlinkRestClient(fake.address, timeout_s=5), JOB, "job", poll_s=0.01)


def test_status_cancel_and_wait(fake) -> None:
    fake.route(
        "GET", f"/jobs/{JOB}", {"state": "RUNNING"}, {"state": "CANCELLING"}, {"state": "CANCELED"}
    )
    fake.route("PATCH", f"/jobs/{JOB}?mode=cancel", {}, status=202)
    client = _client(fake)
    assert client.get_job_status() is JobStatus.RUNNING
    client.cancel()
    assert ("PATCH", f"/jobs/{JOB}?mode=cancel", None) in fake.requests
    with pytest.raises(JobCancelledError, match="was cancelled"):
        client.wait()


def test_flink_only_states_map_to_the_nearest_streamlet_state(fake) -> None:
    fake.route("GET", f"/jobs/{JOB}", {"state": "INITIALIZING"}, {"state": "RECONCILING"})
    client = _client(fake)
    assert client.get_job_status() is JobStatus.CREATED
    assert client.get_flink_job_status() == "RECONCILING"


def test_savepoint_is_polled_until_completed(fake) -> None:
    fake.route("POST", f"/jobs/{JOB}/savepoints", {"request-id": TRIGGER}, status=202)
    done = {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-1"}}
    fake.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", {"status": {"id": "IN_PROGRESS"}}, done)
    assert _client(fake).trigger_savepoint("/sp") == "file:/sp/savepoint-1"
    body = {"cancel-job": False, "target-directory": "/sp"}
    assert ("POST", f"/jobs/{JOB}/savepoints", body) in fake.requests


def test_stop_with_savepoint_drains_and_waits_for_the_end(fake) -> None:
    fake.route("POST", f"/jobs/{JOB}/stop", {"request-id": TRIGGER}, status=202)
    done = {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-2"}}
    fake.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", done)
    fake.route("GET", f"/jobs/{JOB}", {"state": "RUNNING"}, {"state": "FINISHED"})
    assert _client(fake).stop_with_savepoint(True, "/sp") == "file:/sp/savepoint-2"
    assert ("POST", f"/jobs/{JOB}/stop", {"drain": True, "targetDirectory": "/sp"}) in (
        fake.requests
    )


def test_failed_savepoint_raises_flinks_cause(fake) -> None:
    fake.route("POST", f"/jobs/{JOB}/savepoints", {"request-id": TRIGGER}, status=202)
    failed = {
        "status": {"id": "COMPLETED"},
        "operation": {"failure-cause": {"stack-trace": "CheckpointException: tasks not running"}},
    }
    fake.route("GET", f"/jobs/{JOB}/savepoints/{TRIGGER}", failed)
    with pytest.raises(CheckpointError, match="tasks not running"):
        _client(fake).trigger_savepoint("/sp")


def test_failed_job_raises_the_root_exception(fake) -> None:
    fake.route("GET", f"/jobs/{JOB}", {"state": "FAILED"})
    trace = (
        "org.apache.flink.runtime.JobException: Recovery is suppressed\n"
        "\tat Foo.bar(Foo.java:1)\n"
        "Caused by: java.lang.RuntimeException: Error received from SDK harness\n"
        "ZeroDivisionError: injected\n"
    )
    entry = {"exceptionName": "JobException", "stacktrace": trace, "taskName": "Map (1/1)"}
    fake.route("GET", f"/jobs/{JOB}/exceptions", {"exceptionHistory": {"entries": [entry]}})
    with pytest.raises(FlinkJobError) as caught:
        _client(fake).wait()
    error = caught.value
    assert isinstance(error, JobExecutionError) and isinstance(error, RuntimeError)
    text = str(error)
    assert "job 'job' failed" in text and JOB in text and "'Map (1/1)'" in text
    assert "ZeroDivisionError: injected" in text and "Recovery is suppressed" in text
    assert error.stacktrace == trace


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"state": "BURNING"}, "'state' is not a Flink job state"),
        ([1, 2], "expected a JSON object"),
        (b"<html>oops</html>", "not JSON"),
    ],
)
def test_malformed_answers_are_refused(fake, answer, message) -> None:
    fake.route("GET", f"/jobs/{JOB}", answer)
    with pytest.raises(FlinkRestError, match=message):
        _client(fake).get_job_status()


def test_bad_trigger_id_and_duration_are_refused(fake) -> None:
    fake.route("POST", f"/jobs/{JOB}/savepoints", {"request-id": "../../etc"}, status=202)
    with pytest.raises(FlinkRestError, match="no valid 'request-id'"):
        _client(fake).trigger_savepoint("/sp")
    fake.route("GET", f"/jobs/{JOB}", {"state": "FINISHED", "duration": "soon"})
    with pytest.raises(FlinkRestError, match="'duration'"):
        _client(fake).wait()


def test_http_errors_quote_flinks_errors(fake) -> None:
    with pytest.raises(FlinkRestError, match="HTTP 404: Not found"):
        _client(fake).get_job_status()


def test_unreachable_cluster_and_bad_ids() -> None:
    with pytest.raises(FlinkRestError, match="did not answer"):
        FlinkRestClient("127.0.0.1:1", timeout_s=2).job_state(JOB)
    with pytest.raises(FlinkRestError, match="32 hexadecimal digits"):
        FlinkRestClient("127.0.0.1:1").job_state("../jobs")
    with pytest.raises(ValueError, match="host:port"):
        parse_address("localhost")
    assert parse_address("[::1]:8081") == ("::1", 8081)


def test_the_python_jar_is_found_on_the_cluster_class_path(fake) -> None:
    rest = FlinkRestClient(fake.address, timeout_s=5)
    assert not cluster_has_python_jar(rest)  # 404: cannot tell, so the runner ships it
    fake.route("GET", "/jobmanager/environment", {"classpath": ["/opt/flink/lib/flink-dist.jar"]})
    assert not cluster_has_python_jar(rest)
    fake.route("GET", "/jobmanager/environment", {"classpath": ["/f/lib/flink-python-2.3.0.jar"]})
    assert cluster_has_python_jar(rest)
    fake.route("GET", "/jobmanager/environment", {"classpath": "flink-python.jar"})
    assert not cluster_has_python_jar(rest)
