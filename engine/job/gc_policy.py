"""How CPython's cyclic garbage collector is tuned while jobs run, and put back after.

Two costs of the collector fall on a streaming job, and neither finds garbage (records and
state values are freed by reference counting; they hold no cycles):

- *Young collections over records in flight.* A collection of generation 0 runs every 700
  net allocations of tracked objects (tuples, lists, dicts); a keyed job at parallelism 4
  keeps thousands of records in channels, so each collection walks them, and the ones that
  survive it are walked again in the older generations. While a job runs, generation 0's
  threshold is :data:`JOB_GEN0_THRESHOLD` instead (measured: about 10% of a keyed job at
  parallelism 4); the old thresholds come back when the last running job ends.
- *Full collections over the state.* A full collection walks every tracked object, which
  with a million keys is a million state values: 90 to 330 ms in which the event loop does
  nothing else. So after a restore and after each completed checkpoint, everything alive is
  moved to the permanent generation (:func:`gc.freeze`), which collections skip; they then
  walk only what was allocated since.

The price of freezing: cyclic garbage made of objects that were alive at a freeze is not
collected while it stays frozen. A job's own cyclic garbage comes from failed attempts
(tracebacks hold frames, frames hold the old attempt), so before the first freeze of a
restarted attempt, everything is unfrozen and collected once (the restart is a pause
anyway); when the last running job ends, everything is unfrozen, and the normal collector
takes it from there. An application that embeds jobs and makes cyclic garbage of its own
meanwhile gets it collected then too, or by calling ``gc.collect()`` after ``gc.unfreeze()``.

The collector is process-wide and jobs may run side by side on one loop: the first job to
start saves the thresholds, the last to end restores them and unfreezes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["JOB_GEN0_THRESHOLD", "after_checkpoint", "after_restore", "job_running"]

#: Generation 0's threshold while a job runs (CPython's default is 700).
JOB_GEN0_THRESHOLD = 10_000

_running = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def job_running() -> Iterator[None]:
    """Tune the collector for the duration of one job (nestable, see the module docstring)."""
    global _running, _saved
    if _running == 0:
        _saved = gc.get_threshold()
        gen0, gen1, gen2 = _saved
        if gen0 and gen0 < JOB_GEN0_THRESHOLD:  # 0 means disabled by the application
            gc.set_threshold(JOB_GEN0_THRESHOLD, gen1, gen2)
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            if _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
            gc.unfreeze()


def after_restore(restarted: bool) -> None:
    """A job attempt deployed its (restored) state: freeze what is alive.

    :param restarted: the attempt follows a failed one, whose cyclic garbage is collected
        first (it may be frozen: it was alive at an earlier freeze)
    """
    if not _running:
        return
    if restarted:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def after_checkpoint() -> None:
    """A checkpoint completed: freeze what is alive (the state, mostly)."""
    if _running:
        gc.freeze()
