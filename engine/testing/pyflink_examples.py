"""Run a PyFlink program on streamlet with only its imports changed, and compare what it prints.

The acceptance test of "a PyFlink program runs as written" (PyFlink's own example programs)
needs three small things, kept here so users can check their own PyFlink scripts the same way:

- :func:`rewrite_pyflink_imports`: every ``from pyflink... import X, Y`` (one line, parenthesised
  over several lines, or continued with backslashes) becomes ``from streamlet import X, Y``, and
  ``import pyflink.x as m`` becomes ``import streamlet as m``; nothing else in the text changes,
  and every line keeps its number (tracebacks point at the original lines).
- :func:`run_pyflink_program`: rewrite, write it to a file in a scratch directory and run it as
  a script (``python file.py argv...``) in a subprocess with this interpreter and a timeout;
  return its stdout lines, or raise :class:`PyFlinkProgramError` with its stderr if it failed.
- :func:`printed_lines` / :func:`assert_same_printed_lines`: compare printed lines as a
  multiset, modulo the subtask prefix ``N> `` that Flink's print sink puts in front of each
  record when the parallelism is above 1 (the order of records across subtasks is not
  deterministic in Flink either).

Example::

    from streamlet.testing import assert_same_printed_lines, run_pyflink_program

    program = '''
    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 10).print()
    env.execute("tens")
    '''
    assert_same_printed_lines(run_pyflink_program(program), ["2> 30", "1> 10", "20"])
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "PyFlinkProgramError",
    "assert_same_printed_lines",
    "printed_lines",
    "rewrite_pyflink_imports",
    "run_pyflink_program",
    "strip_subtask_prefix",
]

_SUBTASK_PREFIX = re.compile(r"^\d+> ")


class PyFlinkProgramError(AssertionError):
    """A rewritten PyFlink program exited non-zero or ran past its timeout.

    An ``AssertionError`` so that pytest shows it as a failed check, with the program's exit
    code, its stderr (the traceback) and what it printed before failing.

    :ivar returncode: the exit code, or ``None`` after a timeout
    :ivar stdout: what the program printed to stdout
    :ivar stderr: what the program printed to stderr
    """

    def __init__(self, message: str, *, returncode: int | None, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _is_pyflink(module: str | None) -> bool:
    return module is not None and (module == "pyflink" or module.startswith("pyflink."))


def _import_replacement(node: ast.Import | ast.ImportFrom, source_name: str) -> str:
    """The ``streamlet`` import that stands for one PyFlink import statement."""
    if isinstance(node, ast.ImportFrom):
        names = ", ".join(
            alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            for alias in node.names
        )
        if names == "*":
            return "from streamlet import *"
        if node.end_lineno is not None and node.end_lineno > node.lineno:
            # Keep the statement's line count: the newlines go inside parentheses.
            return f"from streamlet import ({names}" + "\n" * (node.end_lineno - node.lineno) + ")"
        return f"from streamlet import {names}"
    parts = []
    for alias in node.names:
        if not _is_pyflink(alias.name):
            parts.append(alias.name if alias.asname is None else f"{alias.name} as {alias.asname}")
        elif alias.asname is None:
            raise ValueError(
                f"{source_name}, line {node.lineno}: 'import {alias.name}' binds the name "
                f"'pyflink' and the program then spells out module paths "
                f"('{alias.name}.X'), which have no streamlet equivalent; only "
                f"'import {alias.name} as NAME' and 'from {alias.name} import X' can be rewritten"
            )
        else:
            parts.append(f"streamlet as {alias.asname}")
    text = "import " + ", ".join(parts)
    if node.end_lineno is not None and node.end_lineno > node.lineno:
        # ``import`` over several lines (backslashes): keep the line count the same way.
        text += " \\\n" * (node.end_lineno - node.lineno)
    return text


def rewrite_pyflink_imports(source: str, *, source_name: str = "<program>") -> str:
    """Rewrite every PyFlink import of ``source`` into the same names imported from streamlet.

    ``from pyflink.common import Types, WatermarkStrategy`` becomes ``from streamlet import
    Types, WatermarkStrategy`` (aliases kept: ``X as Y``), whatever the PyFlink module
    (``pyflink.datastream.connectors.file_system``, ``pyflink.common.typeinfo``, ...) and
    wherever the statement is (top level, inside a function, a ``try``). Multi-line statements
    (parentheses or backslashes) keep their line count, so every later line keeps its number.
    ``import pyflink.x as m`` becomes ``import streamlet as m``. Other imports, relative
    imports and everything that is not an import statement are left exactly as they were.

    :param source: the program's text
    :param source_name: the file name used in error messages
    :returns: the rewritten text
    :raises TypeError: if ``source`` is not a str
    :raises SyntaxError: if ``source`` is not valid Python
    :raises ValueError: for ``import pyflink.x`` without ``as``: the program then uses
        ``pyflink.x.Name`` paths, which cannot be rewritten by changing the import alone
    """
    if not isinstance(source, str):
        raise TypeError(
            f"rewrite_pyflink_imports() needs the program's text as a str, got {source!r}"
        )
    tree = ast.parse(source, filename=source_name)
    edits: list[tuple[int, int, int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_pyflink(node.module):
            pass
        elif isinstance(node, ast.Import) and any(_is_pyflink(a.name) for a in node.names):
            pass
        else:
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None
        edits.append(
            (
                node.lineno,
                node.col_offset,
                node.end_lineno,
                node.end_col_offset,
                _import_replacement(node, source_name),
            )
        )
    if not edits:
        return source
    # ast's offsets are 1-based lines and UTF-8 byte columns: edit the encoded lines, last first.
    lines = source.encode("utf-8").splitlines(keepends=True)
    for lineno, col, end_lineno, end_col, text in sorted(edits, reverse=True):
        head = lines[lineno - 1][:col]
        tail = lines[end_lineno - 1][end_col:]
        lines[lineno - 1 : end_lineno] = (head + text.encode("utf-8") + tail).splitlines(
            keepends=True
        )
    return b"".join(lines).decode("utf-8")


def run_pyflink_program(
    source: str,
    *,
    argv: Sequence[str] = (),
    timeout: float = 120.0,
    name: str = "program.py",
    cwd: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Rewrite a PyFlink program's imports (:func:`rewrite_pyflink_imports`), run it, return stdout.

    The program runs as a script, ``python <cwd>/<name> *argv``, in a subprocess whose working
    directory is ``cwd`` (a fresh temporary directory, removed afterwards, when ``None``), so
    anything it writes with relative paths stays there. Its stdin is closed.

    :param source: the PyFlink program's text
    :param argv: the program's arguments (``sys.argv[1:]``)
    :param timeout: seconds the program may run before it is killed
    :param name: the script's file name (what the program sees as ``__file__``)
    :param cwd: the working directory to run in (and to write the script to)
    :param python: the interpreter; this one (``sys.executable``) by default, so the program
        imports the streamlet installed here
    :param env: the subprocess's environment (default: this process's)
    :returns: the lines the program printed to stdout, without line ends
    :raises TypeError: if ``source`` is not a str, ``argv`` not a sequence of str, ``name``
        not a str
    :raises ValueError: if ``timeout`` is not a positive number, or ``name`` is not a plain
        ``*.py`` file name
    :raises PyFlinkProgramError: if the program exits non-zero or runs past ``timeout``
    """
    if isinstance(argv, str | bytes) or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a sequence of str (the program's arguments), got {argv!r}")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a file name (str), got {name!r}")
    if not name.endswith(".py") or Path(name).name != name or name == ".py":
        raise ValueError(f"name must be a plain file name ending in .py, got {name!r}")
    rewritten = rewrite_pyflink_imports(source, source_name=name)
    if cwd is None:
        with tempfile.TemporaryDirectory(prefix="pyflink-program-") as scratch:
            return _run_script(rewritten, argv, timeout, Path(scratch), name, python, env)
    return _run_script(rewritten, argv, timeout, Path(cwd), name, python, env)


def _run_script(
    text: str,
    argv: Sequence[str],
    timeout: float,
    cwd: Path,
    name: str,
    python: str | os.PathLike[str] | None,
    env: dict[str, str] | None,
) -> list[str]:
    if not cwd.is_dir():
        raise ValueError(f"cwd must be an existing directory, got {str(cwd)!r}")
    script = cwd / name
    script.write_text(text, encoding="utf-8")
    command = [os.fspath(python) if python is not None else sys.executable, str(script), *argv]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as timed_out:
        stdout = _text(timed_out.stdout)
        stderr = _text(timed_out.stderr)
        raise PyFlinkProgramError(
            f"{name} {' '.join(argv)} ran past its timeout of {timeout} s (killed); "
            f"stdout so far:\n{stdout}\nstderr so far:\n{stderr}",
            returncode=None,
            stdout=stdout,
            stderr=stderr,
        ) from None
    if done.returncode != 0:
        raise PyFlinkProgramError(
            f"{name} {' '.join(argv)} exited with code {done.returncode}; "
            f"stderr:\n{done.stderr}\nstdout:\n{done.stdout}",
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
        )
    return done.stdout.splitlines()


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output


def strip_subtask_prefix(line: str) -> str:
    """``line`` without the ``N> `` that Flink's print sink writes with parallelism > 1."""
    if not isinstance(line, str):
        raise TypeError(f"strip_subtask_prefix() needs a str, got {line!r}")
    return _SUBTASK_PREFIX.sub("", line, count=1)


def printed_lines(lines: Iterable[str]) -> Counter[str]:
    """The multiset of printed lines, each without its subtask prefix (``"2> (a, 1)"``).

    :raises TypeError: if ``lines`` is a single str (pass ``text.splitlines()``) or holds
        something that is not a str
    """
    if isinstance(lines, str | bytes):
        raise TypeError("printed_lines() needs a list of lines, not one str: use .splitlines()")
    return Counter(strip_subtask_prefix(line) for line in lines)


def assert_same_printed_lines(actual: Iterable[str], expected: Iterable[str]) -> None:
    """Check that two programs printed the same lines, in any order, modulo subtask prefixes.

    :raises AssertionError: listing the lines missing from ``actual`` and the unexpected
        ones (with their counts) when the multisets differ
    :raises TypeError: as :func:`printed_lines`
    """
    got = printed_lines(actual)
    want = printed_lines(expected)
    if got == want:
        return
    missing = want - got
    unexpected = got - want

    def listing(lines: Counter[str]) -> str:
        return "".join(f"\n    {count} x {line!r}" for line, count in sorted(lines.items()))

    raise AssertionError(
        "the printed lines differ (as multisets, modulo the 'N> ' subtask prefix):"
        f"\n  missing ({sum(missing.values())}):{listing(missing) or ' none'}"
        f"\n  unexpected ({sum(unexpected.values())}):{listing(unexpected) or ' none'}"
    )
