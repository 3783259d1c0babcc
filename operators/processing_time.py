"""Processing time: one replaceable clock per job, and each subtask's next wake-up.

Processing time is the wall clock in epoch milliseconds (Flink's
``System.currentTimeMillis``). A job reads it from one :class:`ProcessingTimeClock`: the
:class:`SystemClock` by default, a :class:`ManualClock` in tests
(``env.set_processing_time_clock(clock)``, or a harness's ``set_processing_time``), which
moves only when told to and then wakes the subtasks that wait for it.

No task runs per timer. Each subtask has one :class:`ProcessingTimeService`: its operators
ask it to wake them at a time (:meth:`ProcessingTimeService.request`: the next periodic
watermark, the earliest processing-time timer), and the subtask's own loop compares the
earliest request with the clock once per batch, and waits for it when no input is ready.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

__all__ = [
    "ManualClock",
    "ProcessingTimeClock",
    "ProcessingTimeService",
    "SystemClock",
    "current_processing_time",
]

#: "No wake-up requested": compares above every timestamp.
NEVER = math.inf


class _Waker(Protocol):
    def notify(self) -> None: ...


class ProcessingTimeClock:
    """Where a job reads processing time (epoch ms) and how long to wait for a time."""

    def now_ms(self) -> int:
        """The current processing time in milliseconds."""
        raise NotImplementedError

    def seconds_until(self, deadline_ms: float) -> float:
        """How long to wait, in seconds of the event loop, until ``deadline_ms`` is reached
        (``inf`` when only another party can move the clock there)."""
        raise NotImplementedError

    def subscribe(self, waker: _Waker) -> None:
        """Wake ``waker`` whenever the clock jumps (a manual clock; the system clock does not
        jump, its waiters time out)."""

    def unsubscribe(self, waker: _Waker) -> None:
        """Stop waking ``waker``."""


class SystemClock(ProcessingTimeClock):
    """The wall clock (``time.time``)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def seconds_until(self, deadline_ms: float) -> float:
        if deadline_ms == NEVER:
            return NEVER
        return max(0.0, (deadline_ms - time.time_ns() / 1_000_000) / 1000.0)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock(ProcessingTimeClock):
    """A clock that moves only when told: for tests of processing-time logic.

    :param start_ms: the initial time (default 0)
    """

    def __init__(self, start_ms: int = 0) -> None:
        self._now = _check_ms(start_ms, "start_ms")
        self._wakers: list[Any] = []

    def now_ms(self) -> int:
        return self._now

    def set_time(self, ms: int) -> None:
        """Move the clock to ``ms`` (it never goes back) and wake every subscribed subtask.

        :raises ValueError: if ``ms`` is before the current time
        """
        ms = _check_ms(ms, "ms")
        if ms < self._now:
            raise ValueError(f"a ManualClock never goes back: it is at {self._now}, got {ms}")
        self._now = ms
        for waker in list(self._wakers):
            waker.notify()

    def advance(self, ms: int) -> None:
        """Move the clock ``ms`` milliseconds forward."""
        self.set_time(self._now + _check_ms(ms, "ms"))

    def seconds_until(self, deadline_ms: float) -> float:
        return 0.0 if deadline_ms <= self._now else NEVER

    def subscribe(self, waker: _Waker) -> None:
        self._wakers.append(waker)

    def unsubscribe(self, waker: _Waker) -> None:
        if waker in self._wakers:
            self._wakers.remove(waker)

    def __repr__(self) -> str:
        return f"ManualClock({self._now})"


def _check_ms(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int of milliseconds, got {value!r}")
    return value


class ProcessingTimeService:
    """A subtask's processing time: the job's clock and the earliest wake-up asked for.

    Operators call :meth:`request`; the subtask loop checks :attr:`deadline` against the
    clock per batch and, when it is due, calls :meth:`due` and then each timed operator,
    which requests its next wake-up again.

    :param clock: the job's clock
    """

    __slots__ = ("clock", "deadline", "now_ms")

    def __init__(self, clock: ProcessingTimeClock) -> None:
        self.clock = clock
        #: The bound ``clock.now_ms``.
        self.now_ms = clock.now_ms
        #: The earliest requested wake-up (ms), ``NEVER`` if none.
        self.deadline: float = NEVER

    def request(self, at_ms: float) -> None:
        """Wake the subtask's timed operators once processing time reaches ``at_ms``."""
        if at_ms < self.deadline:
            self.deadline = at_ms

    def request_earliest(self, timers: Any) -> None:
        """Wake the subtask for the earliest of ``timers`` (a timer queue's ``peek()``;
        nothing if there are none or no queue yet)."""
        if timers is not None:
            earliest = timers.peek()
            if earliest is not None:
                self.request(earliest)

    def take_due(self, now_ms: int) -> bool:
        """If the deadline is reached at ``now_ms``, forget it (the woken operators request
        their next ones) and return True."""
        if self.deadline <= now_ms:
            self.deadline = NEVER
            return True
        return False


def current_processing_time(service: ProcessingTimeService | None) -> int:
    """The processing time an operator reads: its subtask's clock, or the wall clock for an
    operator opened without one (by hand, outside the engine and the harnesses)."""
    if service is None:
        return time.time_ns() // 1_000_000
    return service.now_ms()
