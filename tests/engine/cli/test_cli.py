"""streamlet.cli.main: ``streamlet run`` (job definitions and programs), its options, its exit codes
and error reports; ``streamlet checkpoints`` and ``streamlet demo`` delegation.

The command runs in-process through :func:`streamlet.cli.main.main` (which calls ``anyio.run``, so
these tests are synchronous); Ctrl-C and the installed entry points run in subprocesses.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from streamlet import cli


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


WORD_COUNT = """
    JOB_NAME = "words"

    def build(env):
        (
            env.from_collection(["to be or not to be"])
            .flat_map(str.split)
            .map(lambda w: (w, 1)).uid("pairs")
            .key_by(lambda p: p[0])
            .sum(1).uid("counts")
            .print()
        )

    if __name__ == "__main__":
        raise SystemExit("the main block must not run under streamlet run")
"""

PARALLELISM_PROBE = """
    from streamlet import MapFunction

    class Probe(MapFunction):
        def open(self, runtime_context):
            self.p = runtime_context.get_number_of_parallel_subtasks()

        def map(self, value):
            return f"parallelism={self.p}"

    def build(env):
        env.set_parallelism(3)  # the command line's --parallelism wins over this
        env.from_sequence(1, 8).map(Probe()).print()
"""


# --- help, usage errors ---


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("run", "checkpoints", "demo"):
        assert command in out


def test_run_help_explains_the_script_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "--help")
    assert code == 0
    assert "build(env)" in out and "--restore" in out and "exit status" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("streamlet ")


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["run"], ["run", "job.py", "--parallelism", "0"], ["run", "--nope", "x.py"]],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error" in err and "Traceback" not in err


def test_missing_script(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    code, _, err = run(capsys, "run", "nope.py")
    assert code == 2
    assert err == "streamlet: error: no such file: nope.py\n"


def test_directory_is_not_a_script(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    (in_tmp / "jobs").mkdir()
    code, _, err = run(capsys, "run", "jobs")
    assert code == 2 and "not a file: jobs" in err


def test_syntax_error_names_the_line(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", "def build(env):\n    return (\n")
    code, _, err = run(capsys, "run", "job.py")
    assert code == 2
    assert err.startswith("streamlet: error: job.py:") and "Traceback" not in err


# --- job definitions: build(env) ---


def test_run_builds_and_executes_without_the_main_block(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    code, out, err = run(capsys, "run", "job.py")
    assert code == 0, err
    assert out.splitlines()[-1] == "('be', 2)"
    assert "streamlet: job 'words' finished in" in err


def test_parallelism_option_wins_over_the_script(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "job.py", PARALLELISM_PROBE)
    code, out, _ = run(capsys, "run", "job.py", "-p", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 8
    assert {line.split("> ")[1] for line in lines} == {"parallelism=2"}
    code, out, _ = run(capsys, "run", "job.py")  # without the option: the script's 3
    assert {line.split("> ")[1] for line in out.splitlines()} == {"parallelism=3"}


def test_async_build(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(
        in_tmp / "job.py",
        """
        import anyio

        async def build(env):
            await anyio.sleep(0)
            env.from_collection([1, 2]).map(lambda x: x * 10).print()
        """,
    )
    code, out, _ = run(capsys, "run", "job.py")
    assert code == 0 and out == "10\n20\n"


def test_checkpoint_dir_and_interval(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    code, _, err = run(
        capsys, "run", "job.py", "--checkpoint-dir", "ckpt", "--checkpoint-interval", "50"
    )
    assert code == 0, err
    assert list((in_tmp / "ckpt" / "words").glob("chk-*/_metadata"))


def test_restore_latest_continues_the_job(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    options = ["--checkpoint-dir", "ckpt", "--checkpoint-interval", "50"]
    code, out, _ = run(capsys, "run", "job.py", *options)
    assert code == 0 and out
    # The final checkpoint holds the source at its end: the restored run reads nothing.
    code, out, err = run(capsys, "run", "job.py", *options, "--restore", "latest")
    assert code == 0, err
    assert out == ""
    assert "restoring checkpoint" in err and "chk-" in err
    checkpoint = sorted((in_tmp / "ckpt" / "words").glob("chk-*"))[-1]
    code, out, err = run(capsys, "run", "job.py", "--checkpoint-dir", "ckpt", "-s", checkpoint)
    assert code == 0 and out == "", err


def test_unclaimed_state_names_the_command_line_flag(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    options = ["--checkpoint-dir", "ckpt", "--checkpoint-interval", "50"]
    assert run(capsys, "run", "job.py", *options)[0] == 0
    renamed = WORD_COUNT.replace('.uid("counts")', '.uid("totals")')
    write(in_tmp / "job.py", renamed)
    code, out, err = run(capsys, "run", "job.py", *options, "--restore", "latest")
    assert code == 2 and out == ""
    assert "holds state of operator uid(s) ['counts'] that this job does not have" in err
    assert "or pass -n / --allow-non-restored-state to drop that state" in err
    assert "allow_non_restored_state=True" not in err and "Traceback" not in err
    code, out, err = run(capsys, "run", "job.py", *options, "--restore", "latest", "-n")
    assert code == 0, err


def test_unclaimed_state_names_the_api_parameter(in_tmp: Path) -> None:
    from streamlet import StreamExecutionEnvironment

    def job(uid: str) -> StreamExecutionEnvironment:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(in_tmp / "ckpt"))
        env.enable_checkpointing(50)
        env.from_collection([("a", 1)]).key_by(lambda p: p[0]).sum(1).uid(uid).print()
        return env

    job("counts").execute("api")
    with pytest.raises(ValueError, match=r"or pass allow_non_restored_state=True to drop"):
        job("totals").execute("api", restore="latest")


def test_job_name_option(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    code, _, err = run(
        capsys, "run", "job.py", "--job-name", "other", "--checkpoint-dir", "c", "-p", "2"
    )
    assert code == 0 and "job 'other' finished" in err
    code, _, err = run(capsys, "run", "job.py", "--job-name", "other", "--checkpoint-dir", "c")
    assert code == 0  # the dir holds no checkpoint: checkpointing is off in WORD_COUNT


def test_restore_latest_needs_a_checkpoint_directory(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    for restore in ("latest", "ckpt/words/chk-1"):
        code, out, err = run(capsys, "run", "job.py", "--restore", restore)
        assert code == 2 and out == ""
        assert f"--restore {restore} needs a checkpoint directory" in err
        assert "hint: pass --checkpoint-dir" in err


def test_restore_of_a_missing_path(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    code, _, err = run(capsys, "run", "job.py", "--checkpoint-dir", "c", "-s", "nowhere/chk-3")
    assert code == 2
    assert "--restore: no checkpoint or savepoint at nowhere/chk-3" in err


def test_bad_option_value_from_the_engine(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    code, _, err = run(capsys, "run", "job.py", "--checkpoint-interval", "5")
    assert code == 2
    assert "--checkpoint-interval: checkpoint interval must be >= 10 ms, got 5" in err
    code, _, err = run(capsys, "run", "job.py", "--checkpoint-dir", "s3://bucket/x")
    assert code == 2 and "--checkpoint-dir: unsupported checkpoint storage scheme" in err


def test_failing_job_exits_1_naming_operator_subtask_cause_and_line(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(
        in_tmp / "job.py",
        """
        def build(env):
            env.set_parallelism(2)
            env.from_collection([1, 2, 0, 4]).rebalance().map(lambda x: 10 // x).uid("div").print()
        """,
    )
    code, _, err = run(capsys, "run", "job.py")
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith(
        "streamlet: error: job 'job' failed in operator 'Map' (uid 'div'), subtask "
    )
    assert lines[0].endswith("ZeroDivisionError: integer division or modulo by zero")
    assert "  raised at job.py:3 in <lambda>" in lines
    assert "Traceback" not in err and "--traceback" in err


def test_traceback_option_prints_it(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(
        in_tmp / "job.py",
        "def build(env):\n    env.from_collection([0]).map(lambda x: 1 // x).print()\n",
    )
    code, _, err = run(capsys, "run", "job.py", "--traceback")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError" in err


def test_failure_after_restarts_says_so(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(
        in_tmp / "job.py",
        """
        from streamlet import RestartStrategies

        def fail(x):
            raise RuntimeError("always")

        def build(env):
            env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 0))
            env.from_collection([1]).map(fail).print()
        """,
    )
    code, _, err = run(capsys, "run", "job.py")
    assert code == 1
    assert "RuntimeError: always" in err
    assert "after 2 restart(s); the restart strategy allows no more" in err
    assert "raised at job.py:4 in fail" in err


def test_source_failure_is_reported_without_a_traceback(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write(
        in_tmp / "job.py",
        f"""
        def build(env):
            env.socket_text_stream("127.0.0.1", {port}).print()
        """,
    )
    code, _, err = run(capsys, "run", "job.py")
    assert code == 1
    assert f"SocketSourceError: cannot connect to 127.0.0.1:{port}" in err
    assert "Traceback" not in err and "ExceptionGroup" not in err


def test_build_error_exits_2(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", "def build(env):\n    env.set_parallelism(0)\n")
    code, _, err = run(capsys, "run", "job.py")
    assert code == 2
    assert err.startswith("streamlet: error: cannot build the job of job.py: ValueError: ")
    assert "raised at job.py:2 in build" in err


@pytest.mark.parametrize(
    ("header", "call"),
    [
        ("def build(env):", 'env.execute("mine")'),  # PyFlink's habit
        ("async def build(env):", 'await env.execute("mine")'),
        ("async def build(env):", 'await (await env.execute_async("mine")).wait()'),
    ],
    ids=["sync", "async", "execute_async"],
)
def test_build_that_calls_execute_is_told_not_to(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, header: str, call: str
) -> None:
    write(
        in_tmp / "job.py",
        f"""
        {header}
            env.from_collection(["ran"]).print()
            {call}
        """,
    )
    code, out, err = run(capsys, "run", "job.py")
    assert code == 2
    assert out == ""  # the job did not run
    assert (
        "build(env) must build the job and return without calling execute() (or "
        "execute_async()); streamlet run executes it" in err
    ), err
    assert "no operators" not in err
    assert "raised at job.py:3 in build" in err


def test_import_error_exits_2(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", "import no_such_module_xyz\n\ndef build(env):\n    pass\n")
    code, _, err = run(capsys, "run", "job.py")
    assert code == 2
    assert "cannot load job.py: ModuleNotFoundError: No module named 'no_such_module_xyz'" in err


def test_build_that_is_not_a_function(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", "build = 42\n")
    code, _, err = run(capsys, "run", "job.py")
    assert code == 2 and "build is not a function, got 42" in err


def test_script_directory_is_importable_and_state_is_restored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write(jobs / "helpers.py", "def shout(s):\n    return s.upper() + '!'\n")
    write(
        jobs / "job.py",
        """
        from helpers import shout

        def build(env):
            env.from_collection(["hi"]).map(shout).print()
        """,
    )
    argv, path = sys.argv[:], sys.path[:]
    handlers = logging.getLogger("streamlet").handlers[:]
    code, out, _ = run(capsys, "run", jobs / "job.py")
    assert code == 0 and out == "HI!\n"
    assert sys.argv == argv and sys.path == path
    assert logging.getLogger("streamlet").handlers == handlers
    assert "__streamlet_job__" not in sys.modules
    sys.modules.pop("helpers", None)


# --- programs: no build() ---

PROGRAM = """
    import sys
    import anyio
    from streamlet import StreamExecutionEnvironment

    async def main():
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection(sys.argv[1:]).map(str.upper).print()
        await env.execute("program")

    if __name__ == "__main__":
        anyio.run(main)
