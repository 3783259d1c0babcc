"""``make mutants``: apply each known mutant in a scratch copy and require the suite to go red.

Each mutant is an exact textual patch (file, original text, replacement). A patch whose
original text is missing or ambiguous fails this script loudly, so a refactor cannot silently
disable a mutant: update the patch together with the code. The scratch copy holds the working
tree's git-tracked files; the tests run with this project's virtualenv, with the copy first on
``sys.path`` (``PYTHONPATH``), so the editable install does not shadow the mutated code. The
copy's folders are laid out as ``pyproject.toml`` maps them (``streamlet`` is ``engine/``,
``streamlet.checkpoints`` is ``checkpoints/``, ...) by a view of symlinks, and before each run
the script checks that ``streamlet`` imports from the copy: otherwise the suite would test the
unmutated working tree and a mutant would look caught by any unrelated failure.

Exit status 0 only if every mutant made the suite fail. By default pytest stops at the first
failure (fast); ``--all`` runs the whole suite per mutant and lists every test that caught it
(``make mutants ARGS=--all``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    replacement: str
    # pytest arguments: the subset expected to catch it (the whole suite by default).
    tests: tuple[str, ...] = ("tests",)


MUTANTS = (
    Mutant(
        name="M1: never restore on failover",
        path="engine/job/runner.py",
        original=(
            "            restore_point = coordinator.latest_recovery_point() or restore_point\n"
        ),
        replacement="            restore_point = None\n",
    ),
    Mutant(
        name="M2: the aligner never blocks a channel",
        path="checkpoints/alignment.py",
        original="        return self._emit(set(self._arrived), **extra)\n",
        replacement="        return self._emit(set(), **extra)\n",
    ),
)


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    return [name for name in out.decode().split("\0") if name]


def copy_tree(dest: Path) -> None:
    for name in tracked_files():
        src = ROOT / name
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


#: pyproject.toml's package-dir: import name -> folder of the repository.
PACKAGE_DIRS = {
    "streamlet": "engine",
    "streamlet.operators": "operators",
    "streamlet.state": "state",
    "streamlet.checkpoints": "checkpoints",
}


def import_view(tree: Path) -> Path:
    """Lay ``tree`` out as the installed package (symlinks) and return the view's root."""
    view = tree / ".mutant-import"
    top = view / "streamlet"
    top.mkdir(parents=True)
    for entry in (tree / PACKAGE_DIRS["streamlet"]).iterdir():
        (top / entry.name).symlink_to(entry)
    for name, folder in PACKAGE_DIRS.items():
        if name != "streamlet":
            (top / name.split(".", 1)[1]).symlink_to(tree / folder)
    return view


def check_imports_from(tree: Path, python: str, env: dict[str, str]) -> None:
    probe = "import streamlet.job.runner as m; print(m.__file__)"
    out = subprocess.run(
        [python, "-c", probe], cwd=tree, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    if not out.startswith(str(tree)):
        raise SystemExit(f"the mutated copy is not what the tests import: {out} is outside {tree}")


def apply(mutant: Mutant, tree: Path) -> None:
    file = tree / mutant.path
    text = file.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise SystemExit(
            f"{mutant.name}: its patch expects exactly one occurrence of {mutant.original!r} "
            f"in {mutant.path}, found {count}; update the mutant in {Path(__file__).name}"
        )
    file.write_text(text.replace(mutant.original, mutant.replacement))


def run_suite(mutant: Mutant, tree: Path, python: str, stop_first: bool) -> tuple[bool, str]:
    # Only the view: with the copy's root on the path, ``import engine`` would work in the
    # packaging test's subprocesses and fail it, whatever the mutant.
    env = dict(os.environ, PYTHONPATH=str(import_view(tree)), PYTHONDONTWRITEBYTECODE="1")
    check_imports_from(tree, python, env)
    proc = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            *(["-x"] if stop_first else []),
            "-p",
            "no:cacheprovider",
            *mutant.tests,
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    return proc.returncode != 0, "\n".join([*lines, summary])


def main(argv: list[str]) -> int:
    stop_first = "--all" not in argv
    python = str(ROOT / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    survived = []
    for mutant in MUTANTS:
        with tempfile.TemporaryDirectory(prefix="streamlet-mutant-") as tmp:
            tree = Path(tmp)
            copy_tree(tree)
            apply(mutant, tree)
            started = time.monotonic()
            caught, report = run_suite(mutant, tree, python, stop_first)
            took = time.monotonic() - started
        verdict = "caught" if caught else "SURVIVED"
        print(f"{mutant.name}: {verdict} in {took:.0f} s\n{report}\n", flush=True)
        if not caught:
            survived.append(mutant.name)
    if survived:
        print("mutants the suite did not catch: " + ", ".join(survived))
        return 1
    print("every mutant was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
