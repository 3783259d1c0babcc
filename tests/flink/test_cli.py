"""``streamlet run job.py --runner flink``."""

from __future__ import annotations

import io
import textwrap

import pytest

from streamlet.cli.main import main

pytestmark = pytest.mark.slow

JOB = """
def build(env):
    env.from_sequence(1, 10).key_by(lambda x: x % 2).sum(0).print()
"""

REFUSED = """
from streamlet import PushSource

def build(env):
    env.from_source(PushSource(), source_name="app queue").print()
"""


def test_run_with_the_flink_runner(tmp_path, monkeypatch) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", str(script), "--runner", "flink", "-p", "1"]) == 0
    assert "finished on Flink" in err.getvalue()


def test_untranslatable_job_is_a_usage_error(tmp_path, monkeypatch) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(REFUSED))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", str(script), "--runner", "flink"]) == 2
    assert "'app queue'" in err.getvalue() and "PushSource" in err.getvalue()


def test_restore_latest_is_refused_with_the_flink_runner(tmp_path, monkeypatch) -> None:
    # --restore PATH restores a Flink savepoint; 'latest' has no Flink counterpart.
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", str(script), "--runner", "flink", "--restore", "latest"]) == 2
    assert "--restore latest cannot be combined with the Flink runner" in err.getvalue()
    err.truncate(0)
    assert main(["run", str(script), "--runner", "flink", "-n"]) == 2
    assert "--allow-non-restored-state needs --restore PATH" in err.getvalue()
