from __future__ import annotations

import logging
import random

import pytest

from streamlet.job.restart import (
    ExponentialDelayRestartStrategy,
    FailureRateRestartStrategy,
    FixedDelayRestartStrategy,
    NoRestartStrategy,
    RestartStrategies,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_restart_gives_up_at_once() -> None:
    assert NoRestartStrategy().on_failure() is None
    assert isinstance(RestartStrategies.no_restart(), NoRestartStrategy)


def test_fixed_delay_allows_the_configured_attempts() -> None:
    strategy = RestartStrategies.fixed_delay_restart(2, 250)
    assert [strategy.on_failure() for _ in range(3)] == [250.0, 250.0, None]


def test_exponential_delay_grows_caps_and_resets_after_quiet_time() -> None:
    clock = Clock()
    strategy = ExponentialDelayRestartStrategy(
        initial_backoff_ms=100,
        max_backoff_ms=500,
        backoff_multiplier=2,
        reset_backoff_threshold_ms=10_000,
        jitter_factor=0,
        clock=clock,
    )
    delays = []
    for _ in range(5):
        delays.append(strategy.on_failure())
        clock.now += 1
    assert delays == [100, 200, 400, 500, 500]
    clock.now += 10  # more than 10 s without failure: back to the initial backoff
    assert strategy.on_failure() == 100


def test_exponential_delay_jitter_stays_within_the_factor() -> None:
    strategy = ExponentialDelayRestartStrategy(
        initial_backoff_ms=1000, jitter_factor=0.1, rng=random.Random(3), clock=Clock()
    )
    delay = strategy.on_failure()
    assert delay is not None and 900 <= delay <= 1100


def test_exponential_delay_defaults_follow_flink() -> None:
    strategy = RestartStrategies.exponential_delay_restart()
    assert (strategy.initial_backoff_ms, strategy.max_backoff_ms) == (1000, 60_000)
    assert (strategy.backoff_multiplier, strategy.jitter_factor) == (1.5, 0.1)
    assert strategy.reset_backoff_threshold_ms == 3_600_000


def test_failure_rate_gives_up_when_too_many_failures_fall_in_the_interval() -> None:
    clock = Clock()
    strategy = FailureRateRestartStrategy(2, 1000, 50, clock=clock)
    assert strategy.on_failure() == 50
    clock.now = 0.5
    assert strategy.on_failure() == 50
    clock.now = 0.9
    assert strategy.on_failure() is None  # third failure within one second


def test_failure_rate_forgets_failures_outside_the_interval() -> None:
    clock = Clock()
    strategy = FailureRateRestartStrategy(1, 1000, 0, clock=clock)
    assert strategy.on_failure() == 0
    clock.now = 1.5
    assert strategy.on_failure() == 0


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: FixedDelayRestartStrategy(-1, 0),
            r"^restart_attempts must be an int >= 0, got -1$",
        ),
        (
            lambda: FixedDelayRestartStrategy(1, -5),
            r"^delay_between_attempts must be a number >= 0, got -5$",
        ),
        (
            lambda: FailureRateRestartStrategy(0, 10, 0),
            r"^failure_rate must be an int >= 1, got 0$",
        ),
        (
            lambda: ExponentialDelayRestartStrategy(initial_backoff_ms=10, max_backoff_ms=5),
            r"^max_backoff must be a number >= 10, got 5$",
        ),
        (
            lambda: ExponentialDelayRestartStrategy(jitter_factor=2),
            r"^jitter_factor must be in \[0, 1\], got 2$",
        ),
    ],
)
def test_invalid_options_are_refused_naming_the_value(factory, message) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.asyncio
async def test_default_strategy_depends_on_checkpointing() -> None:
    from streamlet import StreamExecutionEnvironment
    from streamlet.job.runner import JobRunner

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).print()
    runner = JobRunner(env._graph, env._job_config(), "x")
    assert isinstance(runner.restart_strategy, NoRestartStrategy)
    env.enable_checkpointing(100)
    runner = JobRunner(env._graph, env._job_config(), "x")
    assert isinstance(runner.restart_strategy, ExponentialDelayRestartStrategy)


def test_set_restart_strategy_refuses_other_objects() -> None:
    from streamlet import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(TypeError, match="set_restart_strategy"):
        env.set_restart_strategy("fixed")  # type: ignore[arg-type]


# --- the log lines of a failing job, under each strategy ---

FAILURE = "job 'x' failed in operator 'Map' (uid 'boom'), subtask 1/1: ValueError: bad record 1"


def _fail_job(strategy: object, caplog: pytest.LogCaptureFixture) -> list[str]:
    from streamlet import StreamExecutionEnvironment
    from streamlet.errors import JobExecutionError

    def boom(value: int) -> int:
        raise ValueError(f"bad record {value}")

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_restart_strategy(strategy)  # type: ignore[arg-type]
    env.from_collection([1]).map(boom).uid("boom").print()
    with caplog.at_level(logging.WARNING, logger="streamlet.job"), pytest.raises(JobExecutionError):
        env.execute("x")
    return [r.getMessage() for r in caplog.records if r.name == "streamlet.job"]


@pytest.mark.parametrize(
    ("strategy", "restarted", "gave_up"),
    [
        (
            RestartStrategies.no_restart(),
            [],
            "the restart strategy is no restart, so the job fails at its first failure "
            "(set one with env.set_restart_strategy(RestartStrategies...), or enable "
            "checkpointing for Flink's default, to restart on failures)",
        ),
        (
            RestartStrategies.fixed_delay_restart(1, 0),
            ["restart strategy fixed delay (1 attempt, 0 ms) restarts it in 0 ms (restart 1)"],
            "restart strategy fixed delay (1 attempt, 0 ms) allows no further restart",
        ),
        (
            RestartStrategies.failure_rate_restart(1, 60_000, 0),
            [
                "restart strategy failure rate (at most 1 failure per 60000 ms, delay 0 ms) "
                "restarts it in 0 ms (restart 1)"
            ],
            "restart strategy failure rate (at most 1 failure per 60000 ms, delay 0 ms) "
            "allows no further restart",
        ),
        (
            ExponentialDelayRestartStrategy(0, 0, jitter_factor=0, attempts_before_reset_backoff=1),
            [
                "restart strategy exponential delay (0 ms to 0 ms, x1.5, 1 attempt before a "
                "reset) restarts it in 0 ms (restart 1)"
            ],
            "restart strategy exponential delay (0 ms to 0 ms, x1.5, 1 attempt before a "
            "reset) allows no further restart",
        ),
    ],
    ids=["none", "fixed-delay", "failure-rate", "exponential"],
)
def test_each_log_line_says_once_what_failed_and_what_the_strategy_decided(
    strategy: object, restarted: list[str], gave_up: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _fail_job(strategy, caplog)
    assert lines == [f"{FAILURE}; {decision}" for decision in [*restarted, gave_up]]
    for line in lines:
        assert line.count("failed") == 1, line
