"""pytest plugin (registered through the ``pytest11`` entry point): fixtures for job tests.

``streamlet_env`` gives a fresh :class:`StreamExecutionEnvironment` per test. Works with
pytest-asyncio and with anyio's pytest plugin alike (the fixture itself is synchronous).
"""

from __future__ import annotations

import pytest

from .environment import StreamExecutionEnvironment

__all__ = ["streamlet_env"]


@pytest.fixture
def streamlet_env() -> StreamExecutionEnvironment:
    """A fresh environment at parallelism 1."""
    return StreamExecutionEnvironment.get_execution_environment()
