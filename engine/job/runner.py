"""Run a job: plan it, deploy an attempt, supervise it, end it.

One task group owns every subtask of an attempt. The first subtask to fail cancels the
others; the runner then reports that failure (a :class:`JobExecutionError` naming operator
and subtask, the user's exception as its cause), not an exception group.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from streamlet.checkpoints.completed import CompletedCheckpoint
from streamlet.checkpoints.config import CheckpointConfig
from streamlet.checkpoints.coordinator import CheckpointCoordinator
from streamlet.checkpoints.errors import (
    CheckpointError,
    CheckpointFailureReason,
    CheckpointStorageError,
)
from streamlet.checkpoints.events import CheckpointKind
from streamlet.checkpoints.file_blob_store import FileBlobStore
from streamlet.checkpoints.handlers import create_barrier_handler
from streamlet.checkpoints.layout import safe_name
from streamlet.checkpoints.storage import (
    CheckpointStorage,
    FileCheckpointStorage,
    create_checkpoint_storage,
)
from streamlet.errors import JobExecutionError
from streamlet.graph.plan import JobPlan, build_plan
from streamlet.graph.stream_graph import StreamGraph
from streamlet.job import gc_policy
from streamlet.job.recovery import (
    clean_incomplete_checkpoints,
    find_restore_point,
    read_restored_state,
)
from streamlet.job.restart import (
    ExponentialDelayRestartStrategy,
    NoRestartStrategy,
    RestartStrategy,
)
from streamlet.job.result import JobExecutionResult, JobStatus
from streamlet.operators.processing_time import ProcessingTimeClock, SystemClock
from streamlet.operators.sinks.simple import OutputClosedError
from streamlet.operators.sinks.two_phase import TwoPhaseCommitSink
from streamlet.operators.sources.base import DeliveryGuarantee, SourceSessionContext
from streamlet.runtime.checkpointing import MailboxGateway, SubtaskCheckpointer
from streamlet.runtime.deploy import Deployment, RestoredState, coordinator_triggered, deploy
from streamlet.runtime.final_checkpoint import FinalCheckpoint, FinalCheckpointState
from streamlet.runtime.subtask import (
    Subtask,
    SubtaskSettings,
    first_error,
    restore_switch_interval,
)

__all__ = ["JobConfig", "JobRunner"]

logger = logging.getLogger("streamlet.job")

#: Failures kept for the REST API (Flink's ``web.exception-history-size`` default: 16).
_EXCEPTION_HISTORY = 16


@dataclass(frozen=True, slots=True)
class JobConfig:
    """Environment settings frozen when a job starts."""

    parallelism: int
    max_parallelism: int
    batch_size: int
    buffer_timeout_ms: float
    channel_capacity: int
    checkpoint_config: CheckpointConfig
    restart_strategy: RestartStrategy | None = None
    operator_wrapper: Any = None
    #: The processing-time clock (None: the system clock).
    clock: ProcessingTimeClock | None = None
    auto_watermark_interval_ms: int = 200
    #: Flink's BATCH execution (see RuntimeExecutionMode): final values of rolling
    #: aggregations only; checkpointing is off.
    batch_execution: bool = False
    #: ``ExecutionConfig.set_global_job_parameters``.
    job_parameters: dict[str, str] = field(default_factory=dict)
    #: Flink's task I/O metrics (records in/out, busy/idle/backpressured time); off only
    #: to measure what they cost (``metrics.enabled`` in the configuration).
    metrics_enabled: bool = True


class JobRunner:
    """Runs one job to its end (finished, failed or cancelled)."""

    def __init__(
        self,
        graph: StreamGraph,
        config: JobConfig,
        job_name: str,
        *,
        restore: str | None = None,
        allow_non_restored_state: bool = False,
    ) -> None:
        self.graph = graph
        self.config = config
        self.job_name = job_name
        self.restore = restore
        self.allow_non_restored_state = allow_non_restored_state
        self.restart_strategy: RestartStrategy = config.restart_strategy or (
            ExponentialDelayRestartStrategy()
            if config.checkpoint_config.is_checkpointing_enabled()
            else NoRestartStrategy()
        )
        self._stopped_with_savepoint: str | None = None
        self._attempt_scope: anyio.CancelScope | None = None
        #: While a stop with drain runs: where its savepoint goes, and the event set when
        #: the attempt took it (``_stopped_with_savepoint`` set) or ended without it.
        self._drain_target: str | None = None
        self._drain_done: anyio.Event | None = None
        self._final: FinalCheckpoint | None = None
        self.job_id = uuid.uuid4().hex
        self.status = JobStatus.CREATED
        self.restart_count = 0
        self.plan: JobPlan = build_plan(graph, config.parallelism, config.max_parallelism)
        self._deployment: Deployment | None = None
        self._records_done = 0
        self._restored_from: str | None = None
        self.coordinator: CheckpointCoordinator | None = None
        self._gateway = MailboxGateway()
        #: Wall-clock ms: the job's start and end (None while it runs), and the last
        #: restore from a checkpoint (Flink's lastCheckpointRestoreTimestamp).
        self.start_time_ms = int(time.time() * 1000)
        self.end_time_ms: int | None = None
        self.last_restore_timestamp_ms: int | None = None
        #: How many attempts started from a checkpoint or savepoint, and the last of those.
        self.restores = 0
        self.last_restored: CompletedCheckpoint | None = None
        #: The failures of attempts, oldest first, as (wall-clock ms, error): what the
        #: REST API's ``/jobs/<id>/exceptions`` lists.
        self.exceptions: list[tuple[int, BaseException]] = []
        #: Called with each attempt's deployment as the attempt ends, while its counters
        #: can still be read (the metrics keep the final figures of a finished job).
        self.attempt_end_listeners: list[Callable[[Deployment], None]] = []

    def mark_cancelling(self) -> None:
        if not self.status.is_terminal:
            self.status = JobStatus.CANCELLING

    def statistics(self) -> dict[str, Any]:
        records = self._records_done
        if self._deployment is not None:
            records += sum(s.records_in for s in self._deployment.subtasks)
        return {
            "status": self.status.value,
            "restart_count": self.restart_count,
            "records_in": records,
        }

    def metrics(self) -> dict[str, Any]:
        """The user metrics of the running attempt: ``{operator uid: {subtask index:
        {metric name: value}}}`` (the uid: unique, unlike names; ``.uid()`` or derived
        from the name, e.g. ``map-3``), operators and subtasks without metrics left out;
        empty when no attempt runs (metrics start from zero in every attempt, as in
        Flink)."""
        out: dict[str, Any] = {}
        if self._deployment is None:
            return out
        for subtask in self._deployment.subtasks:
            for chained in subtask.operators:
                values = chained.ctx.metric_group.snapshot()
                if values:
                    out.setdefault(chained.ctx.operator_uid, {})[subtask.index] = values
        return out

    @property
    def restored_from(self) -> str | None:
        """Where the running attempt's state came from (None: a fresh start)."""
        return self._restored_from

    @property
    def deployment(self) -> Deployment | None:
        """The subtasks and channels of the running attempt (None between attempts)."""
        return self._deployment

    def channel_statistics(self) -> list[Any]:
        if self._deployment is None:
            return []
        return [channel.statistics() for channel in self._deployment.channels]

    def checkpoint_stats(self) -> list[Any]:
        if self.coordinator is None:
            return []
        return list(self.coordinator.statistics().history)

    def _create_coordinator(
        self, storage: CheckpointStorage, restored: CompletedCheckpoint | None
    ) -> CheckpointCoordinator:
        # A coordinator exists even without periodic checkpoints: savepoints need it.
        config = self.config.checkpoint_config
        if config.is_unaligned_checkpoints_enabled() and not config.takes_unaligned_checkpoints:
            logger.warning(
                "unaligned checkpoints apply to EXACTLY_ONCE only (as in Flink): job %r "
                "checkpoints %s, with barrier tracking",
                self.job_name,
                config.mode.name,
            )
        if config.takes_unaligned_checkpoints and config.max_concurrent_checkpoints > 1:
            logger.warning(
                "job %r: unaligned checkpoints are never concurrent (as in Flink): a newer "
                "checkpoint's barrier subsumes one still in progress at a subtask",
                self.job_name,
            )
        tasks = [
            (chain.head.operator_uid, index)
            for chain in self.plan.chains
            for index in range(chain.parallelism)
        ]
        uids = {chain.index: chain.head.operator_uid for chain in self.plan.chains}
        sources = [(uids[chain], index) for chain, index in coordinator_triggered(self.plan)]
        return CheckpointCoordinator(
            config,
            storage,
            self.job_name,
            tasks_to_ack=tasks,
            tasks_to_trigger=sources,
            gateway=_FreezingGateway(self._gateway),
            max_parallelism=self.plan.max_parallelism,
            restored=restored,
        )

    async def run(self) -> JobExecutionResult:
        """Run attempts until the job finishes, or fails beyond its restart strategy.

        A failure is raised after the sources' sessions closed: raised inside them, their
        task groups would wrap it in an exception group.
        """
        try:
            return await self._run()
        except BaseException as exc:
            if isinstance(exc, Exception) and not any(exc is e for _, e in self.exceptions):
                self.exceptions.append((int(time.time() * 1000), exc))
            raise
        finally:
            self.end_time_ms = int(time.time() * 1000)
            # An operator wrapper may want to know (a FaultInjector warns about faults
            # that never fired).
            job_ended = getattr(self.config.operator_wrapper, "job_ended", None)
            if job_ended is not None:
                job_ended(self.job_name)

    async def _run(self) -> JobExecutionResult:
        started = time.monotonic()
        splits = self._create_splits()
        storage = create_checkpoint_storage(self.config.checkpoint_config.storage, self.job_name)
        failure: Exception | None = None
        try:
            try:
                async with contextlib.AsyncExitStack() as sessions:
                    sessions.enter_context(gc_policy.job_running())
                    sessions.callback(restore_switch_interval)
                    try:
                        if self.config.checkpoint_config.is_checkpointing_enabled():
                            await self._check_storage_writable(storage)
                        restore_point = await self._initial_restore_point(storage)
                        self.coordinator = self._create_coordinator(storage, restore_point)
                        sessions.push_async_callback(self._shutdown_coordinator)
                        await self._open_sessions(sessions)
                        failure = await self._run_attempts(splits, restore_point)
                        if failure is not None and not isinstance(failure, JobExecutionError):
                            # Too many failed checkpoints, unusable storage: the running
                            # job failed all the same (start-up errors stay as they are).
                            failure = JobExecutionError.of_job(
                                self.job_name, failure, attempt=self.restart_count
                            )
                    except Exception as exc:  # cancellation is a BaseException: it passes
                        failure = exc
            except BaseExceptionGroup as group:
                error = first_error(group)
                if error is None:
                    raise
                failure = failure or error
            if failure is not None:
                raise failure
        except BaseException:
            self.status = (
                JobStatus.CANCELED if self.status is JobStatus.CANCELLING else JobStatus.FAILED
            )
            raise
        self.status = JobStatus.FINISHED
        assert self.coordinator is not None
        return JobExecutionResult(
            job_id=self.job_id,
            job_name=self.job_name,
            net_runtime_ms=(time.monotonic() - started) * 1000,
            restart_count=self.restart_count,
            records_in=self.statistics()["records_in"],
            checkpoints_completed=self.coordinator.statistics().completed,
            savepoint_path=self._stopped_with_savepoint,
            restored_from=self._restored_from,
        )

    async def _check_storage_writable(self, storage: CheckpointStorage) -> None:
        """Fail at start, in one line, if no checkpoint could ever be written: restarting
        would only fail every checkpoint again."""
        try:
            await storage.check_writable()
        except CheckpointStorageError as exc:
            raise JobExecutionError.of_job(self.job_name, exc) from exc

    async def _run_attempts(
        self, splits: dict[int, list[Any]], restore_point: CompletedCheckpoint | None
    ) -> Exception | None:
        """Run attempts, restarting as the strategy allows; return the final failure."""
        coordinator = self.coordinator
        assert coordinator is not None
        self._set_running()
        attempt = 0
        while True:
            restored = None
            self._restored_from = None
            if restore_point is not None:
                restored = await self._read_state(restore_point)
                self._restored_from = restore_point.location
                self.last_restore_timestamp_ms = int(time.time() * 1000)
                self.restores += 1
                self.last_restored = restore_point
            settings = SubtaskSettings(
                job_name=self.job_name,
                attempt=attempt,
                batch_size=self.config.batch_size,
                buffer_timeout_s=self.config.buffer_timeout_ms / 1000,
                clock=self.config.clock or SystemClock(),
                auto_watermark_interval_ms=self.config.auto_watermark_interval_ms,
                batch_execution=self.config.batch_execution,
                job_parameters=self.config.job_parameters,
                metrics_enabled=self.config.metrics_enabled,
                incremental_checkpoints=coordinator.config.incremental,
            )
            failure = await self._run_attempt(settings, splits, restored)
            if failure is None or self._stopped_with_savepoint:
                return None
            self.exceptions.append((int(time.time() * 1000), failure))
            del self.exceptions[:-_EXCEPTION_HISTORY]
            if isinstance(failure.__cause__, OutputClosedError):
                return failure  # its reader is gone: a restart would only fail again
            delay_ms = self.restart_strategy.on_failure()
            # ``failure`` reads "job 'x' failed in operator ...: cause": each line says it
            # once, then what the restart strategy decided.
            if delay_ms is None:
                logger.error("%s; %s", failure, _no_further_restart(self.restart_strategy))
                return failure
            if self.status is not JobStatus.CANCELLING:
                self.status = JobStatus.RESTARTING
            self.restart_count += 1
            attempt += 1
            logger.warning(
                "%s; restart strategy %s restarts it in %.0f ms (restart %d)",
                failure,
                self.restart_strategy.describe(),
                delay_ms,
                self.restart_count,
            )
            await coordinator.abort_all(CheckpointFailureReason.JOB_FAILOVER_REGION, str(failure))
            coordinator.resume()
            await anyio.sleep(delay_ms / 1000)
            # The newest completed checkpoint *or savepoint*: a savepoint's completion let
            # two-phase-commit sinks commit up to it, so an older point would commit twice.
            restore_point = coordinator.latest_recovery_point() or restore_point
            self._set_running()

    def _set_running(self) -> None:
        # A cancel may have arrived before the job got here: it stays CANCELLING.
        if self.status is not JobStatus.CANCELLING:
            self.status = JobStatus.RUNNING

    async def _initial_restore_point(
        self, storage: CheckpointStorage
    ) -> CompletedCheckpoint | None:
        if self.restore is None:
            point = None
        else:
            reader = (
                storage if self.restore == "latest" else self._reader_for(self.restore, storage)
            )
            point = await find_restore_point(
                reader, self.restore, self.job_name, exactly_once_sinks=self._two_phase_sinks()
            )
        # After the restore decision, which needs the evidence they may be.
        await clean_incomplete_checkpoints(storage, self.job_name)
        return point

    def _two_phase_sinks(self) -> list[str]:
        """Names of the job's exactly-once (two-phase-commit) sinks."""
        return [
            node.name
            for chain in self.plan.chains
            for node in chain.nodes
            if node.operation.api == "sink_to" and isinstance(node.args[0], TwoPhaseCommitSink)
        ]

    def _reader_for(self, location: str, storage: CheckpointStorage) -> CheckpointStorage:
        """The storage that reads ``location``: the job's own, or, for a directory on disk
        while the job keeps its checkpoints in memory, a file storage (as Flink reads
        ``-s PATH`` whatever checkpoint storage the job uses)."""
        in_files = isinstance(getattr(storage, "blobs", None), FileBlobStore)
        if in_files or str(location).startswith("memory://"):
            return storage
        return FileCheckpointStorage(Path(location).parent, self.job_name)

    async def _read_state(self, point: CompletedCheckpoint) -> RestoredState:
        assert self.coordinator is not None
        coordinator = self.coordinator
        pinned = point.checkpoint_id in {c.checkpoint_id for c in coordinator.completed_store.all()}
        if pinned:
            coordinator.retain_checkpoint(point.checkpoint_id)
        try:
            return await read_restored_state(
                self._reader_for(point.location, coordinator.storage),
                point,
                self.plan,
                allow_non_restored_state=self.allow_non_restored_state,
            )
        finally:
            if pinned:
                await coordinator.release_checkpoint(point.checkpoint_id)

    # --- savepoints ---

    async def trigger_savepoint(self, target_directory: str) -> str:
        """Take a savepoint into ``target_directory``; return its path."""
        coordinator = self._require_running("trigger_savepoint")
        self._check_savepoint_target(target_directory)
        completed = await coordinator.trigger_savepoint(str(target_directory))
        return completed.location

    def _check_savepoint_target(self, target_directory: str) -> None:
        storage_dir = self.config.checkpoint_config.get_checkpoint_storage_dir()
        if storage_dir is None and not str(target_directory).startswith("memory://"):
            raise ValueError(
                "savepoints are written by the job's checkpoint storage, which is in memory; "
                "set a checkpoint directory (get_checkpoint_config()."
                "set_checkpoint_storage_dir(...)) to write savepoints to disk"
            )

    async def stop_with_savepoint(self, target_directory: str, *, drain: bool = False) -> str:
        """Take a savepoint, then stop the job (it ends as FINISHED); return the path.

        Every subtask has handled the savepoint's completion before the job stops, so
        two-phase-commit sinks commit what the savepoint covers (Flink's synchronous
        savepoint): the output is complete up to the savepoint. With ``drain`` (PyFlink's
        ``advance_to_end_of_event_time``), see :meth:`_stop_draining`.
        """
        if drain:
            return await self._stop_draining(target_directory)
        path = await self.trigger_savepoint(target_directory)
        await self._gateway.drain()
        self._stopped_with_savepoint = path
        if self._attempt_scope is not None:
            self._attempt_scope.cancel()
        return path

    async def _stop_draining(self, target_directory: str) -> str:
        """Flink's stop with savepoint and drain: end every source's input where it is, let
        the MAX watermark fire every event-time timer and window downstream, and take the
        job's final checkpoint (FLIP-147) as the savepoint; the job then finishes.

        :raises ValueError: without periodic checkpointing (the final checkpoint that
            becomes the savepoint is taken only with it), or for an in-memory target
        :raises RuntimeError: if the job's input already ended, or the attempt failed
            before the savepoint completed (the job then restarts as usual)
        """
        coordinator = self._require_running("stop_with_savepoint")
        self._check_savepoint_target(target_directory)
        if not coordinator.config.is_checkpointing_enabled():
            raise ValueError(
                "stop_with_savepoint(advance_to_end_of_event_time=True) takes the savepoint "
                "as the job's final checkpoint, which needs checkpointing on: call "
                "env.enable_checkpointing(interval_ms), or stop without draining"
            )
        final, deployment = self._final, self._deployment
        assert final is not None and deployment is not None  # the job is running
        if self._drain_target is not None:
            raise RuntimeError("the job is already stopping with a drained savepoint")
        if final.state is not FinalCheckpointState.WAITING_FOR_END_OF_INPUT:
            raise RuntimeError(
                "the job's input has ended: it is finishing by itself with its final "
                "checkpoint; there is nothing left to drain"
            )
        self._drain_target = str(target_directory)
        done = self._drain_done = anyio.Event()
        for subtask in deployment.subtasks:
            if subtask.gate is None:  # a source
                subtask.post(subtask.stop_input)
        await done.wait()
        path = self._stopped_with_savepoint
        if path is None:
            raise RuntimeError(
                f"job {self.job_name!r} failed while draining, before its savepoint "
                f"completed; it restarts from its latest checkpoint as usual"
            )
        return path

    def _require_running(self, what: str) -> CheckpointCoordinator:
        if self.coordinator is None or self.status is not JobStatus.RUNNING:
            raise RuntimeError(f"{what}() needs a running job; the job is {self.status.value}")
        return self.coordinator

    async def _shutdown_coordinator(self) -> None:
        if self.coordinator is not None:
            with anyio.CancelScope(shield=True):
                await self.coordinator.shutdown()

    def _create_splits(self) -> dict[int, list[Any]]:
        splits: dict[int, list[Any]] = {}
        for node in self.plan.chains:
            head = node.head
            if head.kind == "source":
                assert head.source is not None
                splits[head.id] = list(head.source.create_splits(node.parallelism))
        return splits

    def _wal_dir(self) -> Path | None:
        """Where sources keep ingress write-ahead logs (one subdirectory per source uid):
        under the job's checkpoint directory, or None without one."""
        base = self.config.checkpoint_config.get_checkpoint_storage_dir()
        if base is None:
            return None
        return Path(base) / safe_name(self.job_name) / "wal"

    async def _open_sessions(self, stack: contextlib.AsyncExitStack) -> None:
        for chain in self.plan.chains:
            head = chain.head
            if head.kind != "source":
                continue
            assert head.source is not None
            if head.source.delivery is DeliveryGuarantee.AT_MOST_ONCE:
                # Only sources with a write-ahead-log option (socket_text_stream,
                # PushSource) can be at-most-once; the log makes them exactly-once.
                where = (
                    "(its log is kept under the job's checkpoint directory)"
                    if self._wal_dir() is not None
                    else "and set a checkpoint directory for the log (env.get_checkpoint_"
                    "config().set_checkpoint_storage_dir(DIR), or streamlet run "
                    "--checkpoint-dir DIR)"
                )
                logger.warning(
                    "source %r (uid %r) cannot replay its input: records read since the last "
                    "checkpoint are lost if the job fails (at-most-once); for exactly-once, "
                    "create it with write_ahead_log=True %s",
                    head.name,
                    head.operator_uid,
                    where,
                )
            ctx = SourceSessionContext(self.job_name, head.operator_uid, self._wal_dir())
            await stack.enter_async_context(head.source.session(ctx))

    async def _run_attempt(
        self,
        settings: SubtaskSettings,
        splits: dict[int, list[Any]],
        restored: RestoredState | None,
    ) -> JobExecutionError | None:
        deployment = deploy(
            self.plan,
            settings,
            splits,
            self.config.channel_capacity,
            restored,
            operator_wrapper=self.config.operator_wrapper,
        )
        self._deployment = deployment
        coordinator = self.coordinator
        assert coordinator is not None
        checkpointing = coordinator.config.is_checkpointing_enabled()
        final = FinalCheckpoint(
            [(s.root.ctx.operator_uid, s.index) for s in deployment.triggered],
            enabled=checkpointing,
        )
        self._final = final
        self._attach_checkpointers(deployment, coordinator, final)
        # The state is deployed (restored, if restoring): keep the collector off it.
        gc_policy.after_restore(restarted=settings.attempt > 0)
        failures: list[Exception] = []

        async def guard(subtask: Subtask, scope: anyio.CancelScope) -> None:
            try:
                await subtask.run()
            except JobExecutionError as exc:
                failures.append(exc)
                scope.cancel()
            except Exception as exc:
                head = subtask.root
                failures.append(head.failure(exc, detail=f"internal error: {exc!r}"))
                scope.cancel()

        periodic = anyio.CancelScope()

        async def run_coordinator(scope: anyio.CancelScope) -> None:
            assert coordinator is not None
            try:
                with periodic:
                    await coordinator.run()
            except Exception as exc:  # tolerable failures exceeded, or a bug: fail the job
                failures.append(exc)
                scope.cancel()

        async def final_checkpoint(scope: anyio.CancelScope) -> None:
            assert coordinator is not None
            try:
                await self._final_checkpoint(final, coordinator, periodic)
            except Exception as exc:
                failures.append(exc)
                scope.cancel()

        try:
            async with anyio.create_task_group() as job:
                self._attempt_scope = job.cancel_scope
                job.start_soon(run_coordinator, job.cancel_scope)
                if checkpointing:
                    job.start_soon(final_checkpoint, job.cancel_scope)
                async with anyio.create_task_group() as subtasks:
                    for subtask in deployment.subtasks:
                        subtasks.start_soon(guard, subtask, job.cancel_scope)
                job.cancel_scope.cancel()  # every subtask ended: stop the coordinator loop
        finally:
            self._attempt_scope = None
            self._records_done += sum(s.records_in for s in deployment.subtasks)
            for listener in self.attempt_end_listeners:
                listener(deployment)
            self._deployment = None
            self._final = None
            if self._drain_done is not None:  # the drained savepoint was taken, or never is
                self._drain_done.set()
                self._drain_target = self._drain_done = None
        return failures[0] if failures else None  # type: ignore[return-value]

    def _attach_checkpointers(
        self, deployment: Deployment, coordinator: CheckpointCoordinator, final: FinalCheckpoint
    ) -> None:
        config = coordinator.config
        mode = config.mode
        unaligned = config.takes_unaligned_checkpoints
        forced = config.is_force_unaligned_checkpoints()
        timeout_ms = config.get_aligned_checkpoint_timeout()
        if unaligned:
            # Flink's rule: pointwise (forward, rescale) and broadcast edges are checkpointed
            # aligned unless unaligned checkpoints are forced.
            for channel in deployment.channels:
                assert channel.edge is not None
                channel.overtakable = forced or channel.edge.partitioner not in _ALIGNED_ONLY
        self._gateway.clear()
        for chain in self.plan.chains:
            for subtask in deployment.by_chain[chain.index]:
                task_id = (chain.head.operator_uid, subtask.index)
                handler = None
                if not subtask.triggered_by_coordinator:
                    assert subtask.gate is not None
                    channels = subtask.gate.channels
                    handler = create_barrier_handler(
                        mode,
                        len(channels),
                        # A subtask with an aligned-only input aligns (see the README).
                        unaligned=unaligned and all(c.overtakable for c in channels),
                        aligned_timeout_ms=timeout_ms,
                    )
                checkpointer = SubtaskCheckpointer(
                    subtask,
                    None if subtask.triggered_by_coordinator else subtask.gate,
                    task_id,
                    coordinator,
                    handler,
                    self.plan.max_parallelism,
                    final=final,
                    post=subtask.post,
                    unaligned_sources=unaligned and timeout_ms == 0,
                )
                subtask.checkpointer = checkpointer
                self._gateway.register(task_id, subtask, checkpointer)

    async def _final_checkpoint(
        self,
        final: FinalCheckpoint,
        coordinator: CheckpointCoordinator,
        periodic: anyio.CancelScope,
    ) -> None:
        """When every source has read all its input, checkpoint once more and let them end.

        The sources wait for this checkpoint's completion before they send end of
        partition, so two-phase-commit sinks commit everything before the job finishes.
        Periodic checkpoints stop here: after the final one there is nothing new to save.
        The protocol's state is ``final`` (see :class:`FinalCheckpoint`); this loop only
        triggers, waits and retries.
        """
        await final.wait_end_of_input()
        periodic.cancel()
        # Let checkpoints in flight end first, so the final one completes last.
        for checkpoint_id in coordinator.pending_checkpoint_ids:
            with contextlib.suppress(CheckpointError, ValueError):
                await coordinator.wait_for_completion(checkpoint_id)
        timeout_s = coordinator.config.timeout_ms / 1000
        while True:
            # The periodic loop, which fails the job on too many failed checkpoints, is
            # stopped: this loop must do it, or a suspended coordinator is retried for ever.
            if coordinator.job_failure is not None:
                raise coordinator.job_failure
            # A stop with drain takes this checkpoint as its savepoint.
            target = self._drain_target
            if target is None:
                result = coordinator.trigger_checkpoint(force=True)
            else:
                result = coordinator.trigger_checkpoint(
                    CheckpointKind.SAVEPOINT, target, force=True
                )
            if isinstance(result, CheckpointFailureReason):
                final.on_failed(None, result)
                logger.warning("final checkpoint could not be triggered: %s", result.value)
                await anyio.sleep(0.05)
                continue
            final.on_triggered(result)
            try:
                with anyio.move_on_after(timeout_s):
                    completed = await coordinator.wait_for_completion(result)
                    if target is not None:
                        self._stopped_with_savepoint = completed.location
                    final.on_completed()
                    return
                await coordinator.check_timeouts()  # expire it, then try again
                final.on_failed(result, CheckpointFailureReason.CHECKPOINT_EXPIRED)
            except CheckpointError as exc:
                final.on_failed(result, exc.reason)
                logger.warning("final checkpoint %d failed (%s); retrying", result, exc)


#: Partitioners whose edges carry aligned barriers unless unaligned checkpoints are forced.
_ALIGNED_ONLY = frozenset({"forward", "rescale", "broadcast"})


class _FreezingGateway:
    """The subtasks' gateway, which also moves the state out of the collector's way when a
    checkpoint completed (see :mod:`streamlet.job.gc_policy`)."""

    def __init__(self, gateway: MailboxGateway) -> None:
        self._gateway = gateway

    def trigger_checkpoint(self, task: Any, barrier: Any) -> None:
        self._gateway.trigger_checkpoint(task, barrier)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        gc_policy.after_checkpoint()
        self._gateway.notify_checkpoint_complete(checkpoint_id)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        self._gateway.notify_checkpoint_aborted(checkpoint_id)


def _no_further_restart(strategy: RestartStrategy) -> str:
    """What the restart strategy decided when it gives up, and what to do about it."""
    if isinstance(strategy, NoRestartStrategy):
        return (
            "the restart strategy is no restart, so the job fails at its first failure "
            "(set one with env.set_restart_strategy(RestartStrategies...), or enable "
            "checkpointing for Flink's default, to restart on failures)"
        )
    return f"restart strategy {strategy.describe()} allows no further restart"
