"""The PyFlink-program runner: import rewriting, running as a script, comparing printed lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import streamlet
import streamlet.testing.pyflink_examples
from streamlet.testing import (
    PyFlinkProgramError,
    assert_same_printed_lines,
    printed_lines,
    rewrite_pyflink_imports,
    run_pyflink_program,
    strip_subtask_prefix,
)
from tests.engine.testing.test_testing import _examples

# --- rewrite_pyflink_imports ---


def test_from_imports_become_streamlet_imports_whatever_the_pyflink_module() -> None:
    source = (
        "import json\n"
        "from pyflink.common import Types, WatermarkStrategy\n"
        "from pyflink.datastream.connectors.file_system import FileSink as Sink\n"
        "from pyflink import datastream\n"
        "x = 1\n"
    )
    assert rewrite_pyflink_imports(source) == (
        "import json\n"
        "from streamlet import Types, WatermarkStrategy\n"
        "from streamlet import FileSink as Sink\n"
        "from streamlet import datastream\n"
        "x = 1\n"
    )


def test_multi_line_imports_keep_every_later_line_number() -> None:
    source = (
        "from pyflink.datastream.connectors.file_system import (FileSink, WatermarkStrategy,\n"
        "                                                       TimeWindow)  # the connector\n"
        "from pyflink.datastream.window import EventTimeSessionWindows, \\\n"
        "    TimeWindow\n"
        "import os, \\\n"
        "    pyflink.common as common\n"
        "marker = 1\n"
    )
    rewritten = rewrite_pyflink_imports(source)
    lines = rewritten.splitlines()
    assert len(lines) == 7 and lines[6] == "marker = 1"
    assert lines[0] == "from streamlet import (FileSink, WatermarkStrategy, TimeWindow"
    assert lines[1] == ")  # the connector"  # what followed the statement stays
    assert lines[2] == "from streamlet import (EventTimeSessionWindows, TimeWindow"
    assert lines[4] == "import os, streamlet as common \\"
    namespace: dict[str, object] = {}
    exec(compile(rewritten, "<rewritten>", "exec"), namespace)
    assert namespace["common"] is streamlet and namespace["TimeWindow"] is streamlet.TimeWindow


def test_imports_anywhere_in_the_program_are_rewritten_and_nothing_else() -> None:
    source = (
        's = "from pyflink.common import Types"  # a string, not an import\n'
        "from pyflinkish import thing\n"
        "from .pyflink import other\n"
        "def build():\n"
        "    try:\n"
        "        from pyflink.common import *\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    assert rewrite_pyflink_imports(source) == source.replace(
        "        from pyflink.common import *", "        from streamlet import *"
    )


def test_columns_count_characters_after_non_ascii_text_on_the_same_line() -> None:
    source = 'greeting = "grüße"; from pyflink.common import Types; tail = "é"\n'
    assert rewrite_pyflink_imports(source) == (
        'greeting = "grüße"; from streamlet import Types; tail = "é"\n'
    )


def test_a_program_without_pyflink_imports_is_returned_unchanged() -> None:
    source = "print('hello')\n"
    assert rewrite_pyflink_imports(source) is source


def test_bare_import_of_a_pyflink_module_is_refused_with_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"prog.py, line 2: 'import pyflink.datastream'"):
        rewrite_pyflink_imports("import os\nimport pyflink.datastream\n", source_name="prog.py")


def test_rewrite_refuses_what_is_not_program_text() -> None:
    with pytest.raises(TypeError, match="needs the program's text as a str"):
        rewrite_pyflink_imports(b"from pyflink.common import Types")  # type: ignore[arg-type]
    with pytest.raises(SyntaxError):
        rewrite_pyflink_imports("from pyflink.common import (\n")


# --- run_pyflink_program ---


def test_a_rewritten_program_runs_on_streamlet_and_its_stdout_lines_are_returned() -> None:
    program = (
        "import sys\n"
        "from pyflink.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.from_collection(sys.argv[1:]).map(str.upper).print()\n"
        "env.execute('upper')\n"
        "print('done', file=sys.stderr)\n"
    )
    printed = run_pyflink_program(program, argv=["a", "b", "a"])
    assert_same_printed_lines(printed, ["A", "B", "A"])


def test_the_program_runs_as_a_script_in_the_directory_given(tmp_path: Path) -> None:
    program = (
        "import os, sys\nprint(__name__, os.path.basename(__file__), os.getcwd())\n"
        "open('written.txt', 'w').write('x')\n"
    )
    printed = run_pyflink_program(program, name="job.py", cwd=tmp_path)
    assert printed == [f"__main__ job.py {tmp_path}"]
    assert (tmp_path / "written.txt").read_text() == "x"
    assert (tmp_path / "job.py").read_text() == program


def test_a_failing_program_raises_with_its_exit_code_stderr_and_stdout() -> None:
    program = "print('before')\nraise SystemExit('it broke')\n"
    with pytest.raises(PyFlinkProgramError, match="exited with code 1") as failed:
        run_pyflink_program(program, name="broken.py")
    assert failed.value.returncode == 1
    assert "it broke" in failed.value.stderr and failed.value.stdout == "before\n"
    assert isinstance(failed.value, AssertionError)  # pytest reports it as a failed check


def test_a_program_past_its_timeout_is_killed_and_what_it_printed_is_kept() -> None:
    program = "import threading\nprint('started', flush=True)\nthreading.Event().wait()\n"
    with pytest.raises(PyFlinkProgramError, match="ran past its timeout of 1 s") as timed_out:
        run_pyflink_program(program, timeout=1)
    assert timed_out.value.returncode is None
    assert timed_out.value.stdout == "started\n"


def test_the_interpreter_can_be_chosen() -> None:
    assert run_pyflink_program("import sys; print(sys.executable)", python=sys.executable) == [
        sys.executable
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"argv": "--input x"}, TypeError, "argv must be a sequence of str"),
        ({"argv": [1]}, TypeError, "argv must be a sequence of str"),
        ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0"),
        ({"timeout": True}, ValueError, "timeout must be a number of seconds > 0"),
        ({"name": "a/b.py"}, ValueError, "plain file name ending in .py"),
        ({"name": "prog.txt"}, ValueError, "plain file name ending in .py"),
        ({"name": 3}, TypeError, "name must be a file name"),
        ({"cwd": "/nonexistent/dir"}, ValueError, "cwd must be an existing directory"),
    ],
)
def test_run_refuses_bad_arguments_clearly(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run_pyflink_program("print(1)", **kwargs)  # type: ignore[arg-type]


# --- comparing printed lines ---


def test_only_a_leading_subtask_prefix_is_stripped() -> None:
    assert strip_subtask_prefix("12> (a,1)") == "(a,1)"
    assert strip_subtask_prefix("1> 2> x") == "2> x"
    assert strip_subtask_prefix("1>x") == "1>x"
    assert strip_subtask_prefix("a 1> x") == "a 1> x"
    with pytest.raises(TypeError, match="needs a str"):
        strip_subtask_prefix(1)  # type: ignore[arg-type]


def test_printed_lines_are_a_multiset_modulo_the_prefix() -> None:
    assert printed_lines(["1> a", "2> a", "b"]) == {"a": 2, "b": 1}
    with pytest.raises(TypeError, match=r"use \.splitlines"):
        printed_lines("1> a\n2> b")


def test_same_printed_lines_ignore_order_and_prefixes_but_not_counts() -> None:
    assert_same_printed_lines(["2> b", "1> a", "a"], ["a", "a", "b"])
    with pytest.raises(AssertionError) as differ:
        assert_same_printed_lines(["a", "c", "c"], ["a", "a", "b"])
    message = str(differ.value)
    assert "missing (2):\n    1 x 'a'\n    1 x 'b'" in message
    assert "unexpected (2):\n    2 x 'c'" in message


def test_the_module_example_runs() -> None:
    (code,) = _examples(streamlet.testing.pyflink_examples)
    exec(compile(code, "<pyflink_examples example>", "exec"), {"__name__": "example"})
