"""The package installs without extras into a fresh virtualenv, imports, and runs a job.

A fresh venv without system site-packages, so a dependency that is used but not declared
(sniffio once was) makes the import fail here. The source is the working tree (without the
venv, caches and build output) copied to a temporary directory, so the build leaves nothing
in the checkout. pip resolves the declared dependencies from its configured index (CI has
one); ~10 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The one top-level import name the distribution installs.
IMPORT_NAME = "streamlet"
#: Generic names a user's own modules may have: the distribution must not install them.
USER_NAMES = ("engine", "operators", "state", "checkpoints")
#: No PYTHONPATH (``make mutants`` sets one): the fresh venv must see only what it installed.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

JOB = textwrap.dedent(
    f"""
    import anyio
    from {IMPORT_NAME} import StreamExecutionEnvironment

    async def main() -> None:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        stream = env.from_collection([1, 2, 3, 4]).key_by(lambda x: x % 2).sum(0)
        out = sorted([x async for x in stream.execute_and_collect()])
        print(out)

    anyio.run(main)
    """
)


def _copy_source(dest: Path) -> None:
    # Not `git ls-files`: the suite also runs in copies without .git (``make mutants``).
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )


@pytest.mark.slow
def test_plain_install_imports_and_runs_a_job(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _copy_source(source)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=CLEAN_ENV,
    )
    assert install.returncode == 0, install.stderr
    # A job script beside modules of the generic names our folders have: they are the
    # user's, and streamlet must neither shadow them nor be shadowed by them.
    work = tmp_path / "work"
    (work / "engine").mkdir(parents=True)
    (work / "engine" / "__init__.py").write_text("WHOSE = 'user'\n")
    (work / "state.py").write_text("WHOSE = 'user'\n")
    (work / "operators.py").write_text("WHOSE = 'user'\n")
    script = work / "job.py"
    script.write_text(
        "import engine, operators, state\n"
        "assert (engine.WHOSE, operators.WHOSE, state.WHOSE) == ('user',) * 3\n" + JOB
    )
    run = subprocess.run(
        [str(python), str(script)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        env=CLEAN_ENV,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[1, 2, 4, 6]"

    # Exactly one top-level name is installed.
    probe = "; ".join(
        [
            "import importlib.metadata as m",
            "files = m.distribution('streamlet').files",
            "print(sorted({f.parts[0] for f in files if f.suffix == '.py'}))",
            # The dashboard's page, script and style are data files of the package.
            "print(sorted(f.name for f in files if 'static' in f.parts))",
        ]
    )
    tops = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=CLEAN_ENV,
    )
    assert tops.returncode == 0, tops.stderr
    top_names, static = tops.stdout.strip().splitlines()
    assert top_names == str([IMPORT_NAME])
    assert static == str(["dashboard.css", "dashboard.js", "index.html"])
    for name in USER_NAMES:
        missing = subprocess.run(
            [str(python), "-c", f"import {name}"],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            env=CLEAN_ENV,
        )
        assert missing.returncode != 0, f"the distribution installs a top-level {name!r}"
