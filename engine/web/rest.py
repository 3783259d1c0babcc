"""The JSON of Flink's REST API, built from a running job.

Each function answers one route of Flink's REST API (``docs/ops/rest_api``) with its field
names: ``/overview``, ``/jobs``, ``/jobs/<id>``, ``/jobs/<id>/vertices/<vid>`` and its
``backpressure``, ``watermarks`` and ``metrics``, ``/jobs/<id>/checkpoints`` and its
``details``, ``/jobs/<id>/exceptions``. What a single process does not have (task managers,
slots, bytes on the network) is given as Flink gives it for nothing: zero, or ``"local"``.
Times are wall-clock ms and sizes bytes, as in Flink. Fields streamlet adds are
``streamlet-`` prefixed, so a Flink client ignores them.

These are pure functions of a :class:`JobView` (the job and one metrics reading), so the
HTTP layer (:mod:`streamlet.web.app`) only routes and encodes.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import Any

from streamlet.checkpoints.events import CheckpointKind
from streamlet.checkpoints.stats import CheckpointStats, CheckpointStatus, SubtaskCheckpointStats
from streamlet.errors import JobExecutionError
from streamlet.graph.plan import ChainPlan
from streamlet.job.client import JobClient
from streamlet.job.metrics import JobMetrics, MetricsReading, backpressure_level, vertex_id
from streamlet.job.result import JobStatus

__all__ = [
    "JobView",
    "checkpoint_details",
    "checkpoint_subtask_details",
    "checkpoints",
    "exceptions",
    "job_details",
    "job_overview",
    "vertex_backpressure",
    "vertex_details",
    "vertex_metrics",
    "vertex_watermarks",
]

#: Flink's ship strategy names, by streamlet partitioner name.
_SHIP_STRATEGY = {
    "forward": "FORWARD",
    "rebalance": "REBALANCE",
    "rescale": "RESCALE",
    "shuffle": "SHUFFLE",
    "broadcast": "BROADCAST",
    "global": "GLOBAL",
    "custom": "CUSTOM",
    "hash": "HASH",
}


@dataclass(frozen=True, slots=True)
class JobView:
    """One job as the REST API sees it at one moment: its client, metrics and a reading."""

    client: JobClient
    metrics: JobMetrics
    reading: MetricsReading

    @classmethod
    def of(cls, client: JobClient, metrics: JobMetrics) -> JobView:
        return cls(client, metrics, metrics.read())

    @property
    def job_id(self) -> str:
        return self.client.job_id

    def chain(self, vid: str) -> ChainPlan | None:
        """The chain whose vertex id is ``vid``, or None."""
        for chain in self.metrics.runner.plan.chains:
            if vertex_id(chain) == vid:
                return chain
        return None


def _state(view: JobView) -> str:
    return view.client.status.value


def _times(view: JobView) -> tuple[int, int, int]:
    runner = view.metrics.runner
    end = runner.end_time_ms if runner.end_time_ms is not None else -1
    now = int(time.time() * 1000)
    duration = (end if end >= 0 else now) - runner.start_time_ms
    return runner.start_time_ms, end, duration


def _vertex_status(view: JobView) -> str:
    status = view.client.status
    if status is JobStatus.RESTARTING:
        return "DEPLOYING"
    return status.value


def _vertex_totals(view: JobView, vid: str) -> tuple[int, int]:
    readings = view.reading.of_vertex(vid)
    return (
        sum(r.task["numRecordsIn"] for r in readings),
        sum(r.task["numRecordsOut"] for r in readings),
    )


def _io_metrics(records_in: int, records_out: int) -> dict[str, Any]:
    """Flink's IOMetricsInfo: records counted, bytes not (records travel as objects)."""
    return {
        "read-bytes": 0,
        "read-bytes-complete": True,
        "write-bytes": 0,
        "write-bytes-complete": True,
        "read-records": records_in,
        "read-records-complete": True,
        "write-records": records_out,
        "write-records-complete": True,
    }


