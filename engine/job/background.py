"""Run a coroutine in the background on whichever event loop is running (asyncio or trio).

``execute_async`` must return while the job keeps running, and anyio has no task group that
outlives the caller. When the caller passes no task group we start the job as a task of the
loop itself (an asyncio task, or a trio system task); the job's own coroutine then owns all
its subtasks in task groups, and the returned handle cancels it through a cancel scope.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["event_loop_running", "start_background"]


def start_background(fn: Callable[[], Coroutine[Any, Any, None]], task_group: Any = None) -> None:
    """Start ``fn()`` in ``task_group`` if given, else as a task of the running loop.

    ``fn`` must never raise: it reports its outcome itself.
    """
    if task_group is not None:
        task_group.start_soon(fn)
        return
    library = _current_library()
    if library == "asyncio":
        import asyncio

        task = asyncio.get_running_loop().create_task(fn())
        _keep_alive.add(task)
        task.add_done_callback(_keep_alive.discard)
    elif library == "trio":
        import trio

        trio.lowlevel.spawn_system_task(fn)
    else:  # pragma: no cover - anyio supports only these two
        raise RuntimeError(f"unsupported async library {library!r}")


def _current_library() -> str:
    """Name the event loop running in this thread: ``"asyncio"`` or ``"trio"``.

    Not sniffio: it is not a declared dependency (anyio no longer needs it) and anyio has no
    public call for this. trio is imported only when no asyncio loop runs, so an asyncio job
    never needs trio installed.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    try:
        import trio

        trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        raise RuntimeError("start_background needs a running asyncio or trio event loop") from None
    return "trio"


# asyncio keeps only weak references to tasks; hold them until they finish.
_keep_alive: set[Any] = set()


def event_loop_running() -> bool:
    """Whether the calling thread runs an asyncio or trio event loop (so the API's
    awaitable forms apply; otherwise its blocking, PyFlink forms do)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")  # never imported here: an asyncio job needs no trio
        return trio is not None and bool(trio.lowlevel.in_trio_run())
    return True
