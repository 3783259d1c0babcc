"""What of ``socket_text_stream`` the Flink runner refuses, before any JVM starts."""

from __future__ import annotations

import io

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.cli.main import main
from streamlet.flink import FlinkTranslationError, check_translatable
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
