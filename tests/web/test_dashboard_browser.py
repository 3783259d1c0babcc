"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright's
Python package; no browser download): the page loads without console errors, draws the
job graph from the plan, shows live throughput, lists a completed checkpoint, and its
savepoint button writes a savepoint. A screenshot goes to ``tests/artifacts/``.

Skipped, saying why, only where no Chromium is installed; CI installs it (``.ci/run``)
and sets ``STREAMLET_REQUIRE_BROWSER``, so there a missing browser fails instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet.web import create_app, serve_web_ui
from tests.web.web_job import running_job

pytestmark = pytest.mark.asyncio

CHROMIUM = os.environ.get("STREAMLET_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    if os.environ.get("STREAMLET_REQUIRE_BROWSER"):  # CI (.ci/run) installs Chromium
        raise RuntimeError(
            f"STREAMLET_REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}"
        )
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) "
        "or set STREAMLET_CHROMIUM",
        allow_module_level=True,
    )


async def test_dashboard_shows_the_job_live_and_takes_a_savepoint(tmp_path: Path) -> None:
    problems: list[str] = []
    async with running_job(tmp_path) as (job, source), anyio.create_task_group() as group:
        app = create_app(job, refresh_interval_ms=200)
        url = await group.start(serve_web_ui, app, "127.0.0.1:0")
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1100})

                def on_console(msg: Any) -> None:
                    if msg.type in ("error", "warning"):
                        problems.append(f"console {msg.type}: {msg.text}")

                page.on("console", on_console)
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                await page.goto(url)

                # The job graph: one box per chain, its operators, the hash edge.
                await page.wait_for_selector("#job-graph g.vertex")
                names = await page.eval_on_selector_all(
                    "#job-graph g.vertex", "els => els.map(e => e.dataset.name)"
                )
                assert names == ["Numbers -> Timestamps", "Count -> Collect"]
                operators = await page.eval_on_selector_all(
                    "#job-graph text.operator", "els => els.map(e => e.textContent)"
                )
                assert operators == ["▸ Numbers", "▸ Timestamps", "▸ Count", "▸ Collect"]
                edges = await page.eval_on_selector_all(
                    "#job-graph g.edge text", "els => els.map(e => e.textContent)"
                )
                assert edges == ["HASH"]
                assert await page.text_content("#job-state") == "RUNNING"
                assert await page.text_content("#job-restarts") == "1"
                # The restart's exception is listed.
                await page.wait_for_selector("#exceptions details.exception")
                assert "InjectedFault" in await page.text_content("#exceptions")

                # A completed checkpoint in the history table.
                await page.wait_for_selector("#checkpoint-table tr[data-status=COMPLETED]")
                await page.wait_for_selector("#checkpoint-chart rect")

                # Throughput: the records counted change once the source goes on.
                cell = "#vertex-table tbody tr:first-child td.records-out"
                before = await page.text_content(cell)
                source.gate.set()
                await page.wait_for_function(
                    "([sel, before]) => document.querySelector(sel).textContent !== before",
                    arg=[cell, before],
                )

                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            finally:
                await browser.close()
        group.cancel_scope.cancel()
    assert problems == []


async def test_savepoint_button_writes_a_savepoint(tmp_path: Path) -> None:
    problems: list[str] = []
    async with (
        running_job(tmp_path, fail=False) as (job, _source),
        anyio.create_task_group() as group,
    ):
        url = await group.start(
            serve_web_ui, create_app(job, refresh_interval_ms=200), "127.0.0.1:0"
        )
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()

                def on_console(msg: Any) -> None:
                    if msg.type == "error":
                        problems.append(msg.text)

                page.on("console", on_console)
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                await page.goto(url)
                await page.wait_for_selector("#job-graph g.vertex")
                await page.click("#savepoint-button")
                await page.wait_for_function(
                    "document.querySelector('#status-message').textContent"
                    ".startsWith('savepoint written')"
                )
                text = await page.text_content("#status-message")
                location = Path(text.removeprefix("savepoint written: "))
                assert location.parent == tmp_path / "savepoints"
                assert (location / "_metadata").is_file()
                # The savepoint shows in the history as one.
                await page.wait_for_function(
                    "[...document.querySelectorAll('#checkpoint-table td')]"
                    ".some(td => td.textContent === 'savepoint')"
                )
            finally:
                await browser.close()
        group.cancel_scope.cancel()
    assert problems == []
