"""``execute_and_collect(runner="flink")`` has the local form's shapes, so a program that
collects runs unchanged on either runner."""

from __future__ import annotations

import pytest

from streamlet import StreamExecutionEnvironment

pytestmark = pytest.mark.slow


def _squares(env: StreamExecutionEnvironment):
    return env.from_sequence(1, 5).map(lambda x: x * x)


def test_the_blocking_form_is_a_context_manager_and_a_list() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    with _squares(env).execute_and_collect(runner="flink") as results:  # PyFlink's form
        assert sorted(results) == [1, 4, 9, 16, 25]
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    assert _squares(env).execute_and_collect(runner="flink", limit=2) == [1, 4]


@pytest.mark.asyncio
async def test_the_async_forms_inside_an_event_loop() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    async with _squares(env).execute_and_collect(runner="flink") as results:
        got = [x async for x in results]
    assert sorted(got) == [1, 4, 9, 16, 25]
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    assert sorted(await _squares(env).execute_and_collect(runner="flink")) == [1, 4, 9, 16, 25]