def job_overview(view: JobView) -> dict[str, Any]:
    """One entry of ``/jobs/overview``."""
    start, end, duration = _times(view)
    state = _state(view)
    chains = view.metrics.runner.plan.chains
    tasks = sum(chain.parallelism for chain in chains)
    return {
        "jid": view.job_id,
        "name": view.client.job_name,
        "state": state,
        "start-time": start,
        "end-time": end,
        "duration": duration,
        "last-modification": view.reading.timestamp_ms,
        "tasks": {"total": tasks, state.lower(): tasks},
    }


def job_details(view: JobView) -> dict[str, Any]:
    """``/jobs/<id>``: the job, its vertices with their record counts, and its plan."""
    runner = view.metrics.runner
    start, end, duration = _times(view)
    vertices = []
    nodes = []
    status = _vertex_status(view)
    for chain in runner.plan.chains:
        vid = vertex_id(chain)
        records_in, records_out = _vertex_totals(view, vid)
        vertices.append(
            {
                "id": vid,
                "name": chain.name,
                "maxParallelism": runner.plan.max_parallelism,
                "parallelism": chain.parallelism,
                "status": status,
                "start-time": start,
                "end-time": end,
                "duration": duration,
                "tasks": {status: chain.parallelism},
                "metrics": _io_metrics(records_in, records_out),
            }
        )
        nodes.append(
            {
                "id": vid,
                "parallelism": chain.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": chain.name,
                "inputs": [
                    {
                        "num": num,
                        "id": vertex_id(runner.plan.chain_of[edge.upstream.id]),
                        "ship_strategy": _SHIP_STRATEGY.get(
                            runner.plan.partitioner(edge).name,
                            runner.plan.partitioner(edge).name.upper(),
                        ),
                        "exchange": "pipelined_bounded",
                    }
                    for num, edge in enumerate(chain.input_edges)
                ],
                "optimizer_properties": {},
                "streamlet-operators": [
                    {"name": node.name, "uid": node.operator_uid} for node in chain.nodes
                ],
            }
        )
    return {
        "jid": view.job_id,
        "name": view.client.job_name,
        "isStoppable": True,
        "state": _state(view),
        "job-type": "STREAMING",
        "start-time": start,
        "end-time": end,
        "duration": duration,
        "maxParallelism": runner.plan.max_parallelism,
        "now": view.reading.timestamp_ms,
        "timestamps": {"CREATED": start, _state(view): view.reading.timestamp_ms},
        "vertices": vertices,
        "status-counts": {status: len(vertices)},
        "plan": {
            "jid": view.job_id,
            "name": view.client.job_name,
            "type": "STREAMING",
            "nodes": nodes,
        },
        "streamlet-job-metrics": view.reading.job,
    }


def vertex_details(view: JobView, chain: ChainPlan) -> dict[str, Any]:
    """``/jobs/<id>/vertices/<vid>``: one vertex and each subtask's metrics.

    Besides Flink's ``metrics`` (record counts), each subtask carries
    ``streamlet-metrics``: its task metrics by Flink name (rates, busy / idle /
    backpressured time, pool usage, watermark) and ``streamlet-operators``: the metrics of
    each operator of the chain (user metrics included), by operator uid.
    """
    vid = vertex_id(chain)
    start, end, duration = _times(view)
    status = _vertex_status(view)
    subtasks = []
    for reading in view.reading.of_vertex(vid):
        task = reading.task
        subtasks.append(
            {
                "subtask": reading.subtask_index,
                "status": status,
                "attempt": reading.attempt,
                "endpoint": "localhost",
                "start-time": start,
                "end-time": end,
                "duration": duration,
                "metrics": _io_metrics(task["numRecordsIn"], task["numRecordsOut"]),
                "taskmanager-id": "local",
                "streamlet-metrics": _finite(task),
                "streamlet-operators": {
                    uid: _finite(values) for uid, values in reading.operators.items()
                },
            }
        )
    return {
        "id": vid,
        "name": chain.name,
        "parallelism": chain.parallelism,
        "maxParallelism": view.metrics.runner.plan.max_parallelism,
        "now": view.reading.timestamp_ms,
        "subtasks": subtasks,
    }


