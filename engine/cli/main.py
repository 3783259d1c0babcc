"""The ``streamlet`` command: run a job script, inspect checkpoints, run the demo.

``streamlet run job.py`` plays the part of Flink's ``flink run``. A *job script* is a Python
file in one of two shapes, told apart by reading the file (it is not imported to find out):

- **A job definition** has a top-level ``build(env)`` (plain or ``async def``) that builds
  the job on the environment it is given, and optionally a ``JOB_NAME``. ``streamlet run``
  creates the environment, applies the command line's options, calls ``build(env)``, applies
  the options again (so the command line wins over what the script set), and executes the
  job with ``--restore``. The script's ``if __name__ == "__main__":`` block does not run, so
  the same file can also be a standalone program. ``build`` must not execute the job itself
  (``env.execute()`` inside it is refused, saying so).
- **A program** (no ``build``) runs as ``python job.py ARGS`` would (``__name__`` is
  ``"__main__"``), with streamlet's error reporting and exit codes. It configures and
  executes its jobs itself, so the job options (``--parallelism`` ...) are refused for it.

Exit status (``run``): 0 the job finished; 1 the job (or the program) failed, reported in a
few lines naming the operator, the subtask, the cause and where in the script it was raised
(``--traceback`` prints the whole traceback); 2 nothing ran: a bad option, a missing file,
a script that fails to load or to build its job, or a refused restore; 130 interrupted
with Ctrl-C (the job is cancelled first). ``streamlet checkpoints`` returns what
``python -m streamlet.checkpoints`` returns (0 valid, 1 something is damaged, 2 a usage
mistake), ``streamlet demo`` 0 when its check passed (130 after Ctrl-C, having printed what
it counted).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import inspect
import logging
import math
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, TextIO

import anyio

import streamlet.checkpoints as _checkpoints
import streamlet.operators as _operators
import streamlet.state as _state
from streamlet.api.environment import StreamExecutionEnvironment
from streamlet.checkpoints.config import JobManagerCheckpointStorage
from streamlet.errors import JobExecutionError
from streamlet.job.recovery import NonRestoredStateError
from streamlet.job.result import JobExecutionResult
from streamlet.operators.sinks.simple import OutputClosedError
from streamlet.state.errors import StreamletError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (`| head`)

_PROG = "streamlet"
_JOB_MODULE = "__streamlet_job__"
#: How long ``--web-ui`` keeps serving after the job ended, without ``--keep-ui``.
_WEB_UI_LINGER_S = 5.0
# Our own source trees: frames inside them are never "where the user's code failed".
# The folders of the package and of its three lower layers (in a source checkout the four
# top-level folders, installed streamlet/ and the folders inside it).
_OWN_DIRS = tuple(
    str(folder) + os.sep
    for folder in (
        Path(__file__).resolve().parents[1],  # streamlet itself (engine/ in a checkout)
        *(Path(str(p.__file__)).resolve().parent for p in (_operators, _state, _checkpoints)),
    )
)


class _UsageError(Exception):
    """Nothing ran: reported in one line (plus a hint), exit status 2."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# --- the parser ---

_RUN_DESCRIPTION = """\
Run a job script. A script that defines build(env) is a job definition: streamlet
creates the environment, applies the options below, calls build(env) and executes the
job (options win over what the script set). A script without build() is a program and
runs as 'python SCRIPT ARGS' would; it configures its jobs itself, so the job options
are refused for it. Arguments after '--' go to the script as sys.argv[1:].
"""

