"""Regenerate docs/dashboard.png: the demo's dashboard, mid-run, in headless Chromium.

    .venv/bin/python docs/screenshot.py

Runs the demo (its injected failure included) with its dashboard on a free port, and
takes the screenshot some seconds in, after the restart, while records flow.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import anyio
from playwright.async_api import async_playwright

from streamlet.cli import demo

OUT = Path(__file__).resolve().parent / "dashboard.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


async def main() -> None:
    urls: list[str] = []
    out = io.StringIO()

    class Tee(io.StringIO):
        def write(self, text: str) -> int:
            if "dashboard at " in text:
                urls.append(text.split("dashboard at ")[1].strip())
            return out.write(text)

    with tempfile.TemporaryDirectory() as tmp:
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: demo.run_demo(
                    lines=30_000,
                    rate=2_500,
                    workdir=Path(tmp) / "demo",
                    out=Tee(),
                    web_ui="127.0.0.1:0",
                )
            )
            while not urls:
                await anyio.sleep(0.05)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(urls[0])
                await anyio.sleep(8)
                await page.screenshot(path=str(OUT))
                await browser.close()
            group.cancel_scope.cancel()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    anyio.run(main)
