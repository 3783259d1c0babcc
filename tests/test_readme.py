"""Every code block of README.md runs, so the README cannot drift from the code.

Conventions (the README's last paragraph states them for readers):

- A ```python block is a program: it runs in a fresh namespace, in a temporary working
  directory. Top-level ``await`` is allowed (the block then runs under ``anyio.run``).
- A ```python block whose first line is ``# test_<name>.py`` is a pytest module: it is saved
  under that name and run with pytest in a subprocess, which must pass.
- A ```python block whose first line is ``# <name>.py`` is a file (a job script): it is
  saved under that name, in document order, for the shell blocks after it.
- A ```sh block preceded by ``<!-- run -->`` runs too: every line is a ``streamlet``
  command (``#`` comments allowed), run in-process in the same directory; each must exit 0.
  Other shell blocks (``make demo``, ``nc -lk``) are not run here; the demo and the
  command line have tests of their own.
- ``<!-- not-run: reason -->`` before a ```python block skips it, with the reason. Keep
  these rare: at the time of writing there are none.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from streamlet import cli

README = Path(__file__).resolve().parent.parent / "README.md"

_BLOCK = re.compile(
    r"(?:<!--\s*(?P<marker>[^>]*?)\s*-->\s*\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```\s*$",
    re.M | re.S,
)
_FILE_HEADER = re.compile(r"^# (?P<name>[\w.-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    body: str
    marker: str | None

    @property
    def file_name(self) -> str | None:
        match = _FILE_HEADER.match(self.body.splitlines()[0]) if self.body else None
        return match.group("name") if match else None

    @property
    def is_pytest_module(self) -> bool:
        return (self.file_name or "").startswith("test_")

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def _blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start("body")), m["lang"], m["body"], m["marker"])
        for m in _BLOCK.finditer(text)
    ]


BLOCKS = _blocks()
PROGRAMS = [b for b in BLOCKS if b.lang == "python" and b.file_name is None]
PYTEST_MODULES = [b for b in BLOCKS if b.lang == "python" and b.is_pytest_module]


def test_the_readme_has_its_blocks() -> None:
    langs = {b.lang for b in BLOCKS}
    assert langs <= {"python", "sh"}, f"unknown block languages: {langs}"
    assert len(PROGRAMS) >= 3 and PYTEST_MODULES
    assert any(b.marker == "run" for b in BLOCKS)
    for block in BLOCKS:
        if block.lang == "python":
            ast.parse(block.body, filename=str(block))  # even the skipped ones parse


def test_the_first_example_is_about_15_lines() -> None:
    first = PROGRAMS[0]
    assert "from_collection" in first.body
    assert len(first.body.strip().splitlines()) <= 20


def _skip_marked(block: Block) -> None:
    if block.marker and block.marker.startswith("not-run"):
        pytest.skip(block.marker.partition(":")[2].strip() or "marked not-run")


@pytest.mark.parametrize("block", PROGRAMS, ids=str)
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_marked(block)
    monkeypatch.chdir(tmp_path)
    code = compile(block.body, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace = {"__name__": "__readme__"}
    result = eval(code, namespace)  # a coroutine if the block awaits at top level
    if result is not None:

        async def run() -> None:
            await result

        anyio.run(run)


@pytest.mark.parametrize("block", PYTEST_MODULES, ids=str)
def test_pytest_block_passes(block: Block, tmp_path: Path) -> None:
    _skip_marked(block)
    assert block.file_name is not None
    (tmp_path / block.file_name).write_text(block.body, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.file_name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_files_and_run_blocks_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = 0
    for block in BLOCKS:
        if block.lang == "python" and block.file_name and not block.is_pytest_module:
            (tmp_path / block.file_name).write_text(block.body, encoding="utf-8")
        elif block.lang == "sh" and block.marker == "run":
            for line in block.body.splitlines():
                argv = shlex.split(line, comments=True)
                if not argv:
                    continue
                assert argv[0] == "streamlet", f"{block}: only streamlet commands run: {line}"
                code = cli.main(argv[1:])
                out, err = capsys.readouterr()
                assert code == 0, f"{block}: {line}\n{textwrap.indent(out + err, '  ')}"
                ran += 1
    assert ran >= 3
