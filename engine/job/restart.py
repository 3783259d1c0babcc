"""Restart strategies: whether, and after how long, a failed job restarts (Flink's names).

A strategy is a small policy object asked once per failure. It answers with the delay
before the restart, or ``None`` when the job must fail for good. Time comes from an injected
clock, so the policies are tested without waiting.

Defaults follow Flink (1.19+): no restart without checkpointing; with checkpointing,
exponential delay (initial 1 s, max 60 s, multiplier 1.5, reset after 1 h without failure,
jitter 10 %, unlimited attempts).
"""

from __future__ import annotations

import math
import random
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

from streamlet.operators.time import to_millis

__all__ = [
    "ExponentialDelayRestartStrategy",
    "FailureRateRestartStrategy",
    "FixedDelayRestartStrategy",
    "NoRestartStrategy",
    "RestartStrategies",
    "RestartStrategy",
]

Clock = Callable[[], float]
"""Monotonic seconds."""


def _check(name: str, value: float, minimum: float, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value!r}")


class RestartStrategy(ABC):
    """Decides, per failure, the delay before restarting (ms), or None to give up."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock

    @abstractmethod
    def on_failure(self) -> float | None:
        """Record a failure now; return the delay before restarting in ms, or None."""

    def describe(self) -> str:
        """A few words for log lines: the strategy and its settings, e.g.
        ``fixed delay (3 attempts, 200 ms)``."""
        return type(self).__name__


class NoRestartStrategy(RestartStrategy):
    """Never restart: the first failure fails the job."""

    def on_failure(self) -> float | None:
        return None

    def describe(self) -> str:
        return "no restart"


class FixedDelayRestartStrategy(RestartStrategy):
    """Restart up to ``restart_attempts`` times, waiting ``delay_ms`` before each."""

    def __init__(self, restart_attempts: int, delay_ms: float, clock: Clock = time.monotonic):
        super().__init__(clock)
        _check("restart_attempts", restart_attempts, 0, integer=True)
        _check("delay_between_attempts", delay_ms, 0)
        self.restart_attempts = restart_attempts
        self.delay_ms = float(delay_ms)
        self.failures = 0

    def on_failure(self) -> float | None:
        self.failures += 1
        if self.failures > self.restart_attempts:
            return None
        return self.delay_ms

    def describe(self) -> str:
        attempts = "attempt" if self.restart_attempts == 1 else "attempts"
        return f"fixed delay ({self.restart_attempts} {attempts}, {self.delay_ms:g} ms)"


class ExponentialDelayRestartStrategy(RestartStrategy):
    """Restart with a growing delay; the backoff resets after a quiet period.

    The delay starts at ``initial_backoff_ms`` and is multiplied by ``backoff_multiplier``
    after every failure, up to ``max_backoff_ms``, with up to ``jitter_factor`` of random
    jitter either way. A failure more than ``reset_backoff_threshold_ms`` after the previous
    one starts over from the initial backoff. ``attempts_before_reset_backoff`` bounds how
    many restarts happen without such a reset (unlimited by default).
    """

    def __init__(
        self,
        initial_backoff_ms: float = 1000,
        max_backoff_ms: float = 60_000,
        backoff_multiplier: float = 1.5,
        reset_backoff_threshold_ms: float = 3_600_000,
        jitter_factor: float = 0.1,
        attempts_before_reset_backoff: float = math.inf,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(clock)
        _check("initial_backoff", initial_backoff_ms, 0)
        _check("max_backoff", max_backoff_ms, initial_backoff_ms)
        _check("backoff_multiplier", backoff_multiplier, 1)
        _check("reset_backoff_threshold", reset_backoff_threshold_ms, 0)
        if not 0 <= jitter_factor <= 1:
            raise ValueError(f"jitter_factor must be in [0, 1], got {jitter_factor!r}")
        _check("attempts_before_reset_backoff", attempts_before_reset_backoff, 1)
        self.initial_backoff_ms = float(initial_backoff_ms)
        self.max_backoff_ms = float(max_backoff_ms)
        self.backoff_multiplier = float(backoff_multiplier)
        self.reset_backoff_threshold_ms = float(reset_backoff_threshold_ms)
        self.jitter_factor = float(jitter_factor)
        self.attempts_before_reset_backoff = attempts_before_reset_backoff
        self._rng = rng or random.Random()
        self._backoff_ms = self.initial_backoff_ms
        self._attempts = 0
        self._last_failure_s: float | None = None

    def on_failure(self) -> float | None:
        now = self._clock()
        last = self._last_failure_s
        if last is not None and (now - last) * 1000 >= self.reset_backoff_threshold_ms:
            self._backoff_ms = self.initial_backoff_ms
            self._attempts = 0
        self._last_failure_s = now
        self._attempts += 1
        if self._attempts > self.attempts_before_reset_backoff:
            return None
        delay = self._backoff_ms
        self._backoff_ms = min(self._backoff_ms * self.backoff_multiplier, self.max_backoff_ms)
        if self.jitter_factor:
            delay += delay * self.jitter_factor * self._rng.uniform(-1, 1)
        return max(0.0, min(delay, self.max_backoff_ms))

    def describe(self) -> str:
        limit = self.attempts_before_reset_backoff
        plural = "" if limit == 1 else "s"
        attempts = "" if limit == math.inf else f", {limit:g} attempt{plural} before a reset"
        return (
            f"exponential delay ({self.initial_backoff_ms:g} ms to {self.max_backoff_ms:g} ms, "
            f"x{self.backoff_multiplier:g}{attempts})"
        )


class FailureRateRestartStrategy(RestartStrategy):
    """Restart after ``delay_ms`` unless more than ``max_failures_per_interval`` failures
    happened within the last ``failure_rate_interval_ms``."""

    def __init__(
        self,
        max_failures_per_interval: int,
        failure_rate_interval_ms: float,
        delay_ms: float,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(clock)
        _check("failure_rate", max_failures_per_interval, 1, integer=True)
        _check("failure_interval", failure_rate_interval_ms, 1)
        _check("delay_interval", delay_ms, 0)
        self.max_failures_per_interval = max_failures_per_interval
        self.failure_rate_interval_ms = float(failure_rate_interval_ms)
        self.delay_ms = float(delay_ms)
        self._failures: deque[float] = deque()

    def on_failure(self) -> float | None:
        now = self._clock()
        window_s = self.failure_rate_interval_ms / 1000
        failures = self._failures
        failures.append(now)
        while failures and now - failures[0] > window_s:
            failures.popleft()
        if len(failures) > self.max_failures_per_interval:
            return None
        return self.delay_ms

    def describe(self) -> str:
        return (
            f"failure rate (at most {self.max_failures_per_interval} "
            f"failure{'' if self.max_failures_per_interval == 1 else 's'} per "
            f"{self.failure_rate_interval_ms:g} ms, delay {self.delay_ms:g} ms)"
        )


def _ms(value: Any, what: str) -> float:
    """A time argument in ms: an int or float of ms, a Duration, Time or timedelta."""
    if isinstance(value, float) and not isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return to_millis(value, what)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class RestartStrategies:
    """Factories with PyFlink's names; times in milliseconds, or as a ``Duration``,
    ``Time`` or ``datetime.timedelta``."""

    @staticmethod
    def no_restart() -> NoRestartStrategy:
        return NoRestartStrategy()

    @staticmethod
    def fixed_delay_restart(
        restart_attempts: int, delay_between_attempts: Any
    ) -> FixedDelayRestartStrategy:
        return FixedDelayRestartStrategy(
            restart_attempts, _ms(delay_between_attempts, "delay_between_attempts")
        )

    @staticmethod
    def exponential_delay_restart(
        initial_backoff: Any = 1000,
        max_backoff: Any = 60_000,
        backoff_multiplier: float = 1.5,
        reset_backoff_threshold: Any = 3_600_000,
        jitter_factor: float = 0.1,
    ) -> ExponentialDelayRestartStrategy:
        return ExponentialDelayRestartStrategy(
            _ms(initial_backoff, "initial_backoff"),
            _ms(max_backoff, "max_backoff"),
            backoff_multiplier,
            _ms(reset_backoff_threshold, "reset_backoff_threshold"),
            jitter_factor,
        )

    @staticmethod
    def failure_rate_restart(
        failure_rate: int, failure_interval: Any, delay_interval: Any
    ) -> FailureRateRestartStrategy:
        return FailureRateRestartStrategy(
            failure_rate,
            _ms(failure_interval, "failure_interval"),
            _ms(delay_interval, "delay_interval"),
        )

    @staticmethod
    def fall_back_restart() -> None:
        """Use the default for the job (decided when it starts)."""
        return None
