from __future__ import annotations

import pytest

from streamlet.checkpoints import FileCheckpointStorage, MemoryCheckpointStorage


@pytest.fixture(params=["memory", "file"])
def storage(request, tmp_path):
    """Every storage implementation, for the shared contract tests."""
    if request.param == "memory":
        return MemoryCheckpointStorage("job")
    return FileCheckpointStorage(tmp_path / "base", "job")
