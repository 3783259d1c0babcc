"""streamlet.testing.faults: a fault that never fires is reported (a warning when the job
ends, naming the fault and why) and ``assert_all_fired()`` fails a test on it."""

from __future__ import annotations

import logging

import pytest

from streamlet import StreamExecutionEnvironment
from streamlet.errors import JobExecutionError
from streamlet.job.restart import RestartStrategies
from streamlet.testing import FaultInjector, inject_faults


def _run(injector: FaultInjector, caplog: pytest.LogCaptureFixture, **options: int) -> list[str]:
    """Run a 5-record job (map uid "double", parallelism 2) with ``injector``; return the
    warnings of ``streamlet.testing``."""
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    if options.get("checkpoint"):
        env.enable_checkpointing(options["checkpoint"])
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    env.from_collection([1, 2, 3, 4, 5]).map(lambda x: 2 * x).uid("double").add_sink(lambda _: None)
    inject_faults(env, injector)
    with caplog.at_level(logging.WARNING, logger="streamlet.testing"):
        env.execute("faults")
    return [r.getMessage() for r in caplog.records if r.name == "streamlet.testing"]


@pytest.mark.parametrize(
    ("injector", "call", "why"),
    [
        (
            FaultInjector().fail_record("dobule", 1),
            "fail_record('dobule', at=1, subtask=0)",
            "the job has no operator with uid or name 'dobule' (sources are never wrapped; "
            "put a map after one); its operators' uids and names:",
        ),
        (
            FaultInjector().fail_record("double", 1, subtask=2),
            "fail_record('double', at=1, subtask=2)",
            "'double' has no subtask 2 (0-based; it ran subtasks 0..1): lower subtask or "
            "raise parallelism",
        ),
        (
            FaultInjector().fail_record("double", 99),
            "fail_record('double', at=99, subtask=0)",
            "its subtask 0 processed at most ",
        ),
        (
            FaultInjector().fail_snapshot("double", 1),
            "fail_snapshot('double', at=1, subtask=0)",
            "its subtask 0 took at most 0 snapshot(s) in an attempt, fewer than at=1: is "
            "checkpointing enabled",
        ),
        (
            FaultInjector().fail_restore("double"),
            "fail_restore('double', subtask=0)",
            "it never opened restored from a checkpoint",
        ),
    ],
    ids=["unknown-operator", "no-such-subtask", "too-few-records", "no-checkpoint", "restore"],
)
def test_a_fault_that_never_fired_is_reported(
    injector: FaultInjector, call: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    warnings = _run(injector, caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"job 'faults' ended but the injected fault {call} did not fire")
    assert why in warnings[0], warnings[0]
    with pytest.raises(AssertionError, match="1 injected fault\\(s\\) did not fire") as failed:
        injector.assert_all_fired()
    assert call in str(failed.value) and why in str(failed.value)


def test_too_few_records_says_how_many_the_subtask_processed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    injector = FaultInjector().fail_record("double", 99).fail_record("double", 99, subtask=1)
    _run(injector, caplog)
    reasons = sorted(why for _, why in injector.not_fired())
    # The 5 records are spread over the two subtasks; each reason says how many it got.
    counts = [int(why.split("processed at most ")[1].split()[0]) for why in reasons]
    assert sum(counts) == 5, reasons


def test_faults_that_fired_are_quiet_and_pass(caplog: pytest.LogCaptureFixture) -> None:
    injector = FaultInjector().fail_record("double", 1)
    assert _run(injector, caplog) == []
    assert len(injector.fired) == 1
    injector.assert_all_fired()


def test_the_warning_names_only_the_faults_that_did_not_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    injector = FaultInjector().fail_record("double", 1).fail_record("missing", 1)
    warnings = _run(injector, caplog)
    assert len(warnings) == 1 and "'missing'" in warnings[0]
    with pytest.raises(AssertionError) as failed:
        injector.assert_all_fired()
    assert "fail_record('missing'" in str(failed.value)
    assert "fail_record('double'" not in str(failed.value)


def test_a_failed_job_also_reports_faults_that_did_not_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).map(lambda x: x).uid("m").add_sink(lambda _: None)
    injector = inject_faults(env, FaultInjector().fail_record("m", 1).fail_record("n", 1))
    with caplog.at_level(logging.WARNING, logger="streamlet.testing"):
        with pytest.raises(JobExecutionError):
            env.execute("no-restart")
    assert [f.operator for f, _ in injector.not_fired()] == ["n"]
    assert any("'n'" in r.getMessage() for r in caplog.records if r.name == "streamlet.testing")


def test_before_any_job_ran() -> None:
    with pytest.raises(AssertionError, match="no job has run with this injector yet"):
        FaultInjector().fail_record("m", 1).assert_all_fired()
