"""A failover on Flink: one injected failure, checkpointing on, exactly-once final results.

The source's position and the keyed sums are restored from the last checkpoint: with
PyFlink's own ``from_collection`` (re-read from the start) or ``sum`` (state renamed at every
open) the sums after the restart would be wrong.
"""

from __future__ import annotations

import os
import time

import pytest

from streamlet import RestartStrategies, StreamExecutionEnvironment

pytestmark = pytest.mark.slow

N = 20_000


class _FailOnce:
    """Fails at record ``at`` the first time (a marker file says it already did, across the
    Python worker processes of both attempts); slowed a little so checkpoints complete
    before the failure."""

    def __init__(self, marker: str, at: int) -> None:
        self.marker = marker
        self.at = at

    def __call__(self, value: int) -> tuple[int, int]:
        time.sleep(0.0001)
        if value == self.at and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write("failed once")
            raise RuntimeError("injected failure")
        return (value % 7, value)


def test_failover_keeps_exactly_once_sums(tmp_path) -> None:
    marker = str(tmp_path / "failed")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.enable_checkpointing(100)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    sums = (
        env.from_collection(list(range(1, N + 1)))
        .map(_FailOnce(marker, at=3 * N // 4))
        .key_by(lambda t: t[0])
        .sum(1)
        .uid("sums")
    )
    records = sums.execute_and_collect(runner="flink")
    assert os.path.exists(marker), "the failure was not injected"
    expected = {k: sum(v for v in range(1, N + 1) if v % 7 == k) for k in range(7)}
    final = {k: v for k, v in records}
    assert final == expected
    assert len(records) == N  # each record's update delivered exactly once