_RUN_EPILOG = """\
exit status: 0 finished, 1 the job failed, 2 nothing ran (bad option, missing file,
the script failed to load or build), 130 interrupted (Ctrl-C cancels the job first).

example:
  streamlet run job.py --parallelism 4 --checkpoint-dir ./ckpt
  streamlet run job.py --checkpoint-dir ./ckpt --restore latest
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="streamlet: an asyncio dataflow engine with Flink's checkpoints.",
        epilog="Run 'streamlet COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a job script",
        description=_RUN_DESCRIPTION,
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("script", metavar="SCRIPT", help="the job script (a .py file)")
    run.add_argument(
        "script_args", metavar="ARGS", nargs="*", help="arguments for the script (after --)"
    )
    job = run.add_argument_group("job options (scripts with build(env) only)")
    job.add_argument(
        "-p", "--parallelism", type=_positive_int, metavar="N", help="default parallelism"
    )
    job.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="write checkpoints under DIR/<job name> (a path or file:// URI)",
    )
    job.add_argument(
        "--checkpoint-interval",
        type=_positive_int,
        metavar="MS",
        help="checkpoint every MS milliseconds (else the script's choice; default off)",
    )
    job.add_argument(
        "-s",
        "--restore",
        metavar="latest|PATH",
        help="restore the newest valid checkpoint of the job ('latest'; needs a checkpoint "
        "directory) or a checkpoint/savepoint directory; with --runner flink, the path of a "
        "Flink savepoint or retained checkpoint",
    )
    job.add_argument(
        "-n",
        "--allow-non-restored-state",
        action="store_true",
        help="drop restored state of operator uids the job no longer has",
    )
    job.add_argument("--job-name", metavar="NAME", help="job name (default: JOB_NAME or file stem)")
    job.add_argument(
        "--runner",
        choices=("local", "flink"),
        help="where the job runs: streamlet's runtime (local, the default) or Apache Flink "
        "(needs streamlet[flink] and Java)",
    )
    job.add_argument(
        "--flink-address",
        metavar="HOST:PORT",
        help="with --runner flink, the REST address of a Flink cluster (default: Flink's "
        "local mini-cluster)",
    )
    web = run.add_argument_group("web UI (needs streamlet[web])")
    web.add_argument(
        "--web-ui",
        metavar="[HOST:]PORT",
        help="serve the dashboard, Flink's REST API and Prometheus metrics (/metrics) at "
        "HOST:PORT while the job runs (HOST defaults to 127.0.0.1; 0 picks a free port)",
    )
    web.add_argument(
        "--keep-ui",
        action="store_true",
        help="keep serving the web UI after the job ended, until Ctrl-C (else 5 s)",
    )
    web.add_argument(
        "--web-ui-token-env",
        metavar="VAR",
        help="protect the UI's actions (savepoint, stop, cancel) with the token in "
        "environment variable VAR (a token on the command line would show in ps)",
    )
    out = run.add_argument_group("output")
    out.add_argument(
        "--traceback", action="store_true", help="print the full traceback of a failure"
    )
    out.add_argument(
        "-v", "--verbose", action="store_true", help="log restores, checkpoints and restarts"
    )
    # Listed for --help; their arguments are handed on untouched (see main()).
    sub.add_parser(
        "checkpoints",
        help="list, show or validate checkpoints (python -m streamlet.checkpoints)",
        add_help=False,
    )
    sub.add_parser("demo", help="run the demo (make demo)", add_help=False)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("streamlet")
    except Exception:  # not installed (run from a source tree)
        return "unknown"


# --- entry point ---


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamlet`` command line; return its exit status.

    :param argv: the arguments without the program name (``sys.argv[1:]`` if None)
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    # ``checkpoints`` and ``demo`` own their options (and --help): hand them everything.
    if args_list and args_list[0] == "checkpoints":
        from streamlet.checkpoints.cli import main as checkpoints_main

        return checkpoints_main(args_list[1:], prog="streamlet checkpoints")
    if args_list and args_list[0] == "demo":
        from streamlet.cli.demo import main as demo_main

        try:
            return demo_main(args_list[1:])
        except SystemExit as exc:  # --help, or a usage error argparse printed
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    parser = _build_parser()
    try:
        args = _parse_run_args(parser, args_list)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return _cmd_run(args, sys.stderr)


def _parse_run_args(parser: argparse.ArgumentParser, args_list: list[str]) -> argparse.Namespace:
    """Parse ``run``'s arguments; everything after the first ``--`` goes to the script.

    argparse alone hands the script what follows ``--`` only while it is still filling
    ARGS: after an option (``run job.py -p 2 -- a``) it refuses the rest, and a bare
    trailing ``--`` (nothing for the script) along with it.
    """
    args, extra = parser.parse_known_args(args_list)
    if "--" in extra:
        cut = extra.index("--")
        extra, passed = extra[:cut], extra[cut + 1 :]
        args.script_args = [*args.script_args, *passed]
    if extra:
        parser.error(
            f"unrecognized arguments: {' '.join(extra)} (arguments for the script go after "
            f"'--': streamlet run SCRIPT [options] -- ARGS)"
        )
    return args


# --- streamlet run ---


def _cmd_run(args: argparse.Namespace, err: TextIO) -> int:
    script = Path(args.script)
    try:
        source = _read_script(script)
        defines_build = _defines_build(source, script)
        if not defines_build:
            _refuse_job_options(args, script)
    except _UsageError as exc:
        _report_usage(exc, err)
        return EXIT_USAGE
    restore_logging = _configure_logging(args.verbose)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    # As ``python job.py`` does: the script's directory first on sys.path, its argv.
    sys.argv = [str(script), *args.script_args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        if defines_build:
            return _run_definition(script, args, err)
        return _run_program(script, args, err)
    except KeyboardInterrupt:
        err.write("\nstreamlet: interrupted; the job was cancelled\n")
        return EXIT_INTERRUPTED
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.modules.pop(_JOB_MODULE, None)
        restore_logging()


def _read_script(script: Path) -> str:
    if not script.exists():
        raise _UsageError(f"no such file: {script}")
    if not script.is_file():
        raise _UsageError(f"not a file: {script}", "SCRIPT is the job's .py file")
    try:
        return script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read {script}: {exc}") from None


def _defines_build(source: str, script: Path) -> bool:
    """Whether the script binds ``build`` at top level (read from its syntax tree)."""
    try:
        tree = ast.parse(source, filename=str(script))
    except SyntaxError as exc:
        raise _UsageError(f"{script}:{exc.lineno}: {exc.msg}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "build":
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "build" for t in node.targets
        ):
            return True
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == "build" for alias in node.names
        ):
            return True
    return False


_JOB_OPTIONS = {
    "parallelism": "--parallelism",
    "checkpoint_dir": "--checkpoint-dir",
    "checkpoint_interval": "--checkpoint-interval",
    "restore": "--restore",
    "allow_non_restored_state": "--allow-non-restored-state",
    "job_name": "--job-name",
    "web_ui": "--web-ui",
    "keep_ui": "--keep-ui",
    "web_ui_token_env": "--web-ui-token-env",
    "runner": "--runner",
    "flink_address": "--flink-address",
}


def _refuse_job_options(args: argparse.Namespace, script: Path) -> None:
    given = [flag for attr, flag in _JOB_OPTIONS.items() if getattr(args, attr)]
    if given:
        raise _UsageError(
            f"{', '.join(given)} needs a job script that defines build(env); {script} has "
            f"none, so it runs as a program that configures its jobs itself",
            "define build(env) in the script (see 'streamlet run --help'), or set the "
            "option in the script",
        )


# --- job definitions: build(env) ---


def _run_definition(script: Path, args: argparse.Namespace, err: TextIO) -> int:
    try:
        module = _load_module(script)
    except _UsageError as exc:
        _report_usage(exc, err)
        return EXIT_USAGE
    except Exception as exc:
        _report_exception(f"cannot load {script}", exc, script, args.traceback, err)
        return EXIT_USAGE
    build = getattr(module, "build", None)
    if not callable(build):
        _report_usage(_UsageError(f"{script}: build is not a function, got {build!r}"), err)
        return EXIT_USAGE
    job_name = args.job_name or getattr(module, "JOB_NAME", None) or script.stem
    if not isinstance(job_name, str) or not job_name:
        _report_usage(_UsageError(f"{script}: JOB_NAME must be a non-empty str"), err)
        return EXIT_USAGE
    return anyio.run(_build_and_execute, build, job_name, script, args, err)


def _web_ui_options(args: argparse.Namespace) -> dict[str, Any]:
    """``env.execute``'s web UI arguments from ``--web-ui``, ``--keep-ui`` and
    ``--web-ui-token-env`` (checked by :func:`_check_web_ui` before the job is built)."""
    if args.web_ui is None:
        return {}
    token = os.environ[args.web_ui_token_env] if args.web_ui_token_env else None
    return {
        "web_ui": args.web_ui,
        "web_ui_token": token,
        "web_ui_linger_s": math.inf if args.keep_ui else _WEB_UI_LINGER_S,
    }


def _check_web_ui(args: argparse.Namespace) -> None:
    if args.web_ui is None:
        if args.keep_ui or args.web_ui_token_env:
            raise _UsageError("--keep-ui and --web-ui-token-env need --web-ui [HOST:]PORT")
        return
    try:
        from streamlet.web import parse_address
    except ImportError as exc:
        raise _UsageError(str(exc), "pip install 'streamlet[web]'") from None
    try:
        parse_address(args.web_ui)
    except ValueError as exc:
        raise _UsageError(f"--web-ui: {exc}") from None
    var = args.web_ui_token_env
    if var and not os.environ.get(var):
        raise _UsageError(
            f"--web-ui-token-env {var}: the environment variable {var} is not set or empty"
        )


def _load_module(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_JOB_MODULE, script)
    if spec is None or spec.loader is None:  # pragma: no cover - a readable .py file loads
        raise _UsageError(f"cannot load {script} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered while the job runs, under a fixed name: state holding dataclasses of the
    # script is restored by module and class name, also by a later run of the script.
    sys.modules[_JOB_MODULE] = module
    spec.loader.exec_module(module)
    return module


async def _build_and_execute(
    build: Any, job_name: str, script: Path, args: argparse.Namespace, err: TextIO
) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    try:
        _apply_options(env, args)  # before build, so build sees them ...
        with _no_execute_in_build(env):
            built = build(env)
            if inspect.isawaitable(built):
                await built
        _apply_options(env, args)  # ... and after, so they win over the script's choices
        if not _on_flink(args):
            _check_restore(env, args)  # a Flink savepoint is the cluster's to read
        _check_web_ui(args)
    except _UsageError as exc:
        _report_usage(exc, err)
        return EXIT_USAGE
    except Exception as exc:
        _report_exception(f"cannot build the job of {script}", exc, script, args.traceback, err)
        return EXIT_USAGE
    if _on_flink(args):
        return await _execute_on_flink(env, job_name, script, args, err)
    try:
        result = await env.execute(
            job_name,
            restore=args.restore,
            allow_non_restored_state=args.allow_non_restored_state,
            **_web_ui_options(args),
        )
    except JobExecutionError as exc:
        if isinstance(exc.__cause__, NonRestoredStateError):
            _report_usage(_non_restored(exc.__cause__), err)
            return EXIT_USAGE
        if isinstance(exc.__cause__, OutputClosedError):
            # Like a Unix tool on SIGPIPE: quiet, and nothing more written to the pipe.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        _report_exception(None, exc, script, args.traceback, err)
        return EXIT_FAILED
    except NonRestoredStateError as exc:  # nothing ran: the restore was refused
        _report_usage(_non_restored(exc), err)
        return EXIT_USAGE
    except Exception as exc:
        _report_exception(None, exc, script, args.traceback, err)
        return EXIT_FAILED
    _report_result(result, err)
    return EXIT_OK


class _ExecuteInBuildError(StreamletError):
    """A job definition's ``build(env)`` called ``execute()`` itself."""


