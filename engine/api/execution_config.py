"""``ExecutionConfig``: job settings that are not about checkpoints (PyFlink's names)."""

from __future__ import annotations

from typing import Any

from streamlet.operators.time import to_millis

__all__ = ["ExecutionConfig"]

#: Flink's default ``pipeline.auto-watermark-interval``.
DEFAULT_AUTO_WATERMARK_INTERVAL_MS = 200


class ExecutionConfig:
    """What ``env.get_config()`` returns (mutable; frozen into a job when it starts)."""

    def __init__(self) -> None:
        self._auto_watermark_interval_ms = DEFAULT_AUTO_WATERMARK_INTERVAL_MS

    def set_auto_watermark_interval(self, interval: Any) -> ExecutionConfig:
        """Ask watermark generators for a watermark this often (ms, a Duration or a
        timedelta; default 200 ms). 0 disables periodic watermarks: only watermarks a
        generator emits from ``on_event`` (and the final one of a bounded input) are sent.

        :raises TypeError, ValueError: if ``interval`` is not a time >= 0
        """
        self._auto_watermark_interval_ms = to_millis(interval, "auto watermark interval")
        return self

    def get_auto_watermark_interval(self) -> int:
        """The interval in ms (0: periodic watermarks are off)."""
        return self._auto_watermark_interval_ms

    def __repr__(self) -> str:
        return f"ExecutionConfig(auto_watermark_interval={self._auto_watermark_interval_ms} ms)"
