"""The Flink runner's tests need PyFlink (the ``streamlet[flink]`` extra) and Java: without
them every test here is skipped with the reason. All tests of one pytest process share
PyFlink's one JVM gateway."""

from __future__ import annotations

import importlib.util
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    reason = None
    if importlib.util.find_spec("pyflink") is None:
        reason = "needs PyFlink: pip install -e '.[flink]'"
    elif shutil.which("java") is None:
        reason = "needs Java 11+ on PATH for PyFlink"
    for item in items:
        if "tests/flink/" not in str(item.fspath).replace("\\", "/"):
            continue
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        # PyFlink's JVM gateway leaves its pipes to the garbage collector, and its
        # dependencies (apache-beam, httplib2) use deprecated APIs at import.
        item.add_marker(pytest.mark.filterwarnings("ignore::ResourceWarning"))
        item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning"))
        item.add_marker(pytest.mark.filterwarnings("ignore::FutureWarning"))
        item.add_marker(
            pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
        )
