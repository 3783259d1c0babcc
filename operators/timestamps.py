"""``assign_timestamps_and_watermarks``: give records timestamps and make watermarks.

Flink's ``TimestampsAndWatermarksOperator``: every record gets the timestamp the strategy's
assigner extracts (``extract_timestamp(value, record_timestamp)``; without an assigner it
keeps the one it carries), the strategy's generator sees every event (once per batch for the
built-in generators) and is asked for a watermark every auto-watermark interval of
processing time. The watermarks this operator makes replace those it receives: only the
final watermark of a bounded input (``2**63 - 1``) passes through, so that everything
downstream fires at the end of the input.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from .base import Operator, OperatorContext
from .records import TimestampedBatch
from .watermarks import WatermarkCollector, WatermarkStrategy, timestamp_extractor

__all__ = ["TimestampsAndWatermarksOperator"]


class TimestampsAndWatermarksOperator(Operator[Any, Any]):
    """Assigns timestamps and generates watermarks with ``strategy``.

    :param strategy: the WatermarkStrategy
    :raises TypeError: if ``strategy`` is not a WatermarkStrategy
    """

    accepts_timestamps = True
    generates_watermarks = True

    def __init__(self, strategy: WatermarkStrategy) -> None:
        if not isinstance(strategy, WatermarkStrategy):
            raise TypeError(
                f"assign_timestamps_and_watermarks() needs a WatermarkStrategy, got {strategy!r}"
            )
        self._strategy = strategy
        self._collector = WatermarkCollector()

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        service = ctx.processing_time
        assert service is not None, "the engine gives every operator a processing time service"
        self._time = service
        self._generator = self._strategy.create_watermark_generator(service.now_ms)
        assigner = self._strategy.create_timestamp_assigner()
        self._extract = None if assigner is None else timestamp_extractor(assigner)
        self._interval = ctx.auto_watermark_interval_ms
        self.timed = self._interval > 0
        if self.timed:
            service.request(service.now_ms() + self._interval)

    async def process_batch(self, batch: Any) -> Any:
        extract = self._extract
        if type(batch) is TimestampedBatch:
            records = batch.records
            if extract is None:
                timestamps = batch.timestamps
            else:
                timestamps = list(map(extract, records, batch.timestamps))
        else:
            records = batch
            if extract is None:
                timestamps = [None] * len(records)
            else:
                timestamps = list(map(extract, records, repeat(None, len(records))))
        if extract is not None:
            _check_timestamps(timestamps, records)
        if extract is not None or None not in timestamps:
            self._generator.on_events(records, timestamps, self._collector)  # type: ignore[arg-type]
        else:
            # Only records with a timestamp are events for the generator.
            pairs = [(r, ts) for r, ts in zip(records, timestamps, strict=True) if ts is not None]
            if pairs:
                self._generator.on_events(
                    [r for r, _ in pairs], [ts for _, ts in pairs], self._collector
                )
        return TimestampedBatch(records, timestamps)

    async def on_processing_time(self, now_ms: int) -> Any:
        self._generator.on_periodic_emit(self._collector)
        self._time.request(now_ms + self._interval)
        return []

    async def process_watermark(self, watermark: int) -> Any:
        # Upstream watermarks are replaced by ours; the engine forwards only the final one.
        return []

    def take_events(self) -> list[Any]:
        return self._collector.take_events()


def _check_timestamps(timestamps: list[Any], records: list[Any]) -> None:
    """Raise if a timestamp is not an int. One C-level pass: a sum of ints is an int, and
    a float, None, str or Decimal among them makes it something else or raises."""
    try:
        total = sum(timestamps)
    except TypeError:
        total = None
    if type(total) is int:
        return
    for value, ts in zip(records, timestamps, strict=True):
        if type(ts) is not int:
            raise TypeError(
                f"the timestamp assigner returned {ts!r} for record {value!r}; it must return "
                f"an int of epoch milliseconds"
            )
