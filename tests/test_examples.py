"""Every example in examples/ runs, with small inputs, and does what its docstring says.

The examples are scripts, not a package: they are loaded from their files. Servers listen on
127.0.0.1 with ports the system picks.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest

from streamlet import cli

pytestmark = pytest.mark.asyncio

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and copies look classes up by module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    if request.param == "web_app":  # needs the `web` extra (make installs it)
        for name in ("starlette", "uvicorn", "httpx"):
            pytest.importorskip(name)
    module = load(request.param)
    yield module
    sys.modules.pop(module.__name__, None)


def test_every_example_is_tested() -> None:
    tested = {"socket_word_count", "web_app", "exactly_once_files", "custom_source_and_sink"}
    assert {path.stem for path in EXAMPLES.glob("*.py")} == tested


# --- socket_word_count ---


@pytest.mark.parametrize("example", ["socket_word_count"], indirect=True)
async def test_socket_word_count(
    example: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["to be or not to be", "that is the question", "whether tis nobler", "to be"]

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:  # like typing into `nc -lk 9999`, then quitting it
            for line in lines:
                await stream.send(f"{line}\n".encode())
                await anyio.sleep(0.01)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        result = await example.run("127.0.0.1", port, str(tmp_path / "checkpoints"))
        tg.cancel_scope.cancel()
    assert result.restart_count == 0
    # Print sink lines look like "3> ('BE', 2)": the subtask, then the running count.
    latest: dict[str, int] = {}
    subtasks = set()
    for line in capsys.readouterr().out.splitlines():
        subtask, _, record = line.partition("> ")
        word, count = ast.literal_eval(record)
        subtasks.add(int(subtask))
        latest[word] = max(latest.get(word, 0), count)
    assert latest == Counter(w.upper() for line in lines for w in line.split())
    assert subtasks <= {1, 2, 3, 4} and len(subtasks) > 1
    assert (tmp_path / "checkpoints" / example.JOB_NAME / "wal").is_dir()


@pytest.mark.parametrize("example", ["socket_word_count"], indirect=True)
def test_socket_word_count_is_a_streamlet_job_definition(example: ModuleType) -> None:
    from streamlet import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    example.build(env)  # what `streamlet run examples/socket_word_count.py` calls
    assert env.get_parallelism() == 4
    assert env.get_checkpoint_interval() == 500
    assert example.split_words("to Be") == [("TO", 1), ("BE", 1)]


# --- web_app ---


@pytest.mark.parametrize("example", ["web_app"], indirect=True)
@pytest.mark.parametrize("durable", [True, False], ids=["write-ahead-log", "at-most-once"])
async def test_web_app_against_a_real_server(
    example: ModuleType, tmp_path: Path, durable: bool
) -> None:
    import httpx

    app = example.create_app(str(tmp_path / "checkpoints") if durable else None)
    users = ["ada", "bob", "cy", "dee"]
    events: list[dict[str, Any]] = [{"user": users[i % 4], "amount": i % 7 + 1} for i in range(200)]
    expected: Counter[str] = Counter()
    for event in events:
        expected[event["user"]] += event["amount"]

    async with example.serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert url.startswith("http://127.0.0.1:")

        async def post(batch: list[dict[str, Any]]) -> None:
            body: Any = batch if len(batch) > 1 else batch[0]
            response = await http.post("/events", json=body)
            assert response.status_code == 202
            assert response.json() == {"accepted": len(batch)}

        async with anyio.create_task_group() as tg:  # several clients at once
            for start in range(0, len(events), 10):
                tg.start_soon(post, events[start : start + 10])
            tg.start_soon(post, [events[0]])
        expected[events[0]["user"]] += events[0]["amount"]

        with anyio.fail_after(10):  # the view is eventually consistent
            while (totals := (await http.get("/totals")).json()) != expected:
                await anyio.sleep(0.02)
        assert totals == expected

        job = (await http.get("/job")).json()
        assert job["name"] == example.JOB_NAME and job["status"] == "RUNNING"
        # The dashboard and Flink's REST API, mounted beside the app's routes.
        (listed,) = (await http.get("/flink/jobs")).json()["jobs"]
        assert listed["status"] == "RUNNING"
        assert (await http.get("/flink/")).status_code == 200
        bad = await http.post("/events", json={"user": "ada", "amount": "12"})
        assert bad.status_code == 422 and bad.json() == {"error": "amount must be a number"}
        assert (await http.post("/events", content=b"{oops")).status_code == 422

    # Shutting the server down ended the source; the job drained and finished.
    assert app.state.job.status.value == "FINISHED"
    assert (tmp_path / "checkpoints").exists() is durable


# --- exactly_once_files ---


@pytest.mark.parametrize("example", ["exactly_once_files"], indirect=True)
async def test_exactly_once_files(example: ModuleType, tmp_path: Path) -> None:
    report = await example.run(tmp_path / "work", events=8000, parallelism=2)
    assert report.problems == []
    assert report.restarts == 1  # the injected crash happened, and was recovered from
    assert report.lines == 8000
    assert report.checkpoints >= 1


@pytest.mark.parametrize("example", ["exactly_once_files"], indirect=True)
def test_exactly_once_check_finds_duplicates_and_gaps(example: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Account acct-01 got deposits 1 and 17 (events=17): lines numbered 1, 2.
    (out / "part-0-a-000000.txt").write_text("acct-01,1,1\nacct-01,1,1\n")
    problems = example.check_output(out, events=17)
    assert "acct-01: 1 line(s) twice, 1 missing" in problems
    assert any(p.startswith("acct-02: 0 line(s) twice, 1 missing") for p in problems)


# --- custom_source_and_sink ---


@pytest.mark.parametrize("example", ["custom_source_and_sink"], indirect=True)
async def test_custom_source_and_two_phase_commit_sink(example: ModuleType, tmp_path: Path) -> None:
    report = await example.run(tmp_path, orders=2000, parallelism=2)
    assert report.exactly_once, report
    assert report.restarts == 1
    assert report.staged == 0  # the crash came after a checkpoint: every txn was accounted


@pytest.mark.parametrize("example", ["custom_source_and_sink"], indirect=True)
async def test_order_log_reader_resumes_at_its_position(example: ModuleType) -> None:
    source = example.OrderLog(partitions=2, per_partition=30)
    assert source.create_splits(4) == [{"partition": 0}, {"partition": 1}]
    reader = source.create_reader({"partition": 1}, None)
    first = await reader.read_batch(10)
    assert [o["id"] for o in first] == [f"1-{i}" for i in range(10)]
    resumed = source.create_reader({"partition": 1}, reader.position())
    assert (await resumed.read_batch(100))[0]["id"] == "1-10"
    assert await resumed.read_batch(100) is None  # bounded: 30 orders


@pytest.mark.parametrize("example", ["custom_source_and_sink"], indirect=True)
async def test_sqlite_commit_is_idempotent_and_abort_discards(
    example: ModuleType, tmp_path: Path
) -> None:
    import sqlite3
    from types import SimpleNamespace

    db_path = tmp_path / "db.sqlite3"
    example.create_database(db_path)
    sink = example.SqliteOrdersSink(db_path)
    await sink.open(SimpleNamespace(subtask_index=0))
    try:
        kept, dropped = sink.begin_transaction(), sink.begin_transaction()
        await sink.write(kept, [example.order_at(0, 0), example.order_at(0, 1)])
        await sink.write(dropped, [example.order_at(0, 2)])
        await sink.pre_commit(kept)
        await sink.commit(kept)
        await sink.commit(kept)  # a restore repeats commits
        await sink.abort(dropped)
    finally:
        await sink.close()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("SELECT id FROM orders ORDER BY id").fetchall() == [("0-0",), ("0-1",)]
        assert db.execute("SELECT COUNT(*) FROM staging").fetchone() == (0,)
    finally:
        db.close()


# --- run as scripts ---


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("exactly_once_files", ["--events", "3000", "--parallelism", "2"], "exactly once"),
        ("custom_source_and_sink", ["--orders", "800"], "exactly once"),
    ],
)
def test_examples_run_as_scripts(tmp_path: Path, name: str, args: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args, "--workdir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(expected)


def test_examples_run_under_streamlet_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A program (no build()): streamlet runs it as __main__ with the arguments after --.
    script = EXAMPLES / "custom_source_and_sink.py"
    code = cli.main(["run", str(script), "--", "--orders", "400", "--workdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[-1] == "exactly once"
