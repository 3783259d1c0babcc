"""Acceptance (issue 16): PyFlink's own DataStream examples run on streamlet with only their
imports changed, and print what PyFlink prints.

The examples are not copied here: the test downloads the ``apache-flink`` 2.3.0 wheel once
(``pip download``, cached under ``.cache/pyflink/`` in the checkout, git-ignored) and reads
``pyflink/examples/datastream/*.py`` straight out of the zip. Each program's imports are
rewritten (``from pyflink.x import A, B`` -> ``from streamlet import A, B``) by
:func:`streamlet.testing.run_pyflink_program`, which runs it as a script in a subprocess; its
stdout must equal, as a multiset of lines modulo the ``N> `` subtask prefix, what real PyFlink
printed for the same program: ``tests/fixtures/pyflink_examples/<name>.txt`` (each file's
header says how it was produced and what was left out).

Offline (the download fails) the test is skipped, saying why; with the ``CI`` environment
variable set it fails instead, since CI must really run it.

``streaming_word_count`` reads an unbounded ``datagen`` table through the Table API, so it
has no golden file: it is run for a few seconds and the shape of what it printed is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from streamlet.testing import (
    PyFlinkProgramError,
    assert_same_printed_lines,
    run_pyflink_program,
)

pytestmark = pytest.mark.slow

PYFLINK_VERSION = "2.3.0"
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "pyflink"
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "pyflink_examples"
EXAMPLES = "pyflink/examples/datastream"
# One wheel whatever machine runs the test (they all hold the same examples): pip picks it
# for this platform and Python, which need not have an apache-flink wheel of their own.
DOWNLOAD = [
    "download",
    f"apache-flink=={PYFLINK_VERSION}",
    "--no-deps",
    "--only-binary=:all:",
    "--platform=manylinux2014_x86_64",
    "--python-version=3.11",
    "--implementation=cp",
]


def _wheel_in(directory: Path) -> Path | None:
    wheels = sorted(directory.glob(f"apache_flink-{PYFLINK_VERSION}-*.whl"))
    return wheels[0] if wheels else None


@pytest.fixture(scope="session")
def pyflink_wheel() -> Path:
    """The apache-flink wheel, downloaded once into .cache/pyflink/ (skip offline, fail on CI)."""
    cached = _wheel_in(CACHE)
    if cached is not None:
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    # Into a scratch directory first, then renamed: an interrupted download leaves no
    # truncated wheel in the cache.
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        command = [sys.executable, "-m", "pip", *DOWNLOAD, "-d", scratch, "--quiet"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            problem = (
                None if done.returncode == 0 else f"exit code {done.returncode}: {done.stderr}"
            )
        except subprocess.TimeoutExpired:
            problem = "no answer within 600 s"
        downloaded = _wheel_in(Path(scratch))
        if downloaded is not None:
            downloaded.replace(CACHE / downloaded.name)
    wheel = _wheel_in(CACHE)
    if problem is None and wheel is None:
        problem = f"pip reported success but no apache_flink-{PYFLINK_VERSION}-*.whl is in {CACHE}"
    if problem is not None or wheel is None:
        why = (
            f"cannot get PyFlink's example programs: `pip {' '.join(DOWNLOAD)}` failed "
            f"({problem}); these tests need PyPI (or the wheel placed in {CACHE})"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{why} -- CI must run the PyFlink acceptance test", pytrace=False)
        pytest.skip(why)
    return wheel


def example_source(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(f"{EXAMPLES}/{name}.py").decode("utf-8")


def golden_lines(stem: str) -> list[str]:
    """The printed lines of a golden file: everything after its leading ``#`` header."""
    lines = (GOLDEN / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
    body = 0
    while body < len(lines) and lines[body].startswith("#"):
        body += 1
    return lines[body:]


# The bounded examples, run as `python <name>.py` with no arguments: the default input
# (a collection in the program) and the default output (print() to stdout).
BOUNDED = [
    "word_count",
    "basic_operations",
    "state_access",
    "event_time_timer",
    "process_json_data",
    "windowing/session_with_dynamic_gap_window",
    "windowing/session_with_gap_window",
    "windowing/sliding_time_window",
    "windowing/tumbling_count_window",
    "windowing/tumbling_time_window",
]


def test_every_shipped_example_is_covered(pyflink_wheel: Path) -> None:
    """A new example in the wheel (same directories) must get a case here, or be ruled out."""
    with zipfile.ZipFile(pyflink_wheel) as archive:
        shipped = {
            name.removeprefix(f"{EXAMPLES}/").removesuffix(".py")
            for name in archive.namelist()
            if re.fullmatch(rf"{EXAMPLES}/(windowing/)?[a-z_]+\.py", name)
            and not name.endswith("__init__.py")
        }
    assert shipped == {*BOUNDED, "streaming_word_count"}
    assert {path.stem for path in GOLDEN.glob("*.txt")} == {Path(n).name for n in BOUNDED}


@pytest.mark.parametrize("name", BOUNDED)
def test_example_prints_what_pyflink_prints(pyflink_wheel: Path, name: str) -> None:
    printed = run_pyflink_program(
        example_source(pyflink_wheel, name), name=f"{Path(name).name}.py", timeout=120
    )
    assert_same_printed_lines(printed, golden_lines(Path(name).name))


WORDS = {
    "flink", "window", "timer", "event_time", "processing_time", "state", "connector",
    "pyflink", "checkpoint", "watermark", "sideoutput", "sql", "datastream", "broadcast",
    "asyncio", "catalog", "batch", "streaming",
}  # fmt: skip


def test_streaming_word_count_prints_running_counts(pyflink_wheel: Path) -> None:
    """streaming_word_count runs forever on random words: no golden file; check its shape.

    It counts words drawn at random (5 a second) from a fixed list, so what PyFlink prints
    differs run to run; what holds every run: after the three lines it prints first, each
    line is ``(word,count)`` for a word of the list, and each word's counts go 1, 2, 3, ...
    """
    source = example_source(pyflink_wheel, "streaming_word_count")
    with pytest.raises(PyFlinkProgramError) as stopped:
        run_pyflink_program(source, name="streaming_word_count.py", timeout=5)
    assert stopped.value.returncode is None, stopped.value  # killed at the timeout, not failed
    lines = [line for line in stopped.value.stdout.splitlines() if re.match(r"(\d+> )?\(", line)]
    assert lines, stopped.value.stdout
    # 'rows-per-second' = 5 paces the source: at most 5 rows a second for the 5 seconds
    assert len(lines) <= 5 * 5 + 1, f"{len(lines)} rows in 5 s at 5 rows a second"
    last: dict[str, int] = {}
    for line in lines:
        match = re.fullmatch(r"(?:\d+> )?\(([a-z_]+),(\d+)\)", line)
        assert match is not None and match[1] in WORDS, line
        word, count = match[1], int(match[2])
        assert count == last.get(word, 0) + 1, line
        last[word] = count
