"""execute, execute_async and execute_and_collect in both forms: PyFlink's blocking calls
where no event loop runs (the job then on a loop of its own in a thread), awaitables inside
one."""

from __future__ import annotations

import threading

import pytest

from streamlet import JobExecutionError, JobStatus, StreamExecutionEnvironment
from streamlet.errors import JobCancelledError
from streamlet.job.threaded import ThreadedJobClient
from streamlet.testing import TestingSink


def test_execute_without_an_event_loop_runs_the_job_and_returns_its_result() -> None:
    # PyFlink's form, at the top level of a plain script: nothing to await.
    out: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 10).sink_to(TestingSink(out))
    result = env.execute("plain call")
    assert result.job_name == "plain call"
    assert sorted(out) == [10, 20, 30]


@pytest.mark.anyio
async def test_execute_inside_an_event_loop_is_awaited_in_the_calling_task() -> None:
    out: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x + 1).sink_to(TestingSink(out))
    pending = env.execute("awaited")
    assert out == []  # nothing ran before the await
    result = await pending
    assert result.job_name == "awaited"
    assert sorted(out) == [2, 3, 4]


def test_execute_async_without_an_event_loop_runs_the_job_in_a_thread_of_its_own() -> None:
    # PyFlink's form: a client at once, the job on a loop of its own in the background.
    out: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 2).sink_to(TestingSink(out))
    client = env.execute_async("in a thread")
    assert isinstance(client, ThreadedJobClient)
    assert client.get_job_id() == client.job_id
    result = client.wait(timeout=30)
    assert result.job_name == "in a thread" and sorted(out) == [2, 4, 6]
    assert client.get_job_status().result() is JobStatus.FINISHED and client.done
    assert client.get_job_execution_result().result() == result  # PyFlink's future form
    with pytest.raises(RuntimeError, match="has ended \\(FINISHED\\)"):
        client.trigger_savepoint("/nowhere").result()
    assert client.cancel().result() is None  # nothing to cancel any more


def job_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("streamlet ")]


def test_a_threaded_client_cancels_an_unbounded_job_from_the_calling_thread() -> None:
    seen = threading.Event()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_sequence(1, 10**15).add_sink(lambda x: seen.set())
    client = env.execute_async("forever")
    assert seen.wait(30)  # it runs without anyone awaiting it
    assert client.get_job_status().result() is JobStatus.RUNNING
    result = client.get_job_execution_result()
    assert not result.done()
    client.cancel().result(timeout=30)  # PyFlink's JobClient: calls return futures
    assert client.get_job_status().result() is JobStatus.CANCELED
    with pytest.raises(JobCancelledError, match="'forever' was cancelled"):
        result.result(timeout=30)
    with pytest.raises(JobCancelledError, match="'forever' was cancelled"):
        client.wait(timeout=30)
    assert job_threads() == []  # its loop and thread are gone


def test_execute_async_refuses_a_task_group_without_an_event_loop() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).sink_to(TestingSink([]))
    with pytest.raises(ValueError, match=r"task_group=.*needs a running event loop"):
        env.execute_async("no loop", task_group=object())


def test_collect_without_an_event_loop_is_a_closeable_iterator_as_in_pyflink() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    stream = env.from_collection(list(range(2_000))).map(lambda x: x + 1)
    with stream.execute_and_collect() as results:
        assert sorted(results) == list(range(1, 2_001))
    assert job_threads() == []


def test_collect_with_a_limit_without_an_event_loop_returns_a_list_and_stops_the_job() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    first = env.from_sequence(1, 10**15).execute_and_collect(limit=5)
    assert first == [1, 2, 3, 4, 5]
    assert job_threads() == []  # the unbounded job was stopped


def test_breaking_out_of_a_plain_for_loop_stops_the_job() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    seen = []
    for x in env.from_sequence(1, 10**15).execute_and_collect():
        seen.append(x)
        if x == 3:
            assert job_threads()  # the job runs while the loop reads
            break
    # The loop's iterator is dropped at the break, which closes it, as a generator's.
    assert seen == [1, 2, 3]
    assert job_threads() == []


def test_an_iterator_kept_after_a_break_runs_its_job_until_closed() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    with env.from_sequence(1, 10**15).execute_and_collect() as results:
        assert [next(results) for _ in range(3)] == [1, 2, 3]
        assert job_threads()
    assert job_threads() == []
    with pytest.raises(StopIteration):
        next(results)


def test_collect_without_an_event_loop_raises_the_jobs_failure_after_earlier_records() -> None:
    def fail_at_3(x: int) -> int:
        if x == 3:
            raise ValueError("boom at 3")
        return x

    env = StreamExecutionEnvironment.get_execution_environment()
    got: list[int] = []
    with pytest.raises(JobExecutionError) as failure:
        with env.from_collection([1, 2, 3, 4]).map(fail_at_3).execute_and_collect() as results:
            got.extend(results)
    assert isinstance(failure.value.__cause__, ValueError)
    assert got == [1, 2][: len(got)]
    assert job_threads() == []


@pytest.mark.anyio
async def test_collect_in_a_plain_for_loop_says_to_use_async_for() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    records = env.from_collection([1, 2, 3]).execute_and_collect()
    with pytest.raises(TypeError, match="async for"):
        iter(records)
    with pytest.raises(TypeError, match="async with"), records:
        pass
    assert [x async for x in records] == [1, 2, 3]  # the async forms still work after


@pytest.mark.anyio
async def test_execute_async_inside_an_event_loop_returns_a_running_client() -> None:
    out: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: -x).sink_to(TestingSink(out))
    client = await env.execute_async("background")
    result = await client.wait()
    assert result.job_name == "background"
    assert sorted(out) == [-3, -2, -1]
