"""What a job run on Flink returns; apart from :mod:`~streamlet.flink.translate`, which
runs jobs, and :mod:`~streamlet.flink.cluster`, which waits for them on a cluster, so that
the two do not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FlinkJobResult"]


@dataclass(slots=True)
class FlinkJobResult:
    """What a job run on Flink returns: its id and name, Flink's net runtime of the job
    (from its start on the cluster to its end: no JVM or mini-cluster start), and what it
    collected (one list per ``execute_and_collect`` node, in graph order)."""

    job_id: str
    job_name: str
    net_runtime_ms: float
    collected: list[list[Any]] = field(default_factory=list)