def vertex_backpressure(view: JobView, chain: ChainPlan) -> dict[str, Any]:
    """``/jobs/<id>/vertices/<vid>/backpressure``, from the time each subtask spent
    waiting for room in its output channels (Flink's ``backPressuredTimeMsPerSecond``)."""
    subtasks = []
    worst = 0.0
    for reading in view.reading.of_vertex(vertex_id(chain)):
        task = reading.task
        ratio = _ratio(task["backPressuredTimeMsPerSecond"])
        worst = max(worst, ratio)
        subtasks.append(
            {
                "subtask": reading.subtask_index,
                "attempt-number": reading.attempt,
                "backpressureLevel": backpressure_level(ratio),
                "ratio": ratio,
                "idleRatio": _ratio(task["idleTimeMsPerSecond"]),
                "busyRatio": _ratio(task["busyTimeMsPerSecond"]),
            }
        )
    return {
        "status": "ok",
        "backpressureLevel": backpressure_level(worst),
        "end-timestamp": view.reading.timestamp_ms,
        "subtasks": subtasks,
    }


def _ratio(ms_per_second: float) -> float:
    return 0.0 if math.isnan(ms_per_second) else round(ms_per_second / 1000, 4)


def vertex_metrics(view: JobView, chain: ChainPlan) -> dict[str, Any]:
    """Every metric of a vertex by Flink's vertex metric id: ``<subtask>.<metric>`` for
    task metrics, ``<subtask>.<operator name>.<metric>`` for operator metrics."""
    out: dict[str, Any] = {}
    names = {node.operator_uid: node.name for node in chain.nodes}
    for reading in view.reading.of_vertex(vertex_id(chain)):
        index = reading.subtask_index
        for name, value in reading.task.items():
            out[f"{index}.{name}"] = value
        for uid, values in reading.operators.items():
            for name, value in values.items():
                out[f"{index}.{names.get(uid, uid)}.{name}"] = value
    return out


def vertex_watermarks(view: JobView, chain: ChainPlan) -> list[dict[str, str]]:
    """``/jobs/<id>/vertices/<vid>/watermarks``: each subtask's input watermark, as
    Flink's ``[{"id": "0.currentInputWatermark", "value": "..."}]``."""
    return [
        {
            "id": f"{r.subtask_index}.currentInputWatermark",
            "value": str(r.task["currentInputWatermark"]),
        }
        for r in view.reading.of_vertex(vertex_id(chain))
    ]


# --- checkpoints ---


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"min": 0, "max": 0, "avg": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0}
    ordered = sorted(values)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "min": ordered[0],
        "max": ordered[-1],
        "avg": sum(ordered) / len(ordered),
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "p999": quantile(0.999),
    }


def _checkpoint(view: JobView, stats: CheckpointStats) -> dict[str, Any]:
    """Flink's CheckpointStatistics (with ``tasks``: per vertex TaskCheckpointStatistics)."""
    status = stats.status.name
    out: dict[str, Any] = {
        "className": stats.status.value
        if stats.status is not CheckpointStatus.IN_PROGRESS
        else "in_progress",
        "id": stats.checkpoint_id,
        "status": status,
        "is_savepoint": stats.is_savepoint,
        "trigger_timestamp": stats.trigger_timestamp_ms,
        "latest_ack_timestamp": stats.latest_ack_timestamp_ms or -1,
        "checkpointed_size": stats.state_size,
        "state_size": stats.state_size,
        "end_to_end_duration": int(stats.end_to_end_duration_ms or 0),
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": stats.persisted_data,
        "is_unaligned": stats.unaligned,
        "num_subtasks": stats.num_subtasks,
        "num_acknowledged_subtasks": stats.num_acknowledged_subtasks,
        "checkpoint_type": stats.kind.name,
        "tasks": {},
    }
    for chain in view.metrics.runner.plan.chains:
        mine = _acks_of(stats, chain)
        out["tasks"][vertex_id(chain)] = _task_checkpoint(stats, chain, mine)
    if stats.status is CheckpointStatus.COMPLETED:
        out["external_path"] = stats.external_path
        out["discarded"] = False
    elif stats.status is CheckpointStatus.FAILED:
        out["failure_timestamp"] = stats.failure_timestamp_ms
        out["failure_message"] = stats.failure_message
    return out