@contextlib.contextmanager
def _no_execute_in_build(env: StreamExecutionEnvironment) -> Iterator[None]:
    """Make ``env.execute*()`` refuse, clearly, while ``build(env)`` runs.

    Otherwise a build() that executes the job (PyFlink's habit) either runs it and leaves
    an empty graph for streamlet run ("no operators"), or, being sync inside our event
    loop, creates a coroutine nobody awaits.
    """

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise _ExecuteInBuildError(
            "build(env) must build the job and return without calling execute() (or "
            "execute_async()); streamlet run executes it, with the command line's options. "
            "Remove the call from build(env); to also run the file with plain python, call "
            "execute() under 'if __name__ == \"__main__\":'"
        )

    names = ("execute", "execute_async")
    for name in names:
        setattr(env, name, refuse)  # an instance attribute shadows the method
    try:
        yield
    finally:
        for name in names:
            with contextlib.suppress(AttributeError):
                delattr(env, name)


def _non_restored(exc: NonRestoredStateError) -> _UsageError:
    # The API's message names its parameter; here the command line's flag is the way.
    return _UsageError(exc.with_option("-n / --allow-non-restored-state"))


def _apply_options(env: StreamExecutionEnvironment, args: argparse.Namespace) -> None:
    settings: list[tuple[str, Any, Callable[[Any], object]]] = [
        ("--parallelism", args.parallelism, env.set_parallelism),
        (
            "--checkpoint-dir",
            args.checkpoint_dir,
            env.get_checkpoint_config().set_checkpoint_storage_dir,
        ),
        ("--checkpoint-interval", args.checkpoint_interval, env.enable_checkpointing),
    ]
    for flag, value, apply in settings:
        if value is None:
            continue
        try:
            apply(value)
        except (TypeError, ValueError) as exc:
            raise _UsageError(f"{flag}: {exc}") from None


