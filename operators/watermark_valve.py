"""Combines the watermarks and idle statuses of an operator's input channels into one.

Flink's ``StatusWatermarkValve``, as a pure state machine. An operator with ``n`` input
channels may only advance its event time to the lowest watermark its inputs promised, so the
output watermark is the minimum over the channels, and only ever goes up. Two refinements:

* An idle channel (it sent :data:`~streamlet.operators.watermarks.IDLE`) does not hold the
  others back; it drops out of the minimum. When every channel is idle the output flushes the
  highest watermark any channel reached, then goes idle itself.
* A channel that comes back from idle counts again only once its watermark has caught up
  with the output (it is *aligned*): its records in between are late, and letting it pull
  the minimum down would move event time backwards.

A channel at its end of partition sends nothing more: it counts as active, aligned and at
the maximum watermark, so it never holds the others back, and when all channels ended the
output reaches :data:`~streamlet.operators.time.MAX_WATERMARK_TIMESTAMP`.

Every call returns what the operator must forward, in order, as a new list (empty when
nothing changes); the output is never a watermark while idle (:data:`ACTIVE` comes first).
"""

from __future__ import annotations

from .time import MAX_WATERMARK_TIMESTAMP, MIN_TIMESTAMP
from .watermarks import ACTIVE, IDLE, Watermark, WatermarkStatus

__all__ = ["StatusWatermarkValve"]


class StatusWatermarkValve:
    """The output watermark and status of ``num_channels`` inputs; see the module docstring.

    Per channel: its watermark (starts :data:`MIN_TIMESTAMP`), whether it is active (starts
    so) and whether it is aligned (starts so). Invariants: the output is idle exactly when
    no channel is active; an aligned channel is active and at or above the output watermark.
    """

    __slots__ = (
        "_active",
        "_aligned",
        "_ended",
        "_idle",
        "_last_output",
        "_num_active",
        "_watermarks",
    )

    def __init__(self, num_channels: int) -> None:
        if isinstance(num_channels, bool) or not isinstance(num_channels, int):
            raise TypeError(f"num_channels must be an int, got {num_channels!r}")
        if num_channels < 1:
            raise ValueError(f"num_channels must be at least 1, got {num_channels}")
        self._watermarks = [MIN_TIMESTAMP] * num_channels
        self._active = [True] * num_channels
        self._aligned = [True] * num_channels
        self._ended = [False] * num_channels
        self._num_active = num_channels
        self._last_output = MIN_TIMESTAMP
        self._idle = False

    # -- queries ----------------------------------------------------------------------------

    @property
    def num_channels(self) -> int:
        return len(self._watermarks)

    @property
    def current_watermark(self) -> int:
        """The last output watermark (:data:`MIN_TIMESTAMP` before the first)."""
        return self._last_output

    @property
    def last_output_watermark(self) -> int:
        return self._last_output

    @property
    def idle(self) -> bool:
        """Whether the output status is idle (every channel is)."""
        return self._idle

    def channel_watermark(self, channel: int) -> int:
        return self._watermarks[self._check(channel)]

    def is_channel_idle(self, channel: int) -> bool:
        return not self._active[self._check(channel)]

    def is_channel_aligned(self, channel: int) -> bool:
        return self._aligned[self._check(channel)]

    def is_channel_ended(self, channel: int) -> bool:
        return self._ended[self._check(channel)]

    # -- inputs -----------------------------------------------------------------------------

    def on_watermark(self, channel: int, timestamp: int) -> list[Watermark | WatermarkStatus]:
        """Channel ``channel`` sent watermark ``timestamp``; ignored while it is idle (or
        ended) and when it does not advance the channel."""
        self._check(channel)
        out: list[Watermark | WatermarkStatus] = []
        if not self._active[channel] or self._ended[channel]:
            return out
        if timestamp > self._watermarks[channel]:
            self._watermarks[channel] = timestamp
            if not self._aligned[channel] and timestamp >= self._last_output:
                self._aligned[channel] = True
            self._advance_to_min(out)
        return out

    def on_status(self, channel: int, status: WatermarkStatus) -> list[Watermark | WatermarkStatus]:
        """Channel ``channel`` went idle or active; repeating its current status (or any
        status after its end of partition) changes nothing."""
        self._check(channel)
        if type(status) is not WatermarkStatus:
            raise TypeError(
                f"status must be a WatermarkStatus (IDLE or ACTIVE), got {status!r} "
                f"({type(status).__name__})"
            )
        out: list[Watermark | WatermarkStatus] = []
        if self._ended[channel]:
            return out
        if status.idle:
            if not self._active[channel]:
                return out
            self._active[channel] = False
            self._aligned[channel] = False
            self._num_active -= 1
            if self._num_active == 0:
                # Nothing will hold event time back any more: flush the furthest any
                # channel got, so downstream timers up to there can fire.
                highest = max(self._watermarks)
                if highest > self._last_output:
                    self._last_output = highest
                    out.append(Watermark(highest))
                self._idle = True
                out.append(IDLE)
            else:
                self._advance_to_min(out)
        else:
            if self._active[channel]:
                return out
            self._active[channel] = True
            self._num_active += 1
            self._aligned[channel] = self._watermarks[channel] >= self._last_output
            if self._idle:
                self._idle = False
                out.append(ACTIVE)
            self._advance_to_min(out)
        return out

    def on_end_of_partition(self, channel: int) -> list[Watermark | WatermarkStatus]:
        """Channel ``channel`` will send nothing more: it counts as active and aligned at
        the maximum watermark from now on."""
        self._check(channel)
        out: list[Watermark | WatermarkStatus] = []
        if self._ended[channel]:
            return out
        self._ended[channel] = True
        self._watermarks[channel] = MAX_WATERMARK_TIMESTAMP
        self._aligned[channel] = True
        if not self._active[channel]:
            self._active[channel] = True
            self._num_active += 1
        if self._idle:
            self._idle = False
            out.append(ACTIVE)
        self._advance_to_min(out)
        return out

    # -- internals --------------------------------------------------------------------------

    def _check(self, channel: int) -> int:
        if not 0 <= channel < len(self._watermarks):
            raise IndexError(
                f"channel must be in 0..{len(self._watermarks) - 1} (the valve has "
                f"{len(self._watermarks)} channels), got {channel!r}"
            )
        return channel

    def _advance_to_min(self, out: list[Watermark | WatermarkStatus]) -> None:
        """Output the minimum over the aligned channels if there is one and it advances."""
        lowest: int | None = None
        aligned = self._aligned
        for i, watermark in enumerate(self._watermarks):
            if aligned[i] and (lowest is None or watermark < lowest):
                lowest = watermark
        if lowest is not None and lowest > self._last_output:
            self._last_output = lowest
            out.append(Watermark(lowest))

    def __repr__(self) -> str:
        return (
            f"StatusWatermarkValve(channels={len(self._watermarks)}, "
            f"watermark={self._last_output}, idle={self._idle})"
        )
