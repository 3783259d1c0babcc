"""A job's metrics with Flink's names, read from a running job.

Flink scopes metrics as job > task (a *vertex*: one chain, here) > subtask > operator. The
runtime counts per batch (:mod:`streamlet.runtime.metrics`); this module reads those
counters when someone asks (the REST API, the Prometheus endpoint, ``JobClient``) and
turns them into Flink's metrics:

* per subtask (task scope): ``numRecordsIn``, ``numRecordsOut``, ``numRecordsInPerSecond``,
  ``numRecordsOutPerSecond``, ``busyTimeMsPerSecond``, ``idleTimeMsPerSecond``,
  ``backPressuredTimeMsPerSecond``, ``buffers.inPoolUsage``, ``buffers.outPoolUsage``,
  ``currentInputWatermark``;
* per operator in a subtask: ``numRecordsIn``, ``numRecordsOut``,
  ``currentInputWatermark``, ``currentOutputWatermark``, ``numLateRecordsDropped`` (window
  operators), and the user's metrics from ``get_metrics_group()``;
* per job: ``numRestarts``, ``uptime``, ``lastCheckpointDuration``, ``lastCheckpointSize``,
  ``numberOfCompletedCheckpoints``, ``numberOfFailedCheckpoints``,
  ``numberOfInProgressCheckpoints``, ``totalNumberOfCheckpoints``,
  ``lastCompletedCheckpointId``, ``lastCheckpointRestoreTimestamp`` (``-1`` for none, as
  Flink's gauges say it).

Per-second values are the change between two readings divided by the time between them
(the first reading of an attempt compares with its start, however soon): a reader that polls every
second sees one-second rates, a Prometheus server that scrapes every 15 s sees 15-second
averages. Readings closer than half a second apart reuse the last rates, so two readers
polling at once do not see rates over a few milliseconds. Like Flink's, every metric
starts from zero in each attempt; once no attempt runs, the last one's final figures stay.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from streamlet.graph.plan import ChainPlan
from streamlet.job.runner import JobRunner
from streamlet.runtime.deploy import Deployment
from streamlet.runtime.subtask import Subtask

__all__ = [
    "JobMetrics",
    "MetricsReading",
    "SubtaskReading",
    "backpressure_level",
    "vertex_id",
]

#: A reading this close to the last one reuses its rates (seconds).
_MIN_RATE_INTERVAL_S = 0.5


def vertex_id(chain: ChainPlan) -> str:
    """The chain's vertex id: 32 hex digits derived from its head's uid, so stable across
    runs (Flink derives a JobVertexID from the operator uid hash the same way)."""
    return hashlib.md5(chain.head.operator_uid.encode(), usedforsecurity=False).hexdigest()


def backpressure_level(ratio: float) -> str:
    """Flink's backpressure level for the share of time a subtask was backpressured:
    ``ok`` up to 10%, ``low`` up to 50%, ``high`` above."""
    if ratio <= 0.10:
        return "ok"
    if ratio <= 0.50:
        return "low"
    return "high"


@dataclass(frozen=True, slots=True)
class SubtaskReading:
    """One subtask's metrics at one reading.

    :param vertex_id: the chain's vertex id (:func:`vertex_id`)
    :param subtask_index: the subtask
    :param attempt: the job attempt the counters belong to (0, then 1 after a restart...)
    :param task: task-scope metrics by Flink name
    :param operators: operator uid -> operator-scope metrics by Flink name (the user's
        metrics included, by their dotted names)
    """

    vertex_id: str
    subtask_index: int
    attempt: int
    task: dict[str, Any]
    operators: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class MetricsReading:
    """Every metric of a job at one moment (:meth:`JobMetrics.read`).

    :param timestamp_ms: wall-clock time of the reading
    :param job: job-scope metrics by Flink name
    :param subtasks: the running attempt's subtasks (empty between attempts)
    """

    timestamp_ms: int
    job: dict[str, Any]
    subtasks: tuple[SubtaskReading, ...] = ()

    def of_vertex(self, vid: str) -> list[SubtaskReading]:
        """The readings of one vertex's subtasks, by subtask index."""
        return sorted(
            (s for s in self.subtasks if s.vertex_id == vid), key=lambda s: s.subtask_index
        )


@dataclass(slots=True)
class _Base:
    """The reading rates are computed from, for one subtask of one attempt."""

    attempt: int
    at_s: float
    records_in: int
    records_out: int
    idle_s: float
    backpressured_s: float
    rates: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 1000.0, 0.0)
    #: False for the attempt's start (the first reading compares with it however soon).
    read: bool = False


