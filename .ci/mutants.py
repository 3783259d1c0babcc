"""``make mutants``: apply each known mutant in a scratch copy and require the suite to go red.

Each mutant is an exact textual patch (file, original text, replacement). A patch whose
original text is missing or ambiguous fails this script loudly, so a refactor cannot silently
disable a mutant: update the patch together with the code. The scratch copy holds the working
tree's git-tracked files; the tests run with this project's virtualenv, with the copy's
installed layout (a link tree, :mod:`linktree`) first on ``sys.path`` (``PYTHONPATH``), so the
editable install, which maps ``streamlet`` to the checkout, does not shadow the mutated code.

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

from linktree import build_tree

ROOT = Path(__file__).resolve().parents[1]


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
    Mutant(
        # The key-group memo as it was: cleared whenever full, so keys past its bound
        # evicted each other and every record was hashed again (issue 12's cliff).
        name="M3: the key-group memo starts over when full",
        path="state/key_group_memo.py",
        original="        room = self._limit - len(table)\n",
        replacement=(
            "        if len(table) + len(missing) > 16:\n"
            "            table.clear()\n"
            "        room = self._limit - len(table)\n"
        ),
        # The whole suite reached these only after tests/flink (9 minutes).
        tests=(
            "tests/state/test_key_group_memo.py",
            "tests/state/test_heap_backend_keyed_batches.py",
            "tests/engine/graph/test_partitioners.py",
        ),
    ),
    Mutant(
        # connect(): every channel treated as the first input's, so the second input's
        # records reach the first input's method (and a keyed one, the wrong key selector).
        name="M4: a two-input operator's channels all feed its first input",
        path="engine/runtime/deploy.py",
        original="                    channel_inputs[consumer.index][j].append(edge.input_index)\n",
        replacement="                    channel_inputs[consumer.index][j].append(0)\n",
        tests=(
            "tests/engine/api/test_connected.py",
            "tests/integration/test_connected_recovery.py",
        ),
    ),
    Mutant(
        # Drain: the sources' stop request ignored, so the drained savepoint never comes
        # (or, were it taken anyway, would not follow the MAX watermark).
        name="M-drain: a source ignores the request to stop its input",
        path="engine/runtime/subtask.py",
        original="                if self.input_stopped:  # set by a mailbox action (stop_input)\n",
        replacement="                if False:\n",
        tests=("tests/integration/test_drain.py",),
    ),
    Mutant(
        # Unaligned checkpoints forget what a channel delivered before its barrier.
        name="M5: input channel state is not recorded",
        path="engine/runtime/channels.py",
        original="                        taken.append(self._encode(buffer))\n",
        replacement="                        pass\n",
        tests=("tests/engine/runtime/test_channel_state.py", "tests/integration/test_unaligned.py"),
    ),
    Mutant(
        name="M6: restored channel state is dropped",
        path="engine/runtime/deploy.py",
        original="    if restored is not None and restored.channel_state:\n",
        replacement="    if False:\n",
        tests=("tests/integration/test_unaligned.py",),
    ),
    Mutant(
        # Issue 18: a wait for room in a full channel that ends is not added up, so a
        # backpressured job reports none once its waits are over.
        name="M7: backpressured time is not accumulated",
        path="engine/runtime/subtask.py",
        original="                times.backpressured_s += time.perf_counter() - start\n",
        replacement="                times.backpressured_s += 0.0\n",
        tests=("tests/engine/runtime/test_metrics.py",),
    ),
    Mutant(
        # Issue 18: numRecordsIn counts batches instead of records.
        name="M8: an operator's records in are counted per batch",
        path="engine/runtime/subtask.py",
        original="            self.records_in += len(batch)\n",
        replacement="            self.records_in += 1\n",
        tests=("tests/engine/runtime/test_metrics.py", "tests/web/test_rest.py"),
    ),
    Mutant(
        # Reference counting ignored: retention removes a checkpoint's shared pieces even
        # when a retained checkpoint still references them.
        name="M9: a discarded checkpoint's shared pieces go, whoever else needs them",
        path="checkpoints/storage.py",
        original="                if holders:\n                    continue\n",
        replacement="",
        tests=(
            "tests/checkpoints/test_shared_pieces.py",
            "tests/integration/test_incremental_checkpoints.py",
        ),
    ),
    Mutant(
        # An incremental snapshot forgets its removed keys: a restore brings them back.
        name="M10: incremental snapshots drop their removals",
        path="state/snapshot.py",
        original="        if removed:\n            try:\n",
        replacement="        if removed and False:\n            try:\n",
        tests=("tests/state/test_incremental_snapshot.py",),
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
    # The project's venv imports streamlet from the checkout (its editable install); the
    # suite must import the mutated copy instead: its installed layout as links, first on
    # the path.
    links = tree / "build" / "mutant"
    build_tree(tree, links)
    env = dict(os.environ, PYTHONPATH=str(links), PYTHONDONTWRITEBYTECODE="1")
    # A mutant "caught" by tests that ran the unmutated checkout proves nothing: check first
    # that the suite will import the copy.
    where = subprocess.run(
        [python, "-c", "import streamlet.job.runner as m; print(m.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"the suite would import streamlet from {where!r}, not the copy {tree}")
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
