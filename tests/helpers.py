"""Small job helpers shared by the tests (users get engine.testing for the same)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from streamlet import DataStream, StreamExecutionEnvironment

PARALLELISMS = [1, 2, 4, 8]


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


async def run_and_collect(env: StreamExecutionEnvironment, stream: DataStream) -> list[Any]:
    out: list[Any] = []
    stream.add_sink(out.append)
    await env.execute("test job")
    return out


def same_multiset(a: list[Any], b: list[Any]) -> bool:
    return Counter(map(repr, a)) == Counter(map(repr, b))
