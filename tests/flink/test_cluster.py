"""Jobs on a Flink standalone cluster (a private one, see ``standalone.py``) through
``flink_address``: results equal to streamlet's runtime, several Python jobs on one
TaskManager, savepoint + restore, stop-with-savepoint, and task failures raised
with Flink's root exception.

The cluster's TaskManager prints the jobs' ``print()`` sinks to its ``.out`` file, which
the tests read to see what a job computed.
"""

from __future__ import annotations

import ast
import re
import time
from collections import Counter
from typing import Any

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.errors import JobExecutionError
from streamlet.flink.cluster import FlinkJobClient, FlinkJobError
from streamlet.job.result import JobStatus
from tests.flink.runners import add_flink_keys
from tests.flink.standalone import StandaloneCluster

pytestmark = pytest.mark.slow

LINES = ["to be or not to be", "that is the question", "to be"]
N = 6000
DELAY_S = 0.005


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = StandaloneCluster(tmp_path_factory.mktemp("flink") / "home", slots=2)
    cluster.start()
    pids = list(cluster.pids)
    assert len(pids) == 2, f"expected a JobManager and a TaskManager, got pids {pids}"
    try:
        yield cluster
    finally:
        cluster.stop()
        from tests.flink.standalone import _alive

        assert not [pid for pid in pids if _alive(pid)], "a cluster daemon outlived stop()"


def _word_count(env):
    return (
        env.from_collection(LINES)
        .flat_map(lambda s: [(w, 1) for w in s.split()])
        .key_by(lambda t: t[0])
        .sum(1)
    )


def test_two_python_jobs_on_one_task_manager_match_the_local_runtime(cluster) -> None:
    # The cluster is a stock distribution (flink-python in opt/, not lib/): its JobManager
    # cannot load a Python operator unless the job ships the jar, which the runner does.
    # Two jobs: the second one on the TaskManager gets the jar by its own class loader.
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    with _word_count(env).execute_and_collect() as records:
        local = Counter(records)
    for _ in range(2):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        flink = _word_count(env).execute_and_collect(runner="flink", flink_address=cluster.address)
        assert Counter(flink) == local
    assert ("to", 3) in local


def _sums_job(delay_s: float, tag: str) -> StreamExecutionEnvironment:
    """Running sums per key of 1..N (keyed state under the uid ``sums``), printed tagged;
    ``delay_s`` per record keeps the job running long enough for a savepoint."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)

    def slow(x, delay_s=delay_s):
        if delay_s:
            time.sleep(delay_s)
        return (x % 7, x)

    (
        env.from_sequence(1, N)
        .uid("numbers")
        .map(slow)
        .uid("slow")
        .key_by(lambda t: t[0])
        .sum(1)
        .uid("sums")
        .map(lambda r, tag=tag: (tag, r))
        .print()
    )
    return env


def _printed(cluster: StandaloneCluster, tag: str) -> list[Any]:
    """The records the job tagged ``tag`` printed (``"1> (tag, record)"``, or without the
    subtask prefix at parallelism 1)."""
    records = []
    for line in cluster.log_text("*taskexecutor*.out").splitlines():
        text = re.sub(r"^\d+> ", "", line)  # a print sink of parallelism 1 has no prefix
        if text.startswith(f"('{tag}',"):
            records.append(ast.literal_eval(text)[1])
    return records


@pytest.fixture
def small_python_bundles(monkeypatch):
    """Python bundles of 10 records: a barrier waits until the Python worker has processed
    the records sent to it, by default up to 100,000 (all of a slow test job's input, so
    the savepoint would come when the job has ended)."""
    add_flink_keys(
        monkeypatch,
        {"python.fn-execution.bundle.size": "10", "python.fn-execution.bundle.time": "100"},
    )


@pytest.mark.usefixtures("small_python_bundles")
def test_savepoint_restore_and_stop_with_savepoint(cluster, tmp_path) -> None:
    directory = (tmp_path / "savepoints").as_uri()
    first = _sums_job(DELAY_S, "first").execute_async(
        "sums", runner="flink", flink_address=cluster.address
    )
    assert isinstance(first, FlinkJobClient)
    first.wait_until_running()
    # Some records in, so the savepoint holds sums and a source position past the start.
    _wait_for(lambda: len(_printed(cluster, "first")) >= 50)
    savepoint = first.trigger_savepoint(directory)
    assert savepoint.startswith("file:") and "savepoint-" in savepoint
    # Not cancel(): cancelling a Python task mid-bundle can crash PyFlink 2.3's TaskManager
    # ("Reference count must not be negative" in the task's exception handler), and the
    # next job then never gets a slot. cancel() is tested against a fake REST server.
    first.stop_with_savepoint(False, directory)
    assert first.get_job_status() is JobStatus.FINISHED

    second = _sums_job(DELAY_S, "second").execute_async(
        "sums", runner="flink", flink_address=cluster.address, restore=savepoint
    )
    second.wait_until_running()
    _wait_for(lambda: len(_printed(cluster, "second")) >= 50)
    stopped = second.stop_with_savepoint(False, directory)
    assert second.get_job_status() is JobStatus.FINISHED
    assert stopped != savepoint

    result = _sums_job(0, "third").execute(
        "sums", runner="flink", flink_address=cluster.address, restore=stopped
    )
    assert result.net_runtime_ms > 0
    runs = {tag: _printed(cluster, tag) for tag in ("first", "second", "third")}
    expected = {k: sum(v for v in range(1, N + 1) if v % 7 == k) for k in range(7)}
    assert {k: s for k, s in runs["third"]} == expected
    # Each restored job continued from its savepoint's source position and sums: the first
    # savepoint came after at least 50 records, which neither restored job read again,
    # and the stop-with-savepoint is exact (the second job printed nothing after it).
    assert len(runs["second"]) >= 50
    assert len(runs["second"]) + len(runs["third"]) <= N - 50


def test_task_failure_is_raised_with_flinks_root_exception(cluster) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()

    def boom(x):
        raise ZeroDivisionError(f"injected at {x}")

    env.from_collection([1, 2, 3]).map(boom).print()
    with pytest.raises(FlinkJobError) as caught:
        env.execute("failing job", runner="flink", flink_address=cluster.address)
    error = caught.value
    assert isinstance(error, JobExecutionError) and isinstance(error, RuntimeError)
    assert error.state == "FAILED" and error.job_name == "failing job"
    assert "'failing job'" in str(error) and error.flink_job_id in str(error)
    assert "ZeroDivisionError: injected at" in str(error)


def _wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)


SCRIPT = """
from streamlet import MapFunction


class Tag(MapFunction):
    # A class of the script: the cluster's Python workers cannot import the script, so
    # the CLI has it pickled by value.
    def map(self, value):
        return ("cli", value)


def build(env):
    env.from_sequence(1, 10).key_by(lambda x: x % 2).sum(0).map(Tag()).print()
"""


def test_cli_runs_a_job_script_with_its_own_classes_on_the_cluster(
    cluster, tmp_path, monkeypatch
) -> None:
    import io
    import textwrap

    from streamlet.cli.main import main

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", str(script), "--flink-address", cluster.address, "-p", "1"]) == 0
    assert "finished on Flink" in err.getvalue()
    odd, even = [1, 4, 9, 16, 25], [2, 6, 12, 20, 30]  # running sums of 1,3,.. and 2,4,..
    assert sorted(_printed(cluster, "cli")) == sorted(odd + even)
