"""User metrics (``pyflink.metrics``): ``get_runtime_context().get_metrics_group()``.

Each operator instance (one per subtask and attempt) has a :class:`MetricGroup`, kept in
memory on its :class:`~streamlet.operators.base.OperatorContext`. A function registers
counters, gauges, meters and distributions in ``open()`` and updates them per record or
per batch; ``JobClient.metrics()`` lists them by operator and subtask (a later issue
exports them through REST / Prometheus). Like Flink's, metrics start from zero in every
attempt: they are not part of checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Counter", "Distribution", "Gauge", "Meter", "Metric", "MetricGroup"]


class Metric:
    """A metric of a :class:`MetricGroup`."""

    __slots__ = ()

    def value(self) -> Any:
        """What ``JobClient.metrics()`` shows of this metric."""
        raise NotImplementedError


class Counter(Metric):
    """A count that goes up and down: ``inc(n=1)``, ``dec(n=1)``, ``get_count()``."""

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count = 0

    def inc(self, n: int = 1) -> None:
        self._count += n

    def dec(self, n: int = 1) -> None:
        self._count -= n

    def get_count(self) -> int:
        return self._count

    def value(self) -> int:
        return self._count


class Gauge(Metric):
    """A value read from a function when the metrics are listed."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def get_value(self) -> Any:
        return self._fn()

    def value(self) -> Any:
        try:
            return self._fn()
        except Exception as exc:  # a gauge must not break the listing of the others
            return f"<gauge failed: {exc!r}>"


class Meter(Metric):
    """Events per second over the last ``time_span_in_seconds``: ``mark_event(n=1)``,
    ``get_count()`` (all events), ``get_rate()``.

    Events are counted in one-second buckets, so marking costs an addition, not a
    timestamp per event.
    """

    __slots__ = ("_buckets", "_clock", "_count", "_span")

    def __init__(
        self, time_span_in_seconds: int = 60, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._span = time_span_in_seconds
        self._clock = clock
        self._count = 0
        #: (second, events in it), oldest first, at most ``span`` seconds back.
        self._buckets: list[list[int]] = []

    def mark_event(self, value: int = 1) -> None:
        self._count += value
        second = int(self._clock())
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += value
        else:
            buckets.append([second, value])
            self._expire(second)

    def _expire(self, now: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= now - self._span:
            buckets.pop(0)

    def get_count(self) -> int:
        return self._count

    def get_rate(self) -> float:
        """Events per second over the time span (or since the first event, if sooner)."""
        now = int(self._clock())
        self._expire(now)
        if not self._buckets:
            return 0.0
        seconds = min(self._span, now - self._buckets[0][0] + 1)
        return sum(n for _, n in self._buckets) / seconds

    def value(self) -> dict[str, float]:
        return {"count": self._count, "rate": self.get_rate()}


class Distribution(Metric):
    """The distribution of values given to ``update(value)``: count, min, max, mean."""

    __slots__ = ("_count", "_max", "_min", "_sum")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def update(self, value: float) -> None:
        self._count += 1
        self._sum += value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

    def value(self) -> dict[str, float]:
        if not self._count:
            return {"count": 0}
        return {
            "count": self._count,
            "min": self._min,
            "max": self._max,
            "mean": self._sum / self._count,
        }


class MetricGroup:
    """Named metrics and subgroups (PyFlink's ``MetricGroup``).

    Registering a name twice returns the metric registered first (Flink keeps the first
    and warns), so an ``open()`` that runs again finds its metrics.
    """

    __slots__ = ("_groups", "_metrics")

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._groups: dict[str, MetricGroup] = {}

    def add_group(self, name: str, extra: str | None = None) -> MetricGroup:
        """A subgroup ``name`` (with ``extra``: the key/value group ``name`` -> ``extra``,
        listed as ``name.extra``)."""
        _check_name(name, "add_group")
        full = name if extra is None else f"{name}.{_check_name(extra, 'add_group extra')}"
        group = self._groups.get(full)
        if group is None:
            group = self._groups[full] = MetricGroup()
        return group

    def _register(self, name: str, metric: Metric, kind: type) -> Any:
        _check_name(name, kind.__name__.lower())
        existing = self._metrics.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(
                    f"metric {name!r} is already registered as a {type(existing).__name__}, "
                    f"not a {kind.__name__}"
                )
            return existing
        self._metrics[name] = metric
        return metric

    def counter(self, name: str) -> Counter:
        result: Counter = self._register(name, Counter(), Counter)
        return result

    def gauge(self, name: str, obj: Callable[[], Any]) -> None:
        if not callable(obj):
            raise TypeError(f"gauge {name!r} needs a function returning its value, got {obj!r}")
        self._register(name, Gauge(obj), Gauge)

    def meter(self, name: str, time_span_in_seconds: int = 60) -> Meter:
        if (
            not isinstance(time_span_in_seconds, int)
            or isinstance(time_span_in_seconds, bool)
            or time_span_in_seconds < 1
        ):
            raise ValueError(
                f"meter {name!r}: time_span_in_seconds must be an int >= 1, got "
                f"{time_span_in_seconds!r}"
            )
        result: Meter = self._register(name, Meter(time_span_in_seconds), Meter)
        return result

    def distribution(self, name: str) -> Distribution:
        result: Distribution = self._register(name, Distribution(), Distribution)
        return result

    def snapshot(self, prefix: str = "") -> dict[str, Any]:
        """Every metric's current value by its dotted name (subgroups included)."""
        out = {f"{prefix}{name}": metric.value() for name, metric in self._metrics.items()}
        for group_name, group in self._groups.items():
            out.update(group.snapshot(f"{prefix}{group_name}."))
        return out


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: a metric name must be a non-empty str, got {name!r}")
    return name
