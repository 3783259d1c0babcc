"""Which barrier handler a subtask gets: the aligner, the tracker or the unaligned handler."""

from __future__ import annotations

import time
from collections.abc import Callable

from .alignment import BarrierAligner
from .barriers import BarrierHandler
from .config import CheckpointingMode
from .tracking import BarrierTracker
from .unaligned import UnalignedBarrierHandler

__all__ = ["create_barrier_handler"]


def create_barrier_handler(
    mode: CheckpointingMode,
    num_channels: int,
    *,
    clock: Callable[[], float] = time.monotonic,
    unaligned: bool = False,
    aligned_timeout_ms: int = 0,
) -> BarrierHandler:
    """Return the barrier handler for ``mode``: an aligner or a tracker, or with
    ``unaligned`` (EXACTLY_ONCE only) the unaligned handler with ``aligned_timeout_ms``.

    :raises ValueError: if ``num_channels < 1``
    """
    if mode is CheckpointingMode.EXACTLY_ONCE and unaligned:
        return UnalignedBarrierHandler(
            num_channels, aligned_timeout_ms=aligned_timeout_ms, clock=clock
        )
    if mode is CheckpointingMode.EXACTLY_ONCE:
        return BarrierAligner(num_channels, clock=clock)
    return BarrierTracker(num_channels, clock=clock)
