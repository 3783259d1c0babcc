"""streamlet.testing.pytest_plugin: the fixtures under anyio's plugin, on asyncio and trio.

(tests/engine/testing/test_testing.py uses the same fixtures under pytest-asyncio.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.checkpoints.storage import MemoryCheckpointStorage
from streamlet.testing import TestingSource, run_and_collect, run_and_collect_result

pytestmark = pytest.mark.anyio

EnvFactory = Callable[..., StreamExecutionEnvironment]


def test_plugin_is_registered_by_its_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("streamlet")


def test_streamlet_env_is_fresh_at_parallelism_one(
    streamlet_env: StreamExecutionEnvironment, checkpoint_storage: MemoryCheckpointStorage
) -> None:
    assert streamlet_env.get_parallelism() == 1
    assert streamlet_env.get_checkpoint_interval() == -1  # checkpointing stays off
    assert streamlet_env.get_checkpoint_config().storage is checkpoint_storage


async def test_streamlet_env_runs_a_job(streamlet_env: StreamExecutionEnvironment) -> None:
    stream = streamlet_env.from_source(TestingSource([1, 2, 3])).map(lambda x: x * x)
    assert await run_and_collect(stream) == [1, 4, 9]


async def test_checkpointing_needs_no_directory(
    streamlet_env: StreamExecutionEnvironment, checkpoint_storage: MemoryCheckpointStorage
) -> None:
    streamlet_env.enable_checkpointing(10)
    stream = streamlet_env.from_collection(range(20)).uid("source")
    records, result = await run_and_collect_result(stream)
    assert records == list(range(20)) and result.checkpoints_completed >= 1
    assert any(operation == "metadata" for operation, _, _ in checkpoint_storage.operations)


async def test_env_factory_shares_the_storage_to_restore_at_another_parallelism(
    streamlet_env_factory: EnvFactory,
) -> None:
    source = TestingSource(["a", "b", "a", TestingSource.EOF(), "a", "b", "c"])
    outputs = []
    for parallelism in (1, 2):
        env = streamlet_env_factory(parallelism)
        env.enable_checkpointing(10)
        stream = (
            env.from_source(source)
            .uid("source")
            .key_by(lambda word: word)
            .reduce(lambda a, b: a + b)
            .uid("concat")
        )
        outputs.append(sorted(await run_and_collect(stream, restore="latest")))
    assert outputs == [["a", "aa", "b"], ["aaa", "bb", "c"]]


def test_each_test_gets_its_own_storage(
    checkpoint_storage: MemoryCheckpointStorage, streamlet_env_factory: EnvFactory
) -> None:
    assert checkpoint_storage.operations == []
    first, second = streamlet_env_factory(), streamlet_env_factory(3)
    assert first is not second and second.get_parallelism() == 3
    assert first.get_checkpoint_config().storage is second.get_checkpoint_config().storage
