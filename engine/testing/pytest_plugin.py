"""pytest plugin (registered through the ``pytest11`` entry point): fixtures for job tests.

Installed with the package, so a test suite gets these fixtures without a ``conftest.py``:

- ``checkpoint_storage``: a fresh in-memory checkpoint storage, shared by every environment
  the test builds with the fixtures below, so a later run can ``restore="latest"``;
- ``streamlet_env``: a fresh :class:`~streamlet.StreamExecutionEnvironment` at parallelism 1
  whose checkpoints go to ``checkpoint_storage`` (``enable_checkpointing(ms)`` just works,
  no directory needed);
- ``streamlet_env_factory``: ``make(parallelism=1)`` builds more such environments, to run a
  job, then run it again restored.

The fixtures are synchronous, so they work under pytest-asyncio and anyio's pytest plugin
alike (on asyncio and trio).

Example (a test module)::

    import pytest
    from streamlet.testing import TestingSource, run_and_collect

    @pytest.mark.anyio
    async def test_double(streamlet_env) -> None:
        stream = streamlet_env.from_source(TestingSource([1, 2])).map(lambda x: 2 * x)
        assert await run_and_collect(stream) == [2, 4]
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamlet.api.environment import StreamExecutionEnvironment
from streamlet.checkpoints.storage import MemoryCheckpointStorage

__all__ = ["checkpoint_storage", "streamlet_env", "streamlet_env_factory"]

EnvFactory = Callable[..., StreamExecutionEnvironment]
"""``make(parallelism=1) -> StreamExecutionEnvironment``, as ``streamlet_env_factory`` gives."""


@pytest.fixture
def checkpoint_storage() -> MemoryCheckpointStorage:
    """A fresh in-memory checkpoint storage for this test (``storage.operations`` lists
    every write and removal; ``storage.write_hook`` injects storage failures)."""
    return MemoryCheckpointStorage("test")


@pytest.fixture
def streamlet_env_factory(checkpoint_storage: MemoryCheckpointStorage) -> EnvFactory:
    """Return ``make(parallelism=1)``: a fresh environment checkpointing to
    ``checkpoint_storage`` (checkpointing itself stays off until ``enable_checkpointing``)."""

    def make(parallelism: int = 1) -> StreamExecutionEnvironment:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        env.get_checkpoint_config().set_checkpoint_storage(checkpoint_storage)
        return env

    return make


@pytest.fixture
def streamlet_env(streamlet_env_factory: EnvFactory) -> StreamExecutionEnvironment:
    """A fresh environment at parallelism 1, checkpointing to ``checkpoint_storage``."""
    return streamlet_env_factory()
