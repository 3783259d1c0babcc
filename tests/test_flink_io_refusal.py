"""What of sources and sinks the Flink runner refuses before any JVM starts: the socket
source's, ``add_sink``'s and ``FileSource``'s limits, and fault injection."""

from __future__ import annotations

import io

import pytest

from streamlet import (
    FileSource,
    SinkFunction,
    StreamExecutionEnvironment,
    StreamFormat,
    WatermarkStrategy,
)
from streamlet.cli.main import main
from streamlet.flink import FlinkTranslationError, check_translatable
from streamlet.testing import FaultInjector, inject_faults
from tests.test_examples import EXAMPLES


def _refusals(**options: object) -> list[str]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.socket_text_stream("localhost", 9999, **options).uid("lines").print()  # type: ignore[arg-type]
    try:
        check_translatable(env._graph)
    except FlinkTranslationError as exc:
        return [r.feature for r in exc.refusals]
    return []


def test_a_plain_socket_source_translates() -> None:
    assert _refusals() == []


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"write_ahead_log": True}, "write_ahead_log=True"),
        ({"retry_delay_ms": 100}, "retry_delay_ms=100"),
        ({"encoding": "latin-1"}, "encoding='latin-1'"),
    ],
)
def test_what_flinks_socket_source_cannot_do_is_refused(options: dict, named: str) -> None:
    (feature,) = _refusals(**options)
    assert named in feature


def test_the_seed_job_as_it_is_is_refused_naming_the_write_ahead_log(monkeypatch) -> None:
    # `streamlet run examples/socket_word_count.py --runner flink`: refused before Flink
    # starts, with what to use instead.
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", str(EXAMPLES / "socket_word_count.py"), "--runner", "flink"]) == 2
    message = err.getvalue()
    assert "'socket'" in message and "write_ahead_log=True" in message
    assert "write_ahead_log=False" in message


def _refused_sink(fn: object) -> list[str]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).add_sink(fn).name("sink").uid("the-sink")
    try:
        check_translatable(env._graph)
    except FlinkTranslationError as exc:
        return [r.feature for r in exc.refusals]
    return []


class _Opens(SinkFunction):
    def open(self, runtime_context: object) -> None:
        pass

    def invoke(self, value: object) -> None:
        pass


class _Invokes(SinkFunction):
    def invoke(self, value: object) -> None:
        pass


def test_plain_add_sink_functions_translate_others_are_refused() -> None:
    async def later(value: object) -> None:
        pass

    assert _refused_sink(print) == [] and _refused_sink(_Invokes()) == []
    assert _refused_sink(later) == ["an async add_sink() function"]
    assert _refused_sink(_Opens()) == ["the sink function's open() hook"]


def test_fault_injection_is_refused_before_the_jvm() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).map(lambda x: x).uid("m").print()
    inject_faults(env, FaultInjector().fail_record("m", at=1))
    with pytest.raises(FlinkTranslationError, match="fault injection"):
        env.execute("faults", runner="flink")


def test_a_utf8_file_source_translates_another_encoding_is_refused(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    for charset, refused in (("UTF-8", 0), ("latin-1", 1)):
        env = StreamExecutionEnvironment.get_execution_environment()
        fmt = StreamFormat.text_line_format(charset)
        source = FileSource.for_record_stream_format(fmt, str(tmp_path)).build()
        env.from_source(source, WatermarkStrategy.no_watermarks(), "files").print()
        try:
            check_translatable(env._graph)
            found = 0
        except FlinkTranslationError as exc:
            found = len(exc.refusals)
            assert "'latin-1'" in str(exc)
        assert found == refused
