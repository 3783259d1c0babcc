"""A job's own event loop in a background thread: the synchronous forms of PyFlink's API.

A PyFlink script calls ``env.execute_async("job")`` or iterates ``ds.execute_and_collect()``
where no event loop runs. Then the job gets an event loop of its own in a daemon thread
(:class:`LoopThread`), and the caller talks to it through an anyio ``BlockingPortal``:
:class:`ThreadedJobClient` is the thread-safe ``JobClient`` of such a job.

The thread is a daemon: a script that ends while its job still runs does not hang at exit;
the job stops as a crash would (checkpoints stay consistent). Call ``wait()`` or
``cancel()`` to end it in order.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from streamlet.job.background import start_background
from streamlet.job.client import JobClient, savepoint_arguments
from streamlet.job.result import JobExecutionResult, JobStatus
from streamlet.job.runner import JobRunner

__all__ = ["BlockingIterator", "CompletableFuture", "LoopThread", "ThreadedJobClient"]

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop in a daemon thread, serving calls until :meth:`stop`.

    :meth:`call` runs a coroutine function on the loop and returns its outcome to the
    calling thread; what it starts in the background (a job) keeps running on the loop.

    :param name: the thread's name
    """

    def __init__(self, name: str) -> None:
        self._portal: BlockingPortal | None = None
        self._stopped: anyio.Event | None = None
        ready = threading.Event()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._portal = portal
                self._stopped = anyio.Event()
                ready.set()
                await self._stopped.wait()

        self._thread = threading.Thread(target=anyio.run, args=(serve,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` on the loop; return (or raise) its outcome here.

        :raises RuntimeError: if the loop has stopped
        """
        assert self._portal is not None
        return self._portal.call(fn, *args)

    def stop_soon(self) -> None:
        """Let the loop end (from the loop's own thread, e.g. a job's end callback)."""
        assert self._stopped is not None
        self._stopped.set()

    def stop(self) -> None:
        """Let the loop end and wait until it has (from any other thread)."""
        if self._thread.is_alive():
            try:
                self._portal.call(self.stop_soon)  # type: ignore[union-attr]
            except RuntimeError:
                pass  # already stopping
        self._thread.join()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the loop ended (``timeout`` seconds at most); True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def start_soon(
        self, fn: Callable[..., Awaitable[T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        """Start ``fn(*args)`` on the loop; its outcome comes in the returned future.

        :raises RuntimeError: if the loop has stopped
        """
        assert self._portal is not None
        return self._portal.start_task_soon(fn, *args)


class CompletableFuture(Generic[T]):
    """The outcome of a job client call, later (PyFlink's ``CompletableFuture``):
    ``result()`` blocks until it is there (and raises the call's error), ``done()``,
    ``exception()``, ``cancel()`` (stops waiting; the job is not affected), ``cancelled()``.

    :param future: the ``concurrent.futures.Future`` it reads
    """

    def __init__(self, future: concurrent.futures.Future[T]) -> None:
        self._future = future

    @staticmethod
    def completed(value: T) -> CompletableFuture[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_result(value)
        return CompletableFuture(future)

    @staticmethod
    def failed(error: BaseException) -> CompletableFuture[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_exception(error)
        return CompletableFuture(future)

    def result(self, timeout: float | None = None) -> T:
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<CompletableFuture {state}>"


class ThreadedJobClient:
    """The JobClient of a job started with ``execute_async`` outside any event loop: the
    job runs on a loop of its own in a background thread, and every method may be called
    from any thread.

    Methods are those of :class:`~streamlet.job.client.JobClient`, blocking instead of
    awaitable.
    """

    def __init__(self, runner: JobRunner) -> None:
        self._client = client = JobClient(runner)
        self._loop = loop = LoopThread(f"streamlet job {runner.job_name!r}")
        client._on_done.append(loop.stop_soon)  # the loop lives as long as the job

        async def start() -> None:
            start_background(client._main)

        loop.call(start)

    @property
    def job_id(self) -> str:
        return self._client.job_id

    def get_job_id(self) -> str:
        return self._client.job_id

    @property
    def job_name(self) -> str:
        return self._client.job_name

    @property
    def status(self) -> JobStatus:
        return self._client.status

    def get_job_status(self) -> CompletableFuture[JobStatus]:
        """The job's status, as PyFlink's JobClient gives it: ``.result()`` is a JobStatus."""
        return CompletableFuture.completed(self._client.status)

    @property
    def restart_count(self) -> int:
        return self._client.restart_count

    @property
    def done(self) -> bool:
        return self._client.done

    def wait(self, timeout: float | None = None) -> JobExecutionResult:
        """Block until the job ends (``timeout`` seconds at most); return its result.

        :raises TimeoutError: if it still runs after ``timeout``
        :raises JobExecutionError: if the job failed (after any restarts)
        :raises JobCancelledError: if it was cancelled
        """
        if not self._loop.join(timeout):
            raise TimeoutError(f"job {self.job_name!r} still runs after {timeout} s")
        client = self._client
        if client._error is not None:
            raise client._error
        assert client._result is not None
        return client._result

    def get_job_execution_result(self) -> CompletableFuture[JobExecutionResult]:
        """The job's result once it ends (PyFlink's): ``.result()`` blocks until then and
        raises the job's failure."""
        return self._later(self._client.wait)

    def cancel(self) -> CompletableFuture[None]:
        """Cancel the job (PyFlink's): ``.result()`` returns once every subtask stopped;
        nothing to do if it has ended."""
        return self._later(self._client.cancel)

    def trigger_savepoint(
        self, savepoint_directory: str | os.PathLike[str] | None = None
    ) -> CompletableFuture[str]:
        """Take a savepoint into ``savepoint_directory`` (default: the configured savepoint
        directory) while the job runs; ``.result()`` is its location.

        :raises ValueError: if no directory is given and none is configured
        """
        directory = self._client.savepoint_directory(savepoint_directory)
        return self._later(self._client.trigger_savepoint, directory, savepoint=True)

    def stop_with_savepoint(
        self,
        advance_to_end_of_event_time: bool | str | os.PathLike[str] = False,
        savepoint_directory: str | os.PathLike[str] | None = None,
    ) -> CompletableFuture[str]:
        """Take a savepoint, then stop the job; ``.result()`` is the savepoint's location
        (PyFlink's signature; ``stop_with_savepoint(path)`` also works)."""
        directory, drain = savepoint_arguments(advance_to_end_of_event_time, savepoint_directory)
        directory = self._client.savepoint_directory(directory)
        return self._later(self._client.stop_with_savepoint, drain, directory, savepoint=True)

    def get_accumulators(self) -> CompletableFuture[dict[str, Any]]:
        """PyFlink's accumulators: streamlet has none (use ``get_metrics_group()``)."""
        return CompletableFuture.completed({})

    def _later(
        self, fn: Callable[..., Awaitable[T]], *args: Any, savepoint: bool = False
    ) -> CompletableFuture[T]:
        """``fn(*args)`` on the job's loop, its outcome in a future; after the job ended,
        what the async client answers then (a savepoint: an error)."""
        client = self._client
        if not client.done:
            try:
                return CompletableFuture(self._loop.start_soon(fn, *args))
            except RuntimeError:
                if not client.done:
                    raise
        if savepoint:
            return CompletableFuture.failed(
                RuntimeError(
                    f"job {self.job_name!r} has ended ({self.status.name}): there is "
                    f"nothing to take a savepoint of"
                )
            )
        return CompletableFuture(_ended(fn, *args))

    def metrics(self) -> dict[str, Any]:
        """The user metrics (see :meth:`JobClient.metrics`), read on the job's loop between
        two batches, so that they agree with each other; empty once the job has ended."""
        client = self._client

        async def read() -> dict[str, Any]:
            return client.metrics()

        if client.done:
            return {}
        try:
            return self._loop.call(read)
        except RuntimeError:
            if not client.done:
                raise
            return {}

    def checkpoint_stats(self) -> list[Any]:
        return self._client.checkpoint_stats()

    def channel_statistics(self) -> list[Any]:
        return self._client.channel_statistics()

    def statistics(self) -> dict[str, Any]:
        return self._client.statistics()

    def __repr__(self) -> str:
        return f"<ThreadedJobClient {self.job_name!r} {self.status.name}>"


class _AsyncBatches(Protocol):
    """What :class:`BlockingIterator` needs of the async collect iterator."""

    async def _start(self) -> None: ...

    async def _take(self) -> list[Any]: ...

    async def aclose(self) -> None: ...


class BlockingIterator:
    """``execute_and_collect()`` iterated where no event loop runs: the job runs on a loop
    of its own in a background thread; records come over in the batches the job's sink
    received (one cross-thread call per batch, not per record).

    A closeable iterator and context manager, as PyFlink's: leaving the ``with`` block or
    :meth:`close` (also after a ``break``) stops the job if it still runs. The job's
    failure is raised from the iteration, after the records that came before it.
    """

    def __init__(self, batches: _AsyncBatches, name: str) -> None:
        self._batches = batches
        self._buffer: deque[Any] = deque()
        self._loop: LoopThread | None = LoopThread(f"streamlet collect {name!r}")
        try:
            self._loop.call(batches._start)
        except BaseException:
            self._loop.stop()
            raise

    def __iter__(self) -> BlockingIterator:
        return self

    def __next__(self) -> Any:
        buffer = self._buffer
        if not buffer:
            if self._loop is None:
                raise StopIteration
            try:
                batch = self._loop.call(self._batches._take)
            except BaseException:
                self.close()
                raise
            if not batch:
                self.close()
                raise StopIteration
            buffer.extend(batch)
        return buffer.popleft()

    def close(self) -> None:
        """Stop reading: stop the job if it still runs, and end its loop (records not read
        yet are dropped, as a closed generator yields nothing more)."""
        self._buffer.clear()
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                loop.call(self._batches.aclose)
            finally:
                loop.stop()

    def __enter__(self) -> BlockingIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_loop", None) is not None:
            self.close()


def _ended(fn: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
    """Run ``fn(*args)`` of an ended job's client on a loop of its own (its answers need no
    running job: ``wait`` returns the outcome, ``cancel`` nothing)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    try:
        future.set_result(anyio.run(fn, *args))
    except BaseException as exc:
        future.set_exception(exc)
    return future
