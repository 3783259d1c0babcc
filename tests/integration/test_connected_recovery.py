"""A two-input job through failovers: exactly-once end to end (issue 15).

Orders and payments meet in a keyed co-process that buffers the side that came first in keyed
state; barriers align across both inputs, so every checkpoint holds exactly the buffers of
the records before it on *both* inputs. Under seeded faults in the join and in the sink, the
committed pairs equal a failure-free run's: none lost, none twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlet import (
    FileSink,
    KeyedCoProcessFunction,
    RuntimeContext,
)
from streamlet.state import ListStateDescriptor
from streamlet.testing import TestingSource
from tests.helpers import FaultyRun

pytestmark = pytest.mark.anyio

KEYS = 7


class Match(KeyedCoProcessFunction):
    """Pairs the n-th order of a key with its n-th payment, whichever comes first."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.orders = runtime_context.get_list_state(ListStateDescriptor("orders"))
        self.payments = runtime_context.get_list_state(ListStateDescriptor("payments"))

    def process_element1(self, value: tuple[int, int], ctx: Any) -> Any:
        yield from self._arrive(value, self.orders, self.payments, first=True)

    def process_element2(self, value: tuple[int, int], ctx: Any) -> Any:
        yield from self._arrive(value, self.payments, self.orders, first=False)

    def _arrive(self, value: Any, mine: Any, other: Any, first: bool) -> Any:
        waiting = list(other.get())
        if waiting:
            other.update(waiting[1:])
            order, payment = (value, waiting[0]) if first else (waiting[0], value)
            yield f"{order[0]},{order[1]},{payment[1]}"
        else:
            mine.add(value)


def records(n: int, offset: int) -> list[Any]:
    """n records (key, id), a checkpoint awaited every 40 so that failures find some."""
    items: list[Any] = []
    for i in range(n):
        items.append((i % KEYS, offset + i))
        if i % 40 == 39:
            items.append(TestingSource.AWAIT_CHECKPOINT())
    return items


def expected(n: int) -> list[str]:
    return sorted(f"{i % KEYS},{i},{10_000 + i}" for i in range(n))


async def run(tmp_path: Path, n: int, seed: int | None) -> tuple[list[str], int]:
    faulty = FaultyRun(tmp_path / "out", seed, ["match", "sink"], max_record=n // 2)
    env = faulty.env
    orders = env.from_source(TestingSource(records(n, 0), batch_size=8)).uid("orders")
    payments = env.from_source(TestingSource(records(n, 10_000), batch_size=5)).uid("payments")
    (
        orders.key_by(lambda t: t[0])
        .connect(payments.key_by(lambda t: t[0]))
        .process(Match())
        .uid("match")
        .sink_to(FileSink(faulty.out))
        .uid("sink")
    )
    return await faulty.execute("match")


async def test_the_failure_free_join_is_the_reference(anyio_backend: str, tmp_path: Path) -> None:
    lines, restarts = await run(tmp_path, 400, None)
    assert restarts == 0
    assert sorted(lines) == expected(400)


@pytest.mark.parametrize("seed", range(4))
async def test_an_exactly_once_join_under_seeded_faults_equals_the_failure_free_run(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    lines, restarts = await run(tmp_path, 400, seed)
    assert restarts >= 1
    assert sorted(lines) == expected(400)  # nothing lost, nothing twice