"""


def test_program_runs_as_main_with_its_arguments(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "prog.py", PROGRAM)
    code, out, _ = run(capsys, "run", "prog.py", "--", "a", "--b")
    assert code == 0
    assert out == "A\n--B\n"


ARGV_PROBE = """
    import sys

    def build(env):
        print("argv", sys.argv[1:])
        env.from_collection([1]).print()
"""


@pytest.mark.parametrize(
    ("after_script", "script_args"),
    [
        (["--"], []),  # nothing after --: nothing for the script
        (["--", "a", "b"], ["a", "b"]),
        (["-p", "1", "--"], []),  # options, then a bare --
        (["-p", "1", "--", "a", "-x", "--", "b"], ["a", "-x", "--", "b"]),
        (["a", "-p", "1", "--", "b"], ["a", "b"]),
    ],
    ids=["bare", "args", "options-bare", "options-args", "mixed"],
)
def test_arguments_after_double_dash_go_to_the_script(
    capsys: pytest.CaptureFixture[str],
    in_tmp: Path,
    after_script: list[str],
    script_args: list[str],
) -> None:
    write(in_tmp / "job.py", ARGV_PROBE)
    code, out, err = run(capsys, "run", "job.py", *after_script)
    assert code == 0, err
    assert out.splitlines()[0] == f"argv {script_args}"


@pytest.mark.parametrize("kind", ["definition", "program"])
def test_bare_double_dash_for_a_program_and_a_definition(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, kind: str
) -> None:
    write(in_tmp / "job.py", ARGV_PROBE if kind == "definition" else PROGRAM)
    code, _, err = run(capsys, "run", "job.py", "--")
    assert code == 0, err
    code, out, err = run(capsys, "run", "job.py", "--", "a", "b")
    assert code == 0, err
    assert ("argv ['a', 'b']" if kind == "definition" else "A\nB\n") in out


def test_an_unknown_option_says_where_script_arguments_go(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    write(in_tmp / "job.py", ARGV_PROBE)
    code, _, err = run(capsys, "run", "job.py", "-p", "1", "--bogus", "--", "a")
    assert code == 2
    assert "unrecognized arguments: --bogus" in err
    assert "arguments for the script go after '--'" in err


def test_program_refuses_job_options(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "prog.py", PROGRAM)
    code, out, err = run(capsys, "run", "prog.py", "-p", "2", "--restore", "latest")
    assert code == 2 and out == ""
    assert err.startswith(
        "streamlet: error: --parallelism, --restore needs a job script that defines build(env)"
    )


@pytest.mark.parametrize(
    ("body", "expected"), [("sys.exit(3)", 3), ("sys.exit(0)", 0), ("sys.exit('bye')", 1)]
)
def test_program_exit_status_passes_through(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, body: str, expected: int
) -> None:
    write(in_tmp / "prog.py", f"import sys\n{body}\n")
    code, _, err = run(capsys, "run", "prog.py")
    assert code == expected
    if expected == 1:
        assert err == "bye\n"


def test_failing_program_exits_1(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(
        in_tmp / "prog.py",
        """
        import anyio
        from streamlet import StreamExecutionEnvironment

        async def main():
            env = StreamExecutionEnvironment.get_execution_environment()
            env.from_collection([0]).map(lambda x: 1 // x).print()
            await env.execute("broken")

        anyio.run(main)
        """,
    )
    code, _, err = run(capsys, "run", "prog.py")
    assert code == 1
    assert "job 'broken' failed in operator 'Map'" in err
    assert "raised at prog.py:6 in <lambda>" in err and "Traceback" not in err


def test_program_error_outside_a_job(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "prog.py", "x = {}\nx['missing']\n")
    code, _, err = run(capsys, "run", "prog.py")
    assert code == 1
    assert "streamlet: error: KeyError: 'missing'" in err and "raised at prog.py:2" in err


# --- checkpoints and demo ---


def test_checkpoints_list_and_validate(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write(in_tmp / "job.py", WORD_COUNT)
    assert (
        run(capsys, "run", "job.py", "--checkpoint-dir", "c", "--checkpoint-interval", "50")[0] == 0
    )
    code, out, _ = run(capsys, "checkpoints", "list", "c/words")
    assert code == 0 and "chk-" in out and "valid" in out
    code, out, _ = run(capsys, "checkpoints", "validate", "c/words", "--json")
    assert code == 0 and out.startswith(("[", "{"))
    code, _, err = run(capsys, "checkpoints", "show", "nowhere")
    assert code == 2 and "error" in err


def test_checkpoints_help_is_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "checkpoints", "--help")
    assert code == 0 and "validate" in out


def test_demo_delegates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0 and "--host" in out
    code, _, err = run(capsys, "demo", "--host", "localhost")
    assert code == 2 and "--host and --port go together" in err


# --- entry points and Ctrl-C (subprocesses) ---


def test_console_script_entry_point() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "streamlet"]
    assert script.value == "streamlet.cli:main"


def test_python_m_engine(tmp_path: Path) -> None:
    write(tmp_path / "job.py", WORD_COUNT)
    done = subprocess.run(
        [sys.executable, "-m", "streamlet", "run", "job.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "('be', 2)" in done.stdout


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery to a child is POSIX here")
@pytest.mark.parametrize("kind", ["definition", "program"])
def test_ctrl_c_cancels_the_job_and_exits_130(tmp_path: Path, kind: str) -> None:
    if kind == "definition":
        source = """
            from streamlet import PushSource

            def build(env):
                env.from_source(PushSource()).print()
                print("ready", flush=True)
        """
    else:
        source = """
            import anyio
            from streamlet import PushSource, StreamExecutionEnvironment

            async def main():
                env = StreamExecutionEnvironment.get_execution_environment()
                env.from_source(PushSource()).print()
                client = await env.execute_async("endless")
                print("ready", flush=True)
                await client.wait()

            anyio.run(main)
        """
    write(tmp_path / "job.py", source)
    child = subprocess.Popen(
        [sys.executable, "-m", "streamlet", "run", "job.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, err
    assert "interrupted; the job was cancelled" in err
    assert "Traceback" not in err


def test_a_closed_stdout_ends_the_job_quietly_without_restarts(in_tmp: Path) -> None:
    # `streamlet run job.py | head -1`: checkpointing on, so a failure would restart for ever.
    write(
        in_tmp / "job.py",
        "def build(env):\n"
        "    env.enable_checkpointing(100)\n"
        "    env.from_sequence(1, 10**9).map(lambda x: x * 2).print()\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlet", "run", "job.py"],
        cwd=in_tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"2\n"
    proc.stdout.close()  # what head does after its line
    try:
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert rc == 141, stderr
    assert "restart" not in stderr and "Traceback" not in stderr, stderr
