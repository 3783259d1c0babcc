from __future__ import annotations

import gc
import warnings
from typing import Any

import anyio
import pytest

from streamlet import JobCancelledError, JobExecutionError, JobStatus
from streamlet.operators.sources.base import Source, SourceReader
from tests.helpers import env_with, run_and_collect

pytestmark = pytest.mark.asyncio


class Boom(Exception):
    pass


def _fail_at(n: int):
    def fn(x: int) -> int:
        if x == n:
            raise Boom(f"bad record {x}")
        return x

    return fn


async def test_user_exception_fails_the_job_naming_operator_subtask_and_cause() -> None:
    env = env_with(4)
    stream = env.from_sequence(1, 10_000).map(_fail_at(5000)).name("Checker").uid("checker")
    with pytest.raises(JobExecutionError) as info:
        await run_and_collect(env, stream)
    error = info.value
    assert isinstance(error.__cause__, Boom)
    assert error.operator_name == "Checker"
    assert error.operator_uid == "checker"
    assert error.parallelism == 4
    assert 0 <= error.subtask_index < 4
    text = str(error)
    assert "'Checker' (uid 'checker')" in text
    assert f"subtask {error.subtask_index + 1}/4" in text
    assert "Boom: bad record 5000" in text


async def test_failure_cancels_every_other_subtask_and_leaves_nothing_open() -> None:
    env = env_with(2)
    finished = []

    async def slow(x: int) -> int:
        await anyio.sleep(10)  # would hang the job if not cancelled
        finished.append(x)
        return x

    a = env.from_sequence(1, 10).map(slow)
    b = env.from_collection([1, 2, 3]).map(_fail_at(2))
    with anyio.fail_after(5), pytest.raises(JobExecutionError):
        await run_and_collect(env, a.union(b))
    assert finished == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()


async def test_failure_in_open_names_the_operator() -> None:
    class BadOpen:
        def open(self, ctx: object) -> None:
            raise RuntimeError("cannot connect")

        def map(self, x: int) -> int:
            return x

    env = env_with(1)
    with pytest.raises(JobExecutionError, match=r"'Map'.*subtask 1/1") as info:
        await run_and_collect(env, env.from_collection([1]).map(BadOpen()))
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_failure_in_a_sink_fails_the_job() -> None:
    def sink(x: int) -> None:
        raise ValueError("disk on fire")

    env = env_with(2)
    env.from_sequence(1, 10).add_sink(sink)
    with pytest.raises(JobExecutionError, match="'Sink'") as info:
        await env.execute("sink fails")
    assert isinstance(info.value.__cause__, ValueError)


async def test_cancelling_the_awaiting_task_cancels_the_job() -> None:
    env = env_with(2)
    closed = []

    class Forever:
        async def map(self, x: int) -> int:
            await anyio.sleep(3600)
            return x

        def close(self) -> None:
            closed.append(True)

    env.from_sequence(1, 100).map(Forever()).print()
    with anyio.move_on_after(0.2) as scope:
        await env.execute("forever")
    assert scope.cancelled_caught
    assert closed == [True, True]


async def test_job_client_cancel() -> None:
    env = env_with(2)

    running = anyio.Event()

    async def slow(x: int) -> int:
        running.set()
        await anyio.sleep(3600)
        return x

    env.from_sequence(1, 100).map(slow).print()
    client = await env.execute_async("to cancel")
    await running.wait()
    assert client.status is JobStatus.RUNNING
    await client.cancel()
    assert client.status is JobStatus.CANCELED  # type: ignore[comparison-overlap]  # it changed
    with pytest.raises(JobCancelledError):
        await client.wait()


async def test_job_client_wait_returns_the_result() -> None:
    env = env_with(2)
    out: list[int] = []
    env.from_sequence(1, 100).add_sink(out.append)
    client = await env.execute_async("quick")
    result = await client.wait()
    assert client.status is JobStatus.FINISHED
    assert result.job_name == "quick"
    assert sorted(out) == list(range(1, 101))


async def test_failure_in_a_job_with_a_push_source_raises_job_execution_error() -> None:
    # Regression: raised inside the sources' sessions, the failure came out wrapped in an
    # exception group.
    from streamlet import PushSource

    source = PushSource()
    await source.push(0)
    source.end()
    env = env_with(1)
    env.from_source(source).map(lambda x: 1 // x).print()
    with pytest.raises(JobExecutionError) as info:
        await env.execute("push fails")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_cancel_right_after_execute_async_ends_canceled() -> None:
    # Regression: the job set RUNNING after the cancel arrived and ended as FAILED.
    env = env_with(1)

    async def slow(x: int) -> int:
        await anyio.sleep(3600)
        return x

    env.from_sequence(1, 10).map(slow).print()
    client = await env.execute_async("cancel at once")
    await client.cancel()
    assert client.status is JobStatus.CANCELED


class _FailingAfterRecords(Source[int]):
    """Each split's reader returns two batches, then raises ``Boom``."""

    name = "Failing Source"

    def create_splits(self, parallelism: int) -> list[Any]:
        return list(range(parallelism))

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[int]:
        return _FailingReader(split)


class _FailingReader(SourceReader[int]):
    def __init__(self, split: int) -> None:
        self.batches = [[split * 100 + i for i in range(3)], [split * 100 + 3]]
        self.returned = 0

    async def read_batch(self, max_records: int) -> list[int] | None:
        if self.batches:
            batch = self.batches.pop(0)
            self.returned += len(batch)
            return batch
        raise Boom("reader broke")

    def position(self) -> Any:
        return self.returned


@pytest.mark.parametrize("parallelism", [1, 2])
async def test_records_a_reader_returned_before_it_raised_reach_the_sink(parallelism: int) -> None:
    # The fetcher reads ahead; its failure used to cancel the subtask loop while the
    # batches before it were still in the channel or inside an awaiting step.
    got: list[int] = []

    async def enrich(x: int) -> int:
        for _ in range(3):
            await anyio.sleep(0)
        return x

    env = env_with(parallelism)
    env.from_source(_FailingAfterRecords()).uid("failing").map(enrich).add_sink(got.append)
    with anyio.fail_after(10), pytest.raises(JobExecutionError) as info:
        await env.execute("reader fails")
    assert sorted(got) == sorted(s * 100 + i for s in range(parallelism) for i in range(4))
    assert isinstance(info.value.__cause__, Boom)
    assert info.value.operator_uid == "failing"


def test_a_failure_of_the_whole_job_names_the_job_and_chains_the_cause() -> None:
    cause = RuntimeError("storage went away")
    error = JobExecutionError.of_job("nightly", cause, attempt=2)
    assert error.__cause__ is cause
    assert error.attempt == 2 and error.operator_uid == ""
    assert str(error) == "job 'nightly' failed: RuntimeError: storage went away"
