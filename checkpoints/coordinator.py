"""The checkpoint coordinator: when to trigger, and what happens when subtasks answer.

Mirrors Flink's ``CheckpointCoordinator``, minus its locks: every method is called from one
task on one event loop, so state is plain dicts. It is policy and lifecycle only:

- **trigger** (:meth:`CheckpointCoordinator.trigger_checkpoint`, directly callable; the
  periodic :meth:`~CheckpointCoordinator.run` loop is a thin wrapper): refused while
  ``max_concurrent_checkpoints`` are in flight or a savepoint is, or before ``min_pause``
  has passed since the last completion; savepoints and forced checkpoints skip both checks.
  A trigger reserves an id from the storage (ids keep increasing across runs) and asks the
  engine, through the :class:`SubtaskGateway`, to put a barrier in every source's mailbox.
- **acknowledge**: when the last subtask acknowledged, ``_metadata`` is written last and
  atomically, the checkpoint joins the completed store, older pending checkpoints are
  aborted as subsumed, every subtask is notified, and checkpoints beyond retention are
  discarded.
- **abort** (decline, expiry, failed ``_metadata`` write, failover): one path. Subtasks are
  notified, the files are discarded, and counted failures are added up. When they exceed
  ``tolerable_failed_checkpoints`` the job must fail: the engine learns it from
  :meth:`~CheckpointCoordinator.run`, which raises
  :class:`~streamlet.checkpoints.errors.TooManyFailedCheckpointsError`, from :attr:`job_failure`,
  and from the optional ``on_job_failure`` callback.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from .completed import CompletedCheckpoint, CompletedCheckpointStore
from .config import CheckpointConfig
from .errors import CheckpointError, CheckpointFailureReason, TooManyFailedCheckpointsError
from .events import CheckpointBarrier, CheckpointKind
from .failures import FailureTolerance
from .metadata import CheckpointMetadata, StateHandle
from .pending import AckResult, CheckpointOutcome, PendingCheckpoint, TaskId
from .stats import CheckpointStatsSnapshot, CheckpointStatsTracker, SubtaskCheckpointStats
from .storage import CheckpointStorage

__all__ = ["CheckpointCoordinator", "SubtaskGateway"]

_log = logging.getLogger("streamlet.checkpoints")
_Reason = CheckpointFailureReason
_RECENT = 64  # finished checkpoints remembered, to tell late messages from unknown ones


class SubtaskGateway(Protocol):
    """How the coordinator reaches subtasks. Every method must return at once, never block:
    the engine puts a message in the subtask's mailbox. Notifications are best effort (a
    subtask that is gone may miss them), as Flink's ``CheckpointListener`` contract says.
    """

    def trigger_checkpoint(self, task: TaskId, barrier: CheckpointBarrier) -> None:
        """Ask source subtask ``task`` to snapshot its position and emit ``barrier``."""
        ...

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Tell every subtask that ``checkpoint_id`` completed (sinks commit here)."""
        ...

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        """Tell every subtask that ``checkpoint_id`` was aborted."""
        ...


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class CheckpointCoordinator:
    """Trigger, complete and abort the checkpoints of one job.

    :param config: the checkpoint configuration (validated again here)
    :param storage: where checkpoints go
    :param job_name: the job's name (recorded in ``_metadata``)
    :param tasks_to_ack: every subtask that must acknowledge a checkpoint
    :param tasks_to_trigger: the source subtasks that receive the trigger
    :param gateway: how to reach subtasks
    :param clock: monotonic seconds; policy (timeouts, min pause) uses only this
    :param wall_clock_ms: wall-clock milliseconds, for barrier and metadata timestamps
    :param max_parallelism: the job's max parallelism, recorded in ``_metadata``
    :param metadata_extra: job-level data for ``_metadata`` (JSON-able)
    :param restored: the checkpoint this run restored from; new ids continue after it, and
        if it lies in this job's checkpoint directory it joins the completed store (so
        retention eventually deletes it; a savepoint or a foreign checkpoint never is)
    :param on_job_failure: called once when tolerable failures are exceeded
    :param stats_history_size: finished checkpoints kept in the statistics
    :raises ValueError: if a task list is empty or a source is not among the tasks to ack
    """

    def __init__(
        self,
        config: CheckpointConfig,
        storage: CheckpointStorage,
        job_name: str,
        *,
        tasks_to_ack: Iterable[TaskId],
        tasks_to_trigger: Iterable[TaskId],
        gateway: SubtaskGateway,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
        max_parallelism: int | None = None,
        metadata_extra: Mapping[str, Any] | None = None,
        restored: CompletedCheckpoint | None = None,
        on_job_failure: Callable[[TooManyFailedCheckpointsError], None] | None = None,
        stats_history_size: int = 100,
    ) -> None:
        config.validate()
        self.config = config
        self.storage = storage
        self.job_name = job_name
        self.tasks_to_ack = frozenset(tasks_to_ack)
        self.tasks_to_trigger = tuple(tasks_to_trigger)
        if not self.tasks_to_ack or not self.tasks_to_trigger:
            raise ValueError("a checkpointed job needs tasks to acknowledge and sources to trigger")
        if not self.tasks_to_ack.issuperset(self.tasks_to_trigger):
            raise ValueError(
                f"every source subtask must also acknowledge, missing: "
                f"{sorted(set(self.tasks_to_trigger) - self.tasks_to_ack)}"
            )
        self._gateway = gateway
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._max_parallelism = max_parallelism
        self._metadata_extra = dict(metadata_extra or {})
        self._on_job_failure = on_job_failure
        self.completed_store = CompletedCheckpointStore(config.max_retained_checkpoints)
        self._stats = CheckpointStatsTracker(stats_history_size)
        self._tolerance = FailureTolerance(config.tolerable_failed_checkpoints)
        self._pending: dict[int, PendingCheckpoint] = {}
        # Fully acknowledged, ``_metadata`` being written: no longer abortable.
        self._finalizing: dict[int, PendingCheckpoint] = {}
        self._recent: OrderedDict[int, CheckpointOutcome] = OrderedDict()
        self._to_discard: deque[int] = deque()
        self._last_completion_s: float | None = None
        self._job_failure: TooManyFailedCheckpointsError | None = None
        self._shutdown = False
        self._wakeup: anyio.Event | None = None
        self._min_id = 1
        self._latest_savepoint: CompletedCheckpoint | None = None
        if restored is not None and restored.kind is CheckpointKind.SAVEPOINT:
            self._latest_savepoint = restored
        if restored is not None:
            self._min_id = restored.checkpoint_id + 1
            self._stats.report_restored(restored.checkpoint_id)
            if restored.kind is CheckpointKind.CHECKPOINT and restored.location == (
                storage.location_of(restored.checkpoint_id)
            ):
                self.completed_store.add(restored)

    # --- queries ---

    @property
    def job_failure(self) -> TooManyFailedCheckpointsError | None:
        """Set once tolerable failures were exceeded: the job must fail over."""
        return self._job_failure

    @property
    def pending_checkpoint_ids(self) -> list[int]:
        """Ids of the checkpoints in flight (including those being finalized), ascending."""
        return sorted([*self._pending, *self._finalizing])

    def latest_completed(self) -> CompletedCheckpoint | None:
        """Return the newest retained completed checkpoint (savepoints excluded)."""
        return self.completed_store.latest()

    def latest_recovery_point(self) -> CompletedCheckpoint | None:
        """Return what a failover restores: the newest completed checkpoint or savepoint.

        A savepoint counts (as in Flink since FLINK-10354): its completion notified the
        two-phase-commit sinks, which committed up to it, so restoring an older checkpoint
        would commit that output a second time.
        """
        latest = self.completed_store.latest()
        savepoint = self._latest_savepoint
        if savepoint is not None and (
            latest is None or savepoint.checkpoint_id > latest.checkpoint_id
        ):
            return savepoint
        return latest

    def statistics(self) -> CheckpointStatsSnapshot:
        """Return the checkpoint statistics: counts, latest, history."""
        return self._stats.statistics()

    # --- triggering ---

    def trigger_checkpoint(
        self,
        kind: CheckpointKind = CheckpointKind.CHECKPOINT,
        savepoint_dir: str | None = None,
        *,
        force: bool = False,
    ) -> int | CheckpointFailureReason:
        """Trigger a checkpoint or savepoint now; return its id, or why it was refused.

        A periodic checkpoint is refused (with a pre-flight reason, consuming no id) while
        ``max_concurrent_checkpoints`` are in flight or a savepoint is, or before the minimum
        pause since the last completion. A savepoint, or a checkpoint with ``force=True``
        (the final checkpoint of a bounded job), skips those checks.

        :param savepoint_dir: where a savepoint goes (required for a savepoint only)
        :raises ValueError: if a savepoint has no ``savepoint_dir`` or a checkpoint has one
        """
        if kind is CheckpointKind.SAVEPOINT and savepoint_dir is None:
            raise ValueError("a savepoint needs a target directory, got None")
        if kind is CheckpointKind.CHECKPOINT and savepoint_dir is not None:
            raise ValueError(f"only savepoints take a target directory, got {savepoint_dir!r}")
        if self._shutdown:
            return _Reason.CHECKPOINT_COORDINATOR_SHUTDOWN
        if self._job_failure is not None:
            return _Reason.CHECKPOINT_COORDINATOR_SUSPEND
        if kind is CheckpointKind.CHECKPOINT and not force:
            in_flight = [*self._pending.values(), *self._finalizing.values()]
            if len(in_flight) >= self.config.max_concurrent_checkpoints or any(
                p.kind is CheckpointKind.SAVEPOINT for p in in_flight
            ):
                return _Reason.TOO_MANY_CONCURRENT_CHECKPOINTS
            if self._clock() < self._earliest_by_min_pause():
                return _Reason.MINIMUM_TIME_BETWEEN_CHECKPOINTS
        checkpoint_id = self.storage.next_checkpoint_id(self._min_id)
        location = self.storage.begin_checkpoint(checkpoint_id, kind, savepoint_dir)
        timestamp_ms = self._wall_clock_ms()
        pending = PendingCheckpoint(
            checkpoint_id, kind, timestamp_ms, self._clock(), self.tasks_to_ack, location
        )
        self._pending[checkpoint_id] = pending
        self._stats.report_pending(checkpoint_id, kind, timestamp_ms, pending.num_subtasks)
        barrier = CheckpointBarrier(checkpoint_id, timestamp_ms, kind)
        for task in self.tasks_to_trigger:
            try:
                self._gateway.trigger_checkpoint(task, barrier)
            except Exception as exc:
                _log.warning("could not trigger checkpoint %d at %s: %r", checkpoint_id, task, exc)
                self._abort(pending, _Reason.TRIGGER_CHECKPOINT_FAILURE, f"{task}: {exc!r}")
                return _Reason.TRIGGER_CHECKPOINT_FAILURE
        return checkpoint_id

    async def trigger_savepoint(self, target_dir: str) -> CompletedCheckpoint:
        """Trigger a savepoint into ``target_dir`` and wait until it completes.

        :raises CheckpointError: if it was refused or failed
        """
        result = self.trigger_checkpoint(CheckpointKind.SAVEPOINT, target_dir)
        if isinstance(result, CheckpointFailureReason):
            raise CheckpointError(result)
        return await self.wait_for_completion(result)

    async def wait_for_completion(self, checkpoint_id: int) -> CompletedCheckpoint:
        """Wait until checkpoint ``checkpoint_id`` ends; return it if it completed.

        Works for checkpoints in flight and for recently finished ones.

        :raises CheckpointError: if it was aborted
        :raises ValueError: if the id is unknown (never triggered, or long forgotten)
        """
        pending = self._pending.get(checkpoint_id) or self._finalizing.get(checkpoint_id)
        if pending is not None:
            return await pending.wait()
        outcome = self._recent.get(checkpoint_id)
        if outcome is None:
            raise ValueError(f"unknown checkpoint id {checkpoint_id}")
        if isinstance(outcome, CheckpointError):
            raise CheckpointError(outcome.reason, outcome.checkpoint_id, outcome.detail)
        return outcome

    # --- messages from subtasks ---

    async def receive_acknowledge(
        self,
        task: TaskId,
        checkpoint_id: int,
        handles: Sequence[StateHandle] = (),
        stats: SubtaskCheckpointStats | None = None,
    ) -> AckResult:
        """Record that ``task`` wrote its state; complete the checkpoint on the last one.

        A late acknowledgement of an aborted checkpoint discards its directory again (the
        late subtask may have written into it after the abort).
        """
        pending = self._pending.get(checkpoint_id) or self._finalizing.get(checkpoint_id)
        if pending is None:
            outcome = self._recent.get(checkpoint_id)
            if outcome is None:
                return AckResult.UNKNOWN
            if isinstance(outcome, CheckpointError):
                self._to_discard.append(checkpoint_id)
                await self._drain_discards()
            return AckResult.DISCARDED
        result = pending.acknowledge(task, handles, stats)
        if result is AckResult.SUCCESS:
            ack_ms = self._wall_clock_ms()
            if stats is None:
                stats = SubtaskCheckpointStats(task[0], task[1], ack_timestamp_ms=ack_ms)
            elif not stats.ack_timestamp_ms:
                stats = replace(stats, ack_timestamp_ms=ack_ms)
            if not stats.state_size and handles:
                stats = replace(stats, state_size=sum(h.size for h in handles))
            self._stats.report_ack(checkpoint_id, stats)
            if pending.is_fully_acknowledged:
                await self._complete(pending)
        return result

    async def receive_decline(
        self,
        task: TaskId,
        checkpoint_id: int,
        reason: CheckpointFailureReason,
        detail: str | None = None,
    ) -> AckResult:
        """Abort checkpoint ``checkpoint_id`` because ``task`` declined it.

        A late decline of an aborted checkpoint discards its directory again, like a late
        acknowledgement.

        :return: SUCCESS if this aborted it, DISCARDED if it had already ended, UNKNOWN if
            the id or the task is unknown
        """
        pending = self._pending.get(checkpoint_id)
        if pending is None:
            outcome = self._recent.get(checkpoint_id)
            if isinstance(outcome, CheckpointError):
                # A late subtask may have recreated the directory before it gave up.
                self._to_discard.append(checkpoint_id)
                await self._drain_discards()
            known = outcome is not None or checkpoint_id in self._finalizing
            return AckResult.DISCARDED if known else AckResult.UNKNOWN
        if task not in self.tasks_to_ack:
            return AckResult.UNKNOWN
        who = f"declined by {task[0]} subtask {task[1]}"
        self._abort(pending, reason, f"{who}: {detail}" if detail else who)
        await self._drain_discards()
        return AckResult.SUCCESS

    # --- aborting ---

    async def check_timeouts(self) -> None:
        """Abort every pending checkpoint older than the timeout (CHECKPOINT_EXPIRED)."""
        now = self._clock()
        timeout_s = self.config.timeout_ms / 1000.0
        for pending in list(self._pending.values()):
            if now - pending.trigger_time_s >= timeout_s:
                self._abort(
                    pending,
                    _Reason.CHECKPOINT_EXPIRED,
                    f"not complete after {self.config.timeout_ms} ms; "
                    f"{len(pending.not_yet_acknowledged)} of {pending.num_subtasks} "
                    f"subtasks had not acknowledged",
                )
        await self._drain_discards()

    async def abort_all(
        self, reason: CheckpointFailureReason, detail: str | None = None, *, notify: bool = False
    ) -> None:
        """Abort every pending checkpoint (failover, shutdown) and discard their files.

        :param notify: also send ``notify_checkpoint_aborted`` (off by default: on failover
            and shutdown the subtasks are going away)
        """
        for pending in list(self._pending.values()):
            self._abort(pending, reason, detail, notify=notify)
        await self._drain_discards()

    async def shutdown(self) -> None:
        """Abort everything pending and refuse further triggers; :meth:`run` returns."""
        self._shutdown = True
        await self.abort_all(_Reason.CHECKPOINT_COORDINATOR_SHUTDOWN)
        self._wake()

    def retain_checkpoint(self, checkpoint_id: int) -> None:
        """Pin a completed checkpoint while a restore reads it: retention keeps it meanwhile.

        :raises KeyError: if it is not in the completed store
        """
        self.completed_store.retain(checkpoint_id)

    async def release_checkpoint(self, checkpoint_id: int) -> None:
        """Unpin a checkpoint; discard it if retention dropped it meanwhile.

        :raises KeyError: if it was not pinned
        """
        self._to_discard.extend(
            cp.checkpoint_id for cp in self.completed_store.release(checkpoint_id)
        )
        await self._drain_discards()

    def resume(self) -> None:
        """Forget a declared job failure and the failure count (after a failover restart)."""
        self._job_failure = None
        self._tolerance.reset()

    # --- the periodic loop ---

    async def run(self) -> None:
        """Trigger every ``interval_ms`` and expire timed-out checkpoints, until shut down.

        With checkpointing disabled it only expires (savepoints can still be triggered).
        Waiting uses the event loop's clock, so the injected ``clock`` must tick with real
        time here (tests of policy call :meth:`trigger_checkpoint` and
        :meth:`check_timeouts` directly instead).

        :raises TooManyFailedCheckpointsError: when tolerable failures are exceeded
        """
        interval_ms = self.config.interval_ms
        interval_s = math.inf if interval_ms is None else interval_ms / 1000.0
        next_trigger_s = self._clock() + interval_s
        waiting_for_slot = False
        while True:
            if self._job_failure is not None:
                raise self._job_failure
            if self._shutdown:
                return
            await self.check_timeouts()
            if self._job_failure is not None:
                raise self._job_failure
            now = self._clock()
            if now >= next_trigger_s or waiting_for_slot:
                result = self.trigger_checkpoint()
                waiting_for_slot = result is _Reason.TOO_MANY_CONCURRENT_CHECKPOINTS
                if isinstance(result, int):
                    next_trigger_s = now + interval_s
                elif result is _Reason.MINIMUM_TIME_BETWEEN_CHECKPOINTS:
                    next_trigger_s = self._earliest_by_min_pause()
                elif not waiting_for_slot:
                    next_trigger_s = now + interval_s
            deadlines = [
                p.trigger_time_s + self.config.timeout_ms / 1000.0 for p in self._pending.values()
            ]
            if not waiting_for_slot:
                deadlines.append(next_trigger_s)
            await self._sleep_until(min(deadlines, default=math.inf))

    async def _sleep_until(self, deadline_s: float) -> None:
        if self._wakeup is None or self._wakeup.is_set():
            self._wakeup = anyio.Event()
        delay = deadline_s - self._clock()
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        with anyio.move_on_after(delay):
            await self._wakeup.wait()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # --- internals ---

    def _earliest_by_min_pause(self) -> float:
        if self._last_completion_s is None or not self.config.min_pause_between_checkpoints_ms:
            return -math.inf
        return self._last_completion_s + self.config.min_pause_between_checkpoints_ms / 1000.0

    async def _complete(self, pending: PendingCheckpoint) -> None:
        checkpoint_id = pending.checkpoint_id
        del self._pending[checkpoint_id]
        self._finalizing[checkpoint_id] = pending
        metadata = CheckpointMetadata.from_handles(
            checkpoint_id=checkpoint_id,
            kind=pending.kind,
            job_name=self.job_name,
            trigger_timestamp_ms=pending.trigger_timestamp_ms,
            completion_timestamp_ms=self._wall_clock_ms(),
            handles=pending.handles,
            max_parallelism=self._max_parallelism,
            extra=self._metadata_extra,
        )
        try:
            location = await self.storage.write_metadata(checkpoint_id, metadata)
        except Exception as exc:
            del self._finalizing[checkpoint_id]
            self._abort(pending, _Reason.FINALIZE_CHECKPOINT_FAILURE, str(exc))
            await self._drain_discards()
            return
        except BaseException:
            del self._finalizing[checkpoint_id]
            self._abort(pending, _Reason.CHECKPOINT_COORDINATOR_SHUTDOWN, "cancelled")
            raise
        del self._finalizing[checkpoint_id]
        latest = self.completed_store.latest()
        if (
            pending.kind is CheckpointKind.CHECKPOINT
            and latest is not None
            and latest.checkpoint_id > checkpoint_id
        ):
            # A newer checkpoint finished its _metadata first (concurrent checkpoints, a
            # slow disk): it subsumes this one, as it subsumes older pending ones.
            self._abort(
                pending, _Reason.CHECKPOINT_SUBSUMED, f"checkpoint {latest.checkpoint_id} completed"
            )
            await self._drain_discards()
            return
        completed = CompletedCheckpoint(metadata, location)
        pending.complete(completed)
        self._remember(checkpoint_id, completed)
        dropped: list[CompletedCheckpoint] = []
        if pending.kind is CheckpointKind.CHECKPOINT:
            dropped = self.completed_store.add(completed)
            self._tolerance.record_success(checkpoint_id)
        elif self._latest_savepoint is None or checkpoint_id > self._latest_savepoint.checkpoint_id:
            self._latest_savepoint = completed
        self._last_completion_s = self._clock()
        for older in list(self._pending.values()):
            if older.checkpoint_id < checkpoint_id and older.kind is CheckpointKind.CHECKPOINT:
                self._abort(
                    older, _Reason.CHECKPOINT_SUBSUMED, f"checkpoint {checkpoint_id} completed"
                )
        duration_ms = (self._clock() - pending.trigger_time_s) * 1000.0
        self._stats.report_completed(
            checkpoint_id,
            duration_ms,
            metadata.state_size,
            location,
            checkpointed_size=metadata.checkpointed_size,
        )
        _log.info(
            "Completed %s %d for job %r in %.0f ms (%d bytes, %d files) at %s",
            pending.kind.value,
            checkpoint_id,
            self.job_name,
            duration_ms,
            metadata.state_size,
            len(metadata.states),
            location,
        )
        self._notify(self._gateway.notify_checkpoint_complete, checkpoint_id)
        self._to_discard.extend(cp.checkpoint_id for cp in dropped)
        await self._drain_discards()
        self._wake()

    def _abort(
        self,
        pending: PendingCheckpoint,
        reason: CheckpointFailureReason,
        detail: str | None,
        *,
        notify: bool = True,
    ) -> None:
        """The one abort path: bookkeeping, stats, notification, failure count; files later."""
        checkpoint_id = pending.checkpoint_id
        if not pending.abort(reason, detail):
            return
        self._pending.pop(checkpoint_id, None)
        assert pending.failure is not None
        self._remember(checkpoint_id, pending.failure)
        self._stats.report_failed(
            checkpoint_id,
            reason,
            str(pending.failure),
            self._wall_clock_ms(),
            (self._clock() - pending.trigger_time_s) * 1000.0,
        )
        level = logging.WARNING if reason.counts_as_failure else logging.DEBUG
        _log.log(level, "Aborted %s: %s", pending.kind.value, pending.failure)
        self._to_discard.append(checkpoint_id)
        if notify:
            self._notify(self._gateway.notify_checkpoint_aborted, checkpoint_id)
        error = self._tolerance.record(reason, checkpoint_id, pending.kind, detail)
        if error is not None and self._job_failure is None:
            self._job_failure = error
            _log.error("Failing job %r: %s", self.job_name, error)
            if self._on_job_failure is not None:
                self._on_job_failure(error)
        self._wake()

    async def _drain_discards(self) -> None:
        # Shielded: the caller is often an acking subtask that a failover cancels; an id
        # popped here and never deleted would stay on disk for good.
        with anyio.CancelScope(shield=True):
            while self._to_discard:
                checkpoint_id = self._to_discard.popleft()
                try:
                    await self.storage.discard(checkpoint_id)
                except CheckpointError as exc:
                    _log.warning("Could not discard checkpoint %d: %s", checkpoint_id, exc)

    def _remember(self, checkpoint_id: int, outcome: CheckpointOutcome) -> None:
        self._recent[checkpoint_id] = outcome
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def _notify(self, send: Callable[[int], None], checkpoint_id: int) -> None:
        try:
            send(checkpoint_id)
        except Exception as exc:  # best effort, like Flink's CheckpointListener contract
            _log.warning("Could not notify subtasks about checkpoint %d: %r", checkpoint_id, exc)
