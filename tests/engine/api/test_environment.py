"""StreamExecutionEnvironment.execute in both forms: a plain call and an await."""

from __future__ import annotations

import pytest

from streamlet import StreamExecutionEnvironment
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


def test_execute_async_without_an_event_loop_refuses_instead_of_doing_nothing() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).sink_to(TestingSink([]))
    with pytest.raises(RuntimeError, match=r"needs a running event loop.*env\.execute"):
        env.execute_async("no loop")


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
