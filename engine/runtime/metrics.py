"""The runtime's own counters behind Flink's task and operator I/O metrics.

Flink's ``TaskIOMetricGroup`` counts records in and out, and the time a task was busy, idle
(waiting for input) and backpressured (waiting for room in an output channel). Here the
counts are kept per batch on each chained operator (``records_in`` / ``records_out``, a
field add per batch, never per record) and the times are measured only around the two
awaits where a subtask waits: the input notifier and a full output channel. A subtask that
never waits pays nothing for its times. What the counters *mean* per second is worked out
by the reader (:mod:`streamlet.job.metrics`), from two readings: the hot path keeps no clock.

Watermarks are stored as they pass (``currentInputWatermark`` / ``currentOutputWatermark``
of every chained operator), once per watermark, not per record.
"""

from __future__ import annotations

import time

__all__ = ["NO_WATERMARK", "SubtaskTimes"]

#: Flink's value of a watermark gauge before any watermark arrived (``Long.MIN_VALUE``).
NO_WATERMARK = -(2**63)


class SubtaskTimes:
    """Cumulative wall-clock seconds one subtask spent idle and backpressured.

    Busy time is what is left of the wall-clock time since :attr:`started_s`: in a
    single-process engine subtasks take turns on one thread, so a subtask counts as busy
    while it runs *or* waits for its turn (Flink's ratios are of wall-clock time too).
    """

    __slots__ = ("backpressured_s", "idle_s", "started_s", "waiting_since")

    def __init__(self) -> None:
        self.started_s = time.perf_counter()
        self.idle_s = 0.0
        self.backpressured_s = 0.0
        #: When the wait going on now started (idle or backpressured), else None: a reading
        #: taken during a long wait counts the wait so far.
        self.waiting_since: tuple[str, float] | None = None

    def idle_until_now(self, now: float) -> float:
        if self.waiting_since is not None and self.waiting_since[0] == "idle":
            return self.idle_s + now - self.waiting_since[1]
        return self.idle_s

    def backpressured_until_now(self, now: float) -> float:
        if self.waiting_since is not None and self.waiting_since[0] == "backpressured":
            return self.backpressured_s + now - self.waiting_since[1]
        return self.backpressured_s
