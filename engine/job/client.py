"""The handle of a running job: ``JobClient``."""

from __future__ import annotations

import os
from typing import Any

import anyio

from streamlet.errors import JobCancelledError
from streamlet.job.result import JobExecutionResult, JobStatus
from streamlet.job.runner import JobRunner

__all__ = ["JobClient", "savepoint_arguments"]


def savepoint_arguments(
    advance_to_end_of_event_time: bool | str | os.PathLike[str],
    savepoint_directory: str | os.PathLike[str] | None,
) -> tuple[str | os.PathLike[str] | None, bool]:
    """The directory and drain flag ``stop_with_savepoint`` was given: PyFlink's
    ``(advance_to_end_of_event_time, savepoint_directory=None)``, or streamlet's older
    ``(path)`` (no drain).

    :raises TypeError: for arguments of other types
    """
    if isinstance(advance_to_end_of_event_time, str | os.PathLike):
        if savepoint_directory is not None:
            raise TypeError(
                "stop_with_savepoint(advance_to_end_of_event_time, savepoint_directory): the "
                f"first argument is a bool, got {advance_to_end_of_event_time!r}"
            )
        return advance_to_end_of_event_time, False
    if not isinstance(advance_to_end_of_event_time, bool):
        raise TypeError(
            f"advance_to_end_of_event_time must be a bool, got {advance_to_end_of_event_time!r}"
        )
    return savepoint_directory, advance_to_end_of_event_time


class JobClient:
    """Controls a job started with ``execute_async``: wait for it, cancel it, watch it."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner
        self._done = anyio.Event()
        self._result: JobExecutionResult | None = None
        self._error: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        #: Called (synchronously) once the job has ended, whatever the outcome.
        self._on_done: list[Any] = []

    async def _main(self) -> None:
        """Run the job; never raises (the outcome is kept for :meth:`wait`)."""
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                self._result = await self._runner.run()
            if scope.cancelled_caught:
                self._error = JobCancelledError(f"job {self._runner.job_name!r} was cancelled")
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()
            for callback in self._on_done:
                callback()

    @property
    def job_id(self) -> str:
        return self._runner.job_id

    @property
    def job_name(self) -> str:
        return self._runner.job_name

    @property
    def status(self) -> JobStatus:
        return self._runner.status

    def get_job_status(self) -> JobStatus:
        return self._runner.status

    @property
    def restart_count(self) -> int:
        return self._runner.restart_count

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> JobExecutionResult:
        """Wait until the job ends and return its result.

        :raises JobExecutionError: if the job failed (after any restarts)
        :raises JobCancelledError: if it was cancelled
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    get_job_execution_result = wait

    async def cancel(self) -> None:
        """Cancel the job and wait until every subtask has stopped."""
        self._cancel_requested = True
        self._runner.mark_cancelling()
        if self._scope is not None:
            self._scope.cancel()
        await self._done.wait()

    def get_job_id(self) -> str:
        return self._runner.job_id

    def savepoint_directory(self, savepoint_directory: str | os.PathLike[str] | None) -> str:
        """``savepoint_directory``, or the configured default one
        (``env.set_default_savepoint_directory``, Flink's
        ``execution.checkpointing.savepoint-dir``).

        :raises ValueError: if neither is given
        """
        if savepoint_directory is not None:
            return os.fspath(savepoint_directory)
        default = self._runner.config.checkpoint_config.get_default_savepoint_directory()
        if default is None:
            raise ValueError(
                f"job {self.job_name!r}: no savepoint directory: pass one "
                f"(trigger_savepoint(savepoint_directory=...)) or configure a default "
                f"(env.set_default_savepoint_directory(...) or the configuration key "
                f"execution.checkpointing.savepoint-dir)"
            )
        return default

    async def trigger_savepoint(
        self, savepoint_directory: str | os.PathLike[str] | None = None
    ) -> str:
        """Take a savepoint into ``savepoint_directory`` (default: the configured savepoint
        directory) while the job runs; return its location.

        :raises CheckpointError: if the savepoint failed
        :raises RuntimeError: if the job is not running
        :raises ValueError: if no directory is given and none is configured
        """
        return await self._runner.trigger_savepoint(self.savepoint_directory(savepoint_directory))

    async def stop_with_savepoint(
        self,
        advance_to_end_of_event_time: bool | str | os.PathLike[str] = False,
        savepoint_directory: str | os.PathLike[str] | None = None,
    ) -> str:
        """Take a savepoint, then stop the job, which ends as FINISHED; return its location
        (PyFlink's signature; ``stop_with_savepoint(path)`` also works, as before).

        With ``advance_to_end_of_event_time=True`` (Flink's ``--drain``) the sources stop
        reading first and emit the MAX watermark, so every event-time timer and window
        fires before the savepoint; that needs checkpointing on (the savepoint is the
        job's final checkpoint). Without it, the job stops with its timers pending, to be
        resumed from the savepoint.
        """
        directory, drain = savepoint_arguments(advance_to_end_of_event_time, savepoint_directory)
        location = await self._runner.stop_with_savepoint(
            self.savepoint_directory(directory), drain=drain
        )
        await self._done.wait()
        return location

    def metrics(self) -> dict[str, Any]:
        """The user metrics of the running attempt (``get_metrics_group()``), by operator
        and subtask (see :meth:`JobRunner.metrics`)."""
        return self._runner.metrics()

    def checkpoint_stats(self) -> list[Any]:
        """Statistics of recent checkpoints, newest first (see ``CheckpointStats``)."""
        return self._runner.checkpoint_stats()

    def channel_statistics(self) -> list[Any]:
        """Counters of every channel of the running attempt (``ChannelStatistics``), in a
        fixed order; empty when no attempt runs. Peak values show backpressure at work."""
        return self._runner.channel_statistics()

    def statistics(self) -> dict[str, Any]:
        """Live counters: records read, restarts, status (for status lines and tests)."""
        return self._runner.statistics()
