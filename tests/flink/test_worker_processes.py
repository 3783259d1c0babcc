"""A local Flink job leaves nothing running in the calling process.

PyFlink's default for a local mini-cluster runs the job's Python workers as threads of the
calling process, and each job left ~9 of them behind for good (every Python operator's
output stream starts a flusher thread that is never stopped). Hundreds of such threads,
each waking for the GIL every second, made everything else in the process (streamlet's
own jobs, the caller's event loop) up to twenty times slower. The runner runs local
workers in processes of their own, which end with their job.
"""

from __future__ import annotations

import threading
import time

import pytest

from streamlet import StreamExecutionEnvironment

pytestmark = pytest.mark.slow


def _keyed_job() -> list[int]:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    stream = env.from_sequence(0, 99).key_by(lambda x: x % 3).reduce(lambda a, b: a + b)
    return list(stream.execute_and_collect(runner="flink"))


def _threads_left(before: set[threading.Thread]) -> list[str]:
    """The threads started since ``before`` that are still alive after a short grace (a
    thread that is ending is given time to end)."""
    deadline = time.monotonic() + 5
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left]
        time.sleep(0.05)


def test_local_jobs_leave_no_thread_behind() -> None:
    _keyed_job()  # the first job starts the JVM gateway and its threads, which stay
    before = set(threading.enumerate())
    for _ in range(2):
        assert len(_keyed_job()) == 100
    assert _threads_left(before) == []