def _on_flink(args: argparse.Namespace) -> bool:
    return args.runner == "flink" or args.flink_address is not None


def _check_restore(env: StreamExecutionEnvironment, args: argparse.Namespace) -> None:
    if args.restore is None:
        return
    storage = env.get_checkpoint_config().get_checkpoint_storage()
    if isinstance(storage, JobManagerCheckpointStorage):
        # The job's storage reads the checkpoint back, and in-memory storage holds none.
        raise _UsageError(
            f"--restore {args.restore} needs a checkpoint directory, but the job keeps its "
            f"checkpoints in memory",
            "pass --checkpoint-dir DIR (the one the earlier run used)",
        )
    if args.restore != "latest" and not Path(args.restore).exists():
        raise _UsageError(
            f"--restore: no checkpoint or savepoint at {args.restore}",
            "give a chk-N directory, a savepoint directory, or 'latest'; "
            "'streamlet checkpoints list DIR' shows what there is",
        )


async def _execute_on_flink(
    env: StreamExecutionEnvironment,
    job_name: str,
    script: Path,
    args: argparse.Namespace,
    err: TextIO,
) -> int:
    """``--runner flink``: translate and run the job on Flink; an untranslatable job is a
    usage error (nothing ran), a failed Flink job exit 1."""
    from streamlet.flink import FlinkTranslationError

    given = [flag for attr, flag in _FLINK_REFUSED.items() if getattr(args, attr)]
    if given or (args.flink_address is not None and args.runner == "local"):
        _report_usage(
            _UsageError(
                f"{', '.join(given) or '--runner local'} cannot be combined with the Flink "
                f"runner (--runner flink / --flink-address)",
                "watch a Flink job in Flink's web UI; restore it with --restore SAVEPOINT",
            ),
            err,
        )
        return EXIT_USAGE
    if args.restore == "latest":
        _report_usage(
            _UsageError(
                "--restore latest cannot be combined with the Flink runner: Flink keeps no "
                "list of a job's checkpoints by name",
                "give the path of a savepoint or retained checkpoint (--restore PATH)",
            ),
            err,
        )
        return EXIT_USAGE
    if args.allow_non_restored_state and args.restore is None:
        _report_usage(_UsageError("--allow-non-restored-state needs --restore PATH"), err)
        return EXIT_USAGE
    # The job script's classes must reach Flink's Python workers (processes of their own,
    # on a cluster or locally), which cannot import the script by the module name it was
    # loaded under: pickle it by value.
    module = sys.modules.get(_JOB_MODULE)
    with contextlib.suppress(ImportError):  # without PyFlink, execute says what to install
        import cloudpickle  # type: ignore[import-untyped]  # PyFlink's dependency

        if module is not None:
            cloudpickle.register_pickle_by_value(module)
    try:
        result = await env.execute(
            job_name,
            runner="flink",
            flink_address=args.flink_address,
            restore=args.restore,
            allow_non_restored_state=args.allow_non_restored_state,
        )
    except FlinkTranslationError as exc:
        _report_usage(_UsageError(str(exc)), err)
        return EXIT_USAGE
    except Exception as exc:
        _report_exception(None, exc, script, args.traceback, err)
        return EXIT_FAILED
    err.write(
        f"streamlet: job {result.job_name!r} finished on Flink in "
        f"{result.net_runtime_ms / 1000:.1f} s (Flink job id {result.job_id})\n"
    )
    return EXIT_OK


