"""What the Flink runner's tests share: one job on both runners, and extra Flink keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamlet import DataStream, StreamExecutionEnvironment


def both(
    build: Callable[[StreamExecutionEnvironment], DataStream], parallelism: int = 2
) -> list[list[Any]]:
    """Run ``build(env) -> stream`` on streamlet's runtime, then on Flink's local
    mini-cluster; return ``[local records, flink records]``."""
    results = []
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        stream = build(env)
        if runner == "local":
            with stream.execute_and_collect() as records:
                results.append(list(records))
        else:
            results.append(list(stream.execute_and_collect(runner="flink")))
    return results


def add_flink_keys(monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]) -> None:
    """Have every Flink job of the test run with ``keys`` added to the runner's
    configuration (small Python bundles, no Python-side state caches, ...)."""
    from streamlet.flink import translate

    configuration = translate.flink_configuration

    def with_keys(*args: Any, **kwargs: Any) -> dict[str, str]:
        return {**configuration(*args, **kwargs), **keys}

    monkeypatch.setattr(translate, "flink_configuration", with_keys)