def _acks_of(stats: CheckpointStats, chain: ChainPlan) -> list[SubtaskCheckpointStats]:
    """The acknowledgements of ``chain``'s subtasks (named by chain name or head uid)."""
    names = (chain.name, chain.head.operator_uid)
    return [s for s in stats.subtasks if s.operator in names]


def _task_checkpoint(stats: CheckpointStats, chain: ChainPlan, acks: list[Any]) -> dict[str, Any]:
    latest = max((a.ack_timestamp_ms for a in acks), default=0)
    return {
        "id": stats.checkpoint_id,
        "status": stats.status.name,
        "latest_ack_timestamp": latest or -1,
        "checkpointed_size": sum(a.state_size for a in acks),
        "state_size": sum(a.state_size for a in acks),
        "end_to_end_duration": max(0, latest - stats.trigger_timestamp_ms) if latest else 0,
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": sum(a.persisted_data for a in acks),
        "num_subtasks": chain.parallelism,
        "num_acknowledged_subtasks": len(acks),
    }


def checkpoints(view: JobView) -> dict[str, Any]:
    """``/jobs/<id>/checkpoints``: counts, summary, latest and history."""
    coordinator = view.metrics.runner.coordinator
    if coordinator is None:
        snapshot = None
        history: tuple[CheckpointStats, ...] = ()
    else:
        snapshot = coordinator.statistics()
        history = snapshot.history
    completed = [s for s in history if s.status is CheckpointStatus.COMPLETED]
    runner = view.metrics.runner
    restored = None
    point = runner.last_restored
    if point is not None:
        restored = {
            "id": point.checkpoint_id,
            "restore_timestamp": runner.last_restore_timestamp_ms or -1,
            "is_savepoint": point.kind is CheckpointKind.SAVEPOINT,
            "external_path": point.location,
        }

    def one(stats: CheckpointStats | None) -> dict[str, Any] | None:
        return None if stats is None else _checkpoint(view, stats)

    sizes = [float(s.state_size) for s in completed]
    return {
        "counts": {
            "restored": runner.restores,
            "total": snapshot.triggered if snapshot else 0,
            "in_progress": snapshot.in_progress if snapshot else 0,
            "completed": snapshot.completed if snapshot else 0,
            "failed": snapshot.failed if snapshot else 0,
        },
        "summary": {
            "checkpointed_size": _summary(sizes),
            "state_size": _summary(sizes),
            "end_to_end_duration": _summary(
                [float(s.end_to_end_duration_ms or 0) for s in completed]
            ),
            "alignment_buffered": _summary([]),
            "processed_data": _summary([]),
            "persisted_data": _summary([float(s.persisted_data) for s in completed]),
        },
        "latest": {
            "completed": one(snapshot.latest_completed if snapshot else None),
            "savepoint": one(snapshot.latest_savepoint if snapshot else None),
            "failed": one(snapshot.latest_failed if snapshot else None),
            "restored": restored,
        },
        "history": [_checkpoint(view, s) for s in history],
    }


def _find_checkpoint(view: JobView, checkpoint_id: int) -> CheckpointStats | None:
    coordinator = view.metrics.runner.coordinator
    if coordinator is None:
        return None
    for stats in coordinator.statistics().history:
        if stats.checkpoint_id == checkpoint_id:
            return stats
    return None


