"""The seed job, ``examples/socket_word_count.py``, on Flink: Flink's own socket source."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from streamlet import StreamExecutionEnvironment
from tests.test_examples import load

pytestmark = pytest.mark.slow

# "\r\n" (stripped, as both sources do for the "\n" delimiter) and non-ASCII words (UTF-8).
TEXT = "to be or not to be\r\nthat is the question\nÄpfel straße to be\n"


@contextmanager
def text_server(text: str, connections: int = 1) -> Iterator[int]:
    """A server on 127.0.0.1 that sends ``text`` to each of ``connections`` clients, then
    closes; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        for _ in range(connections):
            client, _ = server.accept()
            with client:
                client.sendall(text.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.close()
        thread.join(timeout=10)


def test_the_seed_jobs_counts_are_the_same_on_flink() -> None:
    example = load("socket_word_count")
    # Loaded from its file under a made-up name, which Flink's Python workers (processes of
    # their own) cannot import: its functions travel by value, as `streamlet run` sends a
    # job script's.
    import cloudpickle  # type: ignore[import-untyped]  # PyFlink's dependency

    cloudpickle.register_pickle_by_value(example)
    results = {}
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(4)
        with text_server(TEXT) as port:
            counts = example.word_counts(env, "127.0.0.1", port, write_ahead_log=False)
            if runner == "local":
                with counts.execute_and_collect() as records:
                    results[runner] = list(records)
            else:
                results[runner] = counts.execute_and_collect(runner="flink")
    # Every running count, once: the same multiset, whatever the subtasks' interleaving.
    assert Counter(results["flink"]) == Counter(results["local"])
    final: dict[str, int] = {}
    for word, n in results["flink"]:
        final[word] = max(final.get(word, 0), n)
    assert final == Counter(word.upper() for word in TEXT.split())
    assert final["STRASSE"] == 1 and final["TO"] == 3
