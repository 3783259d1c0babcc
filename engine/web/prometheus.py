"""Prometheus exposition of job metrics, named as Flink's Prometheus reporter names them.

Flink's ``PrometheusReporter`` turns a metric's scope and name into ``flink_<scope>_<name>``
(``flink_taskmanager_job_task_operator_numRecordsIn``), replaces every character outside
``[a-zA-Z0-9:_]`` with ``_`` (``buffers.inPoolUsage`` becomes ``buffers_inPoolUsage``), and
puts the scope's variables in labels (``job_id``, ``job_name``, ``task_id``, ``task_name``,
``subtask_index``, ``task_attempt_num``, ``operator_id``, ``operator_name``, ``tm_id``,
``host``). Counters, gauges and meters become Prometheus gauges, as Flink's reporter
exports them (a meter: its rate). A user metric that holds several values (a meter's count
and rate, a distribution's count, min, max and mean) becomes one gauge per value, the
value's name appended; a gauge whose value is not a number is left out, as Flink does.

The exposition is the ``prometheus-client`` library's: a custom collector read at every
scrape, so nothing is registered globally and nothing runs between scrapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from streamlet.job.metrics import JobMetrics, vertex_id

__all__ = ["JobsCollector", "metric_name", "registry_for"]

_INVALID = re.compile(r"[^a-zA-Z0-9:_]")

_JOB_LABELS = ("job_id", "job_name", "host")
_TASK_LABELS = (
    "job_id",
    "job_name",
    "task_id",
    "task_name",
    "subtask_index",
    "task_attempt_num",
    "tm_id",
    "host",
)
_OPERATOR_LABELS = (*_TASK_LABELS, "operator_id", "operator_name")


def metric_name(scope: str, name: str) -> str:
    """Flink's Prometheus name of metric ``name`` in ``scope`` (``taskmanager_job_task``)."""
    return _INVALID.sub("_", f"flink_{scope}_{name}")


def _numbers(name: str, value: Any) -> Iterator[tuple[str, float]]:
    """The numeric values of one metric, by exported name (see the module docstring)."""
    if isinstance(value, bool):
        yield name, float(value)
    elif isinstance(value, int | float):
        if not (isinstance(value, float) and math.isnan(value)):
            yield name, float(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(f"{name}_{key}", inner)


class _Families:
    """Gauge families by name, created with their labels on first use."""

    def __init__(self) -> None:
        self._families: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, labels: tuple[str, ...], values: list[str], value: float) -> None:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = GaugeMetricFamily(
                name, f"Flink metric {name[len('flink_') :]}", labels=list(labels)
            )
        family.add_metric(values, value)

    def all(self) -> Iterable[Metric]:
        return self._families.values()


class JobsCollector(Collector):
    """Collects every metric of the jobs ``jobs()`` returns, at each scrape."""

    def __init__(self, jobs: Callable[[], Iterable[JobMetrics]]) -> None:
        self._jobs = jobs

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        for metrics in self._jobs():
            runner = metrics.runner
            reading = metrics.read()
            job = [runner.job_id, runner.job_name, "localhost"]
            for name, value in reading.job.items():
                for exported, number in _numbers(name, value):
                    families.add(metric_name("jobmanager_job", exported), _JOB_LABELS, job, number)
            chains = {vertex_id(chain): chain for chain in runner.plan.chains}
            names = {node.operator_uid: node.name for c in chains.values() for node in c.nodes}
            for sub in reading.subtasks:
                chain = chains[sub.vertex_id]
                task = [
                    runner.job_id,
                    runner.job_name,
                    sub.vertex_id,
                    chain.name,
                    str(sub.subtask_index),
                    str(sub.attempt),
                    "local",
                    "localhost",
                ]
                for name, value in sub.task.items():
                    for exported, number in _numbers(name, value):
                        families.add(
                            metric_name("taskmanager_job_task", exported),
                            _TASK_LABELS,
                            task,
                            number,
                        )
                for uid, values in sub.operators.items():
                    labels = [*task, uid, names.get(uid, uid)]
                    for name, value in values.items():
                        for exported, number in _numbers(name, value):
                            families.add(
                                metric_name("taskmanager_job_task_operator", exported),
                                _OPERATOR_LABELS,
                                labels,
                                number,
                            )
        return families.all()


def registry_for(jobs: Callable[[], Iterable[JobMetrics]]) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding one JobsCollector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(jobs))
    return registry