#: Options of streamlet's runtime that the Flink runner does not take.
_FLINK_REFUSED = {
    "web_ui": "--web-ui",
    "checkpoint_dir": "--checkpoint-dir",
}


def _report_result(result: JobExecutionResult, err: TextIO) -> None:
    err.write(
        f"streamlet: job {result.job_name!r} finished in {result.net_runtime_ms / 1000:.1f} s "
        f"({result.checkpoints_completed} checkpoint(s), {result.restart_count} restart(s))\n"
    )


# --- programs: no build() ---


def _run_program(script: Path, args: argparse.Namespace, err: TextIO) -> int:
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or EXIT_OK
        err.write(f"{code}\n")  # sys.exit("message"), as Python reports it
        return EXIT_FAILED
    except Exception as exc:
        _report_exception(None, exc, script, args.traceback, err)
        return EXIT_FAILED
    return EXIT_OK


# --- reporting ---


def _configure_logging(verbose: bool) -> Callable[[], None]:
    """Show streamlet's warnings (restarts, damaged checkpoints) and its restore messages.

    Returns a function that puts the loggers back as they were (``main`` may be called
    in-process, by tests or by another program).
    """
    logger = logging.getLogger("streamlet")
    recovery = logging.getLogger("streamlet.job.recovery")
    saved = (logger.level, logger.propagate, recovery.level)
    # The command owns the terminal while it runs: streamlet's records go to stderr through
    # this handler only (not also through handlers a script put on the root logger).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("streamlet: %(message)s"))
    handler.addFilter(_drop_final_failure)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    # Which checkpoint a run restores is worth a line even without --verbose.
    recovery.setLevel(logging.INFO)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        recovery.setLevel(saved[2])

    return restore