def checkpoint_details(view: JobView, checkpoint_id: int) -> dict[str, Any] | None:
    """``/jobs/<id>/checkpoints/details/<cid>``, or None for an unknown id."""
    stats = _find_checkpoint(view, checkpoint_id)
    return None if stats is None else _checkpoint(view, stats)


def checkpoint_subtask_details(
    view: JobView, checkpoint_id: int, chain: ChainPlan
) -> dict[str, Any] | None:
    """``/jobs/<id>/checkpoints/details/<cid>/subtasks/<vid>``: each subtask's sync,
    async and alignment times, start delay and size; None for an unknown checkpoint."""
    stats = _find_checkpoint(view, checkpoint_id)
    if stats is None:
        return None
    acks = {s.subtask_index: s for s in _acks_of(stats, chain)}
    subtasks: list[dict[str, Any]] = []
    for index in range(chain.parallelism):
        ack = acks.get(index)
        if ack is None:
            subtasks.append({"index": index, "status": "pending_or_failed"})
            continue
        subtasks.append(
            {
                "index": index,
                "status": "completed",
                "ack_timestamp": ack.ack_timestamp_ms,
                "end_to_end_duration": max(0, ack.ack_timestamp_ms - stats.trigger_timestamp_ms),
                "checkpointed_size": ack.state_size,
                "state_size": ack.state_size,
                "checkpoint": {
                    "sync": round(ack.sync_duration_ms),
                    "async": round(ack.async_duration_ms),
                },
                "alignment": {
                    "buffered": 0,
                    "processed": 0,
                    "persisted": ack.persisted_data,
                    "duration": round(ack.alignment_duration_ms),
                },
                "start_delay": round(ack.start_delay_ms),
                "unaligned_checkpoint": ack.unaligned_checkpoint,
                "aborted": False,
            }
        )
    done = [s for s in subtasks if s["status"] == "completed"]
    out = _task_checkpoint(stats, chain, list(acks.values()))
    out["summary"] = {
        "checkpointed_size": _summary([float(s["state_size"]) for s in done]),
        "state_size": _summary([float(s["state_size"]) for s in done]),
        "end_to_end_duration": _summary([float(s["end_to_end_duration"]) for s in done]),
        "checkpoint_duration": {
            "sync": _summary([float(s["checkpoint"]["sync"]) for s in done]),
            "async": _summary([float(s["checkpoint"]["async"]) for s in done]),
        },
        "alignment": {
            "buffered": _summary([]),
            "processed": _summary([]),
            "persisted": _summary([]),
            "duration": _summary([float(s["alignment"]["duration"]) for s in done]),
        },
        "start_delay": _summary([float(s["start_delay"]) for s in done]),
    }
    out["subtasks"] = subtasks
    return out


# --- exceptions ---


def exceptions(view: JobView) -> dict[str, Any]:
    """``/jobs/<id>/exceptions``: the root exception and the history, newest first."""
    entries = []
    for timestamp, error in reversed(view.metrics.runner.exceptions):
        task_name = None
        if isinstance(error, JobExecutionError) and error.operator_name is not None:
            task_name = error.operator_name
            if error.subtask_index is not None:
                task_name += f" ({error.subtask_index + 1}/{error.parallelism})"
        cause = error.__cause__ or error
        entries.append(
            {
                "exceptionName": type(cause).__name__,
                "stacktrace": "".join(traceback.format_exception(error)),
                "timestamp": timestamp,
                "taskName": task_name,
                "location": "localhost" if task_name else None,
                "taskManagerId": "local" if task_name else None,
                "failureLabels": {},
                "concurrentExceptions": [],
            }
        )
    root = entries[0] if entries else None
    return {
        "root-exception": root["stacktrace"] if root else None,
        "timestamp": root["timestamp"] if root else None,
        "all-exceptions": [],
        "truncated": False,
        "exceptionHistory": {"entries": entries, "truncated": False},
    }


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with NaN (a metric that is off) as None: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
