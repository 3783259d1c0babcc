"""env.socket_text_stream: PyFlink's positional (hostname, port, delimiter, max_retry) and
every option of the source as an explicit, documented keyword (visible to help())."""

from __future__ import annotations

import inspect

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.operators.sources.socket import SocketTextStreamSource

P = inspect.Parameter


def test_the_signature_shows_every_option_of_the_source() -> None:
    api = inspect.signature(StreamExecutionEnvironment.socket_text_stream).parameters
    source = inspect.signature(SocketTextStreamSource.__init__).parameters
    assert list(api)[:5] == ["self", "hostname", "port", "delimiter", "max_retry"]
    assert all(api[name].kind is P.POSITIONAL_OR_KEYWORD for name in list(api)[:5])
    assert P.VAR_KEYWORD not in {p.kind for p in api.values()}  # no **options
    options = {n: (p.kind, p.default) for n, p in source.items() if n not in ("self", "host")}
    assert {n: (p.kind, p.default) for n, p in api.items() if n not in ("self", "hostname")} == (
        options
    )
    doc = inspect.getdoc(StreamExecutionEnvironment.socket_text_stream) or ""
    for name in list(api)[1:]:
        assert f":param {name}:" in doc, name


def test_positional_and_keyword_options_reach_the_source() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.socket_text_stream(
        "localhost", 9999, ";", -1, retry_delay_ms=10, write_ahead_log=True, max_buffered=7
    )
    (node,) = [n for n in env._graph.nodes if n.source is not None]
    source = node.source
    assert isinstance(source, SocketTextStreamSource)
    assert (source.host, source.port, source.delimiter, source.max_retry) == (
        "localhost",
        9999,
        ";",
        -1,
    )
    assert (source.retry_delay_ms, source.write_ahead_log, source.max_buffered) == (10, True, 7)


def test_a_misspelt_option_is_a_type_error_naming_it() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(TypeError, match="write_ahead_logs"):
        env.socket_text_stream("localhost", 9999, write_ahead_logs=True)  # type: ignore[call-arg]
