"""Shared fixtures. Async tests pick one runner per module: pytest-asyncio (strict mode,
``pytestmark = pytest.mark.asyncio``) or anyio's plugin (``pytest.mark.anyio``) for modules
that must also run on trio."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param
