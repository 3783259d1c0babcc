"""The collector tuning of a running job (``streamlet.job.gc_policy``): in force while a job
runs, state frozen after a restore and after completed checkpoints, and everything put back
when the last job ends."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamlet import MapFunction, RuntimeContext, StreamExecutionEnvironment
from streamlet.job import gc_policy
from streamlet.job.gc_policy import JOB_GEN0_THRESHOLD


@pytest.fixture(autouse=True)
def default_collector() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    yield
    gc.set_threshold(*saved)


class Observe(MapFunction):
    """Records what the collector looks like from inside the job."""

    seen: dict[str, Any] = {}

    def open(self, runtime_context: RuntimeContext) -> None:
        Observe.seen["open_frozen"] = gc.get_freeze_count()

    def map(self, value: Any) -> Any:
        Observe.seen["threshold"] = gc.get_threshold()
        return value


@pytest.mark.asyncio
async def test_a_running_job_raises_gen0_and_puts_it_back() -> None:
    Observe.seen = {}
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.from_sequence(1, 100).map(Observe()).print()
    await env.execute("gc-threshold")
    assert Observe.seen["threshold"] == (JOB_GEN0_THRESHOLD, 10, 10)
    assert Observe.seen["open_frozen"] > 0  # frozen once the state was deployed
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.asyncio
async def test_a_completed_checkpoint_freezes_what_is_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes: list[int] = []
    real_freeze = gc.freeze

    def counting_freeze() -> None:
        freezes.append(1)
        real_freeze()

    monkeypatch.setattr(gc_policy.gc, "freeze", counting_freeze)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path)
    env.from_sequence(1, 100).map(Observe()).print()
    result = await env.execute("gc-freeze")
    assert result.checkpoints_completed >= 1
    # One freeze after the deployment, one per completed checkpoint.
    assert len(freezes) == 1 + result.checkpoints_completed
    assert gc.get_freeze_count() == 0


def test_an_application_that_disabled_collection_keeps_it_so() -> None:
    gc.set_threshold(0, 10, 10)
    with gc_policy.job_running():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_side_by_side_jobs_restore_when_the_last_one_ends() -> None:
    with gc_policy.job_running():
        with gc_policy.job_running():
            assert gc.get_threshold()[0] == JOB_GEN0_THRESHOLD
        assert gc.get_threshold()[0] == JOB_GEN0_THRESHOLD
        gc_policy.after_checkpoint()
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_restarted_attempt_collects_the_frozen_garbage_of_the_failed_one() -> None:
    with gc_policy.job_running():
        cycle = _Cycle()
        ref = weakref.ref(cycle)
        gc_policy.after_restore(restarted=False)  # the cycle is alive: frozen
        del cycle
        gc.collect()
        assert ref() is not None  # frozen garbage is not collected...
        gc_policy.after_restore(restarted=True)
        assert ref() is None  # ...until a restart unfreezes and collects it


def test_outside_a_job_nothing_is_frozen() -> None:
    gc_policy.after_checkpoint()
    gc_policy.after_restore(restarted=True)
    assert gc.get_freeze_count() == 0
