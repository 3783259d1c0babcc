"""An interval join through failovers: exactly-once end to end (issue 15).

Two timestamped sources meet in an interval join whose buffers and cleanup timers are keyed
state; under seeded faults in the join and in the sink, the committed pairs equal the
brute-force join of the inputs (a failure-free run's output): none lost, none twice.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from streamlet import (
    Duration,
    FileSink,
    ProcessJoinFunction,
    WatermarkStrategy,
)
from streamlet.testing import TestingSource
from tests.helpers import FaultyRun

pytestmark = pytest.mark.anyio

KEYS = 5
OUT_OF_ORDER = 4
LOWER, UPPER = -6, 3


class Pair(ProcessJoinFunction):
    def process_element(self, left: Any, right: Any, ctx: Any) -> Any:
        yield f"{left[1]},{right[1]},{ctx.get_timestamp()}"


def records(n: int, name: str) -> list[Any]:
    """n records (key, id, ts), a checkpoint awaited every 40 so that failures find some."""
    rng = random.Random(name)
    items: list[Any] = []
    for i in range(n):
        items.append((rng.randrange(KEYS), f"{name}{i}", i + rng.randrange(OUT_OF_ORDER + 1)))
        if i % 40 == 39:
            items.append(TestingSource.AWAIT_CHECKPOINT())
    return items


def expected(n: int) -> list[str]:
    lefts = [r for r in records(n, "l") if isinstance(r, tuple)]
    rights = [r for r in records(n, "r") if isinstance(r, tuple)]
    return sorted(
        f"{a[1]},{b[1]},{max(a[2], b[2])}"
        for a in lefts
        for b in rights
        if a[0] == b[0] and LOWER <= b[2] - a[2] <= UPPER
    )


async def run(tmp_path: Path, n: int, seed: int | None) -> tuple[list[str], int]:
    faulty = FaultyRun(tmp_path / "out", seed, ["join", "sink"], max_record=n // 2)
    env = faulty.env
    env.get_config().set_auto_watermark_interval(5)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(OUT_OF_ORDER)
    ).with_timestamp_assigner(lambda r, _ts: r[2])
    lefts = env.from_source(TestingSource(records(n, "l"), batch_size=8), strategy).uid("lefts")
    rights = env.from_source(TestingSource(records(n, "r"), batch_size=5), strategy).uid("rights")
    (
        lefts.key_by(lambda r: r[0])
        .interval_join(rights.key_by(lambda r: r[0]))
        .between(LOWER, UPPER)
        .process(Pair())
        .uid("join")
        .sink_to(FileSink(faulty.out))
        .uid("sink")
    )
    return await faulty.execute("interval-join")


async def test_the_failure_free_interval_join_is_the_reference(
    anyio_backend: str, tmp_path: Path
) -> None:
    lines, restarts = await run(tmp_path, 300, None)
    assert restarts == 0
    assert sorted(lines) == expected(300)


@pytest.mark.parametrize("seed", range(4))
async def test_an_exactly_once_interval_join_under_seeded_faults_equals_the_failure_free_run(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    lines, restarts = await run(tmp_path, 300, seed)
    assert restarts >= 1
    assert sorted(lines) == expected(300)  # nothing lost, nothing twice