def _drop_final_failure(record: logging.LogRecord) -> bool:
    # The job's final failure is reported by _report_exception; don't print it twice.
    return not (record.name == "streamlet.job" and record.levelno >= logging.ERROR)


def _report_usage(exc: _UsageError, err: TextIO) -> None:
    err.write(f"{_PROG}: error: {exc}\n")
    if exc.hint:
        err.write(f"  hint: {exc.hint}\n")


def _report_exception(
    context: str | None, exc: BaseException, script: Path, full: bool, err: TextIO
) -> None:
    """Report ``exc`` in a few lines: what failed, the cause, where in the user's code."""
    exc = _unwrap_group(exc)
    if full:
        traceback.print_exception(exc, file=err)
    head = f"{context}: " if context else ""
    if isinstance(exc, JobExecutionError):
        err.write(f"{_PROG}: error: {head}{exc}\n")
        if exc.attempt:
            err.write(f"  after {exc.attempt} restart(s); the restart strategy allows no more\n")
        cause = exc.__cause__
    else:
        err.write(f"{_PROG}: error: {head}{_describe(exc)}\n")
        cause = exc
    where = _user_frame(cause, script) if cause is not None else None
    if where is not None:
        err.write(f"  raised at {where}\n")
    if not full:
        err.write("  (run with --traceback for the full traceback)\n")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StreamletError):
        return str(exc)
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def _unwrap_group(exc: BaseException) -> BaseException:
    """A program's task group may wrap the job's error; report the error itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _user_frame(exc: BaseException, script: Path) -> str | None:
    """Return ``file:line in function`` of the innermost frame of user code, if any."""
    tb: TracebackType | None = exc.__traceback__
    frames = traceback.extract_tb(tb) if tb is not None else []
    script_path = str(script.resolve())
    in_script = [f for f in frames if _same_file(f.filename, script_path)]
    stdlib = (os.path.dirname(os.__file__) + os.sep,)
    candidates = in_script or [
        f
        for f in frames
        if not f.filename.startswith(_OWN_DIRS + stdlib)
        and "site-packages" not in f.filename
        and not f.filename.startswith("<")
    ]
    if not candidates:
        return None
    frame = candidates[-1]
    return f"{_display_path(frame.filename)}:{frame.lineno} in {frame.name}"


def _same_file(filename: str, resolved: str) -> bool:
    try:
        return str(Path(filename).resolve()) == resolved
    except OSError:
        return False


def _display_path(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename


if __name__ == "__main__":
    sys.exit(main())