class JobMetrics:
    """Reads a job's metrics (see the module docstring); one per job, kept by its readers.

    :param runner: the job
    """

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner
        self._bases: dict[tuple[str, int], _Base] = {}
        self._vertex_of = {chain.index: vertex_id(chain) for chain in runner.plan.chains}
        #: The last attempt's final figures, shown once no attempt runs.
        self._final: tuple[SubtaskReading, ...] = ()
        runner.attempt_end_listeners.append(self._on_attempt_end)

    def _on_attempt_end(self, deployment: Deployment) -> None:
        self._final = self._read_deployment(deployment)

    @property
    def runner(self) -> JobRunner:
        return self._runner

    def read(self) -> MetricsReading:
        """Read every metric now."""
        deployment = self._runner.deployment
        subtasks = self._final if deployment is None else self._read_deployment(deployment)
        return MetricsReading(
            timestamp_ms=int(time.time() * 1000),
            job=self._job_metrics(),
            subtasks=subtasks,
        )

    def _read_deployment(self, deployment: Deployment) -> tuple[SubtaskReading, ...]:
        now = time.perf_counter()
        return tuple(
            self._read_subtask(self._vertex_of[chain_index], subtask, now)
            for chain_index, chain_subtasks in deployment.by_chain.items()
            for subtask in chain_subtasks
        )

    def _job_metrics(self) -> dict[str, Any]:
        runner = self._runner
        end = runner.end_time_ms if runner.end_time_ms is not None else time.time() * 1000
        out: dict[str, Any] = {
            "numRestarts": runner.restart_count,
            "uptime": int(end - runner.start_time_ms),
            "lastCheckpointRestoreTimestamp": runner.last_restore_timestamp_ms or -1,
        }
        coordinator = runner.coordinator
        stats = coordinator.statistics() if coordinator is not None else None
        latest = stats.latest_completed if stats is not None else None
        out.update(
            {
                "totalNumberOfCheckpoints": stats.triggered if stats else 0,
                "numberOfInProgressCheckpoints": stats.in_progress if stats else 0,
                "numberOfCompletedCheckpoints": stats.completed if stats else 0,
                "numberOfFailedCheckpoints": stats.failed if stats else 0,
                "lastCheckpointDuration": (
                    int(latest.end_to_end_duration_ms or 0) if latest is not None else -1
                ),
                "lastCheckpointSize": latest.state_size if latest is not None else -1,
                "lastCompletedCheckpointId": latest.checkpoint_id if latest is not None else -1,
                "lastCheckpointExternalPath": (
                    latest.external_path if latest is not None and latest.external_path else "n/a"
                ),
            }
        )
        return out

    def _read_subtask(self, vid: str, subtask: Subtask, now: float) -> SubtaskReading:
        attempt = subtask.settings.attempt
        root = subtask.root
        records_in = root.records_in
        records_out = sum(writer.records_out for writer in subtask.writers)
        times = subtask.times
        rates = self._rates(vid, subtask, attempt, records_in, records_out, now)
        in_per_s, out_per_s, busy, idle, backpressured = rates
        task: dict[str, Any] = {
            "numRecordsIn": records_in,
            "numRecordsOut": records_out,
            "numRecordsInPerSecond": in_per_s,
            "numRecordsOutPerSecond": out_per_s,
            "busyTimeMsPerSecond": busy if times is not None else float("nan"),
            "idleTimeMsPerSecond": idle if times is not None else float("nan"),
            "backPressuredTimeMsPerSecond": backpressured if times is not None else float("nan"),
            "buffers.inPoolUsage": _usage(subtask.gate.channels if subtask.gate else []),
            "buffers.outPoolUsage": _usage([c for w in subtask.writers for c in w.channels]),
            "currentInputWatermark": root.input_watermark,
        }
        operators: dict[str, dict[str, Any]] = {}
        for chained in subtask.operators:
            values: dict[str, Any] = {
                "numRecordsIn": chained.records_in,
                "numRecordsOut": chained.records_out,
                "currentInputWatermark": chained.input_watermark,
                "currentOutputWatermark": chained.output_watermark,
            }
            late = getattr(chained.op, "num_late_records_dropped", None)
            if isinstance(late, int):
                values["numLateRecordsDropped"] = late
            values.update(chained.ctx.metric_group.snapshot())
            operators[chained.ctx.operator_uid] = values
        return SubtaskReading(vid, subtask.index, attempt, task, operators)

    def _rates(
        self,
        vid: str,
        subtask: Subtask,
        attempt: int,
        records_in: int,
        records_out: int,
        now: float,
    ) -> tuple[float, float, float, float, float]:
        times = subtask.times
        idle_s = times.idle_until_now(now) if times is not None else 0.0
        backpressured_s = times.backpressured_until_now(now) if times is not None else 0.0
        key = (vid, subtask.index)
        base = self._bases.get(key)
        if base is None or base.attempt != attempt:
            started = times.started_s if times is not None else now
            base = self._bases[key] = _Base(attempt, started, 0, 0, 0.0, 0.0)
        elapsed = now - base.at_s
        if elapsed <= 0 or (base.read and elapsed < _MIN_RATE_INTERVAL_S):
            return base.rates
        idle_ms = min(1000.0, 1000 * (idle_s - base.idle_s) / elapsed)
        backpressured_ms = min(
            1000.0 - idle_ms, 1000 * (backpressured_s - base.backpressured_s) / elapsed
        )
        rates = (
            (records_in - base.records_in) / elapsed,
            (records_out - base.records_out) / elapsed,
            max(0.0, 1000.0 - idle_ms - backpressured_ms),
            idle_ms,
            backpressured_ms,
        )
        self._bases[key] = _Base(
            attempt, now, records_in, records_out, idle_s, backpressured_s, rates, read=True
        )
        return rates


def _usage(channels: list[Any]) -> float:
    """Queued buffers over capacity, across ``channels`` (Flink's in/outPoolUsage)."""
    capacity = sum(channel.capacity for channel in channels)
    if not capacity:
        return 0.0
    return sum(len(channel) for channel in channels) / capacity
