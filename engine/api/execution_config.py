"""``ExecutionConfig``: job settings that are not about checkpoints (PyFlink's names)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from streamlet.operators.time import to_millis

__all__ = ["ExecutionConfig", "RuntimeExecutionMode"]


class RuntimeExecutionMode(Enum):
    """How a job runs (Flink's ``execution.runtime-mode``).

    - ``STREAMING`` (the default): records flow as they come, rolling aggregations emit an
      update per record, checkpoints as configured;
    - ``BATCH``: for bounded inputs only (an unbounded source is refused when the job
      starts): no checkpoints (a failure restarts the job from its start), and rolling
      ``reduce`` / ``sum`` / ``min`` / ``max`` / ``min_by`` / ``max_by`` emit only each key's
      final value, at the end of the input, as Flink's batch execution does;
    - ``AUTOMATIC``: BATCH if every source is bounded, else STREAMING.
    """

    STREAMING = "STREAMING"
    BATCH = "BATCH"
    AUTOMATIC = "AUTOMATIC"


#: Flink's default ``pipeline.auto-watermark-interval``.
DEFAULT_AUTO_WATERMARK_INTERVAL_MS = 200


class ExecutionConfig:
    """What ``env.get_config()`` returns (mutable; frozen into a job when it starts)."""

    def __init__(self) -> None:
        self._auto_watermark_interval_ms = DEFAULT_AUTO_WATERMARK_INTERVAL_MS
        self._global_job_parameters: dict[str, str] = {}

    def set_global_job_parameters(
        self, global_job_parameters_dict: dict[str, Any]
    ) -> ExecutionConfig:
        """Parameters every function reads with ``RuntimeContext.get_job_parameter(key,
        default)`` (PyFlink's: keys and values as strs).

        :raises TypeError: if not a dict
        """
        if not isinstance(global_job_parameters_dict, dict):
            raise TypeError(
                f"set_global_job_parameters() needs a dict of str to str, got "
                f"{global_job_parameters_dict!r}"
            )
        self._global_job_parameters = {
            str(key): str(value) for key, value in global_job_parameters_dict.items()
        }
        return self

    def get_global_job_parameters(self) -> dict[str, str]:
        return dict(self._global_job_parameters)

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
