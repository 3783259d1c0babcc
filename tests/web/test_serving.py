"""How users get the web UI: ``env.execute(..., web_ui=...)``, ``streamlet run --web-ui``,
the demo's dashboard, and mounting ``create_app`` in an application of one's own."""

from __future__ import annotations

import importlib
import io
import textwrap
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from streamlet import StreamExecutionEnvironment, cli
from streamlet.cli.demo import run_demo
from streamlet.web import create_app, parse_address, serve_web_ui
from tests.web.web_job import running_job

pytestmark = pytest.mark.asyncio


def test_parse_address() -> None:
    assert parse_address("8081") == ("127.0.0.1", 8081)
    assert parse_address(0) == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError, match=r"^web UI address must be \[HOST:\]PORT"):
        parse_address("localhost")
    with pytest.raises(ValueError, match=r"^web UI port must be in 0\.\.65535, got 70000$"):
        parse_address("70000")


async def test_execute_with_web_ui_serves_while_the_job_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[int] = []
    asked: list[bool] = []

    async def probe(value: int) -> int:
        # Ask the job's own REST API from inside the job, once (calls run concurrently).
        if not asked:
            asked.append(True)
            url = capsys.readouterr().err.split("streamlet web UI: ")[1].strip()
            async with httpx.AsyncClient() as http:
                jobs = (await http.get(url + "jobs")).json()["jobs"]
                seen.append(len(jobs))
                assert jobs[0]["status"] == "RUNNING"
        return value

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.from_collection([1, 2, 3]).map(probe).add_sink(lambda _: None)
    result = await env.execute("served", web_ui="127.0.0.1:0")
    assert result.records_in > 0 and seen == [1]


async def test_execute_refuses_a_bad_web_ui_address_before_running() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).add_sink(lambda _: None)
    with pytest.raises(ValueError, match=r"^web UI port must be in 0\.\.65535, got -1$"):
        await env.execute("bad", web_ui="-1")
    with pytest.raises(ValueError, match=r"^web_ui_token needs web_ui"):
        await env.execute("bad", web_ui_token="t")


async def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    async with anyio.create_task_group() as group:
        url = await group.start(serve_web_ui, create_app(), "127.0.0.1:0")
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(
            RuntimeError, match=rf"^the web UI cannot listen on 127\.0\.0\.1:{port}"
        ):
            await group.start(serve_web_ui, create_app(), f"127.0.0.1:{port}")
        group.cancel_scope.cancel()


async def test_create_app_mounts_beside_the_applications_routes(tmp_path: Path) -> None:
    async with running_job(tmp_path, fail=False) as (job, _source):
        app = Starlette(
            routes=[
                Route("/health", lambda request: PlainTextResponse("fine")),
                Mount("/flink", app=create_app(job)),
            ]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/health")).text == "fine"
            jobs = (await http.get("/flink/jobs")).json()["jobs"]
            assert jobs == [{"id": job.job_id, "status": "RUNNING"}]
            page = await http.get("/flink/")
            assert page.status_code == 200 and "static/dashboard.js" in page.text
            script = await http.get("/flink/static/dashboard.js")
            assert script.status_code == 200 and "refresh" in script.text


def test_streamlet_run_web_ui_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            def build(env):
                env.from_collection([1, 2, 3]).map(lambda x: x * 2).print()
            """
        )
    )
    monkeypatch.setattr(importlib.import_module("streamlet.cli.main"), "_WEB_UI_LINGER_S", 0.0)
    assert cli.main(["run", str(script), "--web-ui", "127.0.0.1:0"]) == 0
    out, err = capsys.readouterr()
    assert "streamlet web UI: http://127.0.0.1:" in err
    assert sorted(out.split()) == ["2", "4", "6"]
    assert cli.main(["run", str(script), "--web-ui", "nope"]) == 2
    assert "--web-ui: web UI address must be [HOST:]PORT" in capsys.readouterr().err
    assert cli.main(["run", str(script), "--keep-ui"]) == 2
    assert "--keep-ui and --web-ui-token-env need --web-ui" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    code = cli.main(["run", str(script), "--web-ui", "0", "--web-ui-token-env", "NO_SUCH_TOKEN"])
    assert code == 2
    assert "NO_SUCH_TOKEN is not set or empty" in capsys.readouterr().err


async def test_demo_prints_its_dashboard_url(tmp_path: Path) -> None:
    out = io.StringIO()
    ok = await run_demo(
        lines=600, rate=3000, workdir=tmp_path / "demo", out=out, web_ui="127.0.0.1:0"
    )
    assert ok
    assert "streamlet demo: dashboard at http://127.0.0.1:" in out.getvalue()
