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
from dataclasses import dataclass
from typing import Any

import anyio

from operators.sources.base import DeliveryGuarantee, SourceSessionContext

from .client import JobExecutionResult, JobStatus
from .deploy import Deployment, RestoredState, deploy
from .errors import JobExecutionError
from .graph import StreamGraph
from .plan import JobPlan, build_plan
from .subtask import Subtask, SubtaskSettings

__all__ = ["JobConfig", "JobRunner"]

logger = logging.getLogger("streamlet.job")


@dataclass(frozen=True, slots=True)
class JobConfig:
    """Environment settings frozen when a job starts."""

    parallelism: int
    max_parallelism: int
    batch_size: int
    buffer_timeout_ms: float
    channel_capacity: int


class JobRunner:
    """Runs one job to its end (finished, failed or cancelled)."""

    def __init__(self, graph: StreamGraph, config: JobConfig, job_name: str) -> None:
        self.graph = graph
        self.config = config
        self.job_name = job_name
        self.job_id = uuid.uuid4().hex
        self.status = JobStatus.CREATED
        self.restart_count = 0
        self.plan: JobPlan = build_plan(graph, config.parallelism, config.max_parallelism)
        self._deployment: Deployment | None = None
        self._records_done = 0

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

    def checkpoint_stats(self) -> list[Any]:
        return []

    async def run(self) -> JobExecutionResult:
        started = time.monotonic()
        self.status = JobStatus.RUNNING
        splits = self._create_splits()
        try:
            async with contextlib.AsyncExitStack() as sessions:
                await self._open_sessions(sessions)
                settings = SubtaskSettings(
                    job_name=self.job_name,
                    attempt=0,
                    batch_size=self.config.batch_size,
                    buffer_timeout_s=self.config.buffer_timeout_ms / 1000,
                )
                failure = await self._run_attempt(settings, splits, None)
                if failure is not None:
                    raise failure
        except BaseException:
            self.status = (
                JobStatus.CANCELED if self.status is JobStatus.CANCELLING else JobStatus.FAILED
            )
            raise
        self.status = JobStatus.FINISHED
        return JobExecutionResult(
            job_id=self.job_id,
            job_name=self.job_name,
            net_runtime_ms=(time.monotonic() - started) * 1000,
            restart_count=self.restart_count,
            records_in=self.statistics()["records_in"],
        )

    def _create_splits(self) -> dict[int, list[Any]]:
        splits: dict[int, list[Any]] = {}
        for node in self.plan.chains:
            head = node.head
            if head.kind == "source":
                assert head.source is not None
                splits[head.id] = list(head.source.create_splits(node.parallelism))
        return splits

    async def _open_sessions(self, stack: contextlib.AsyncExitStack) -> None:
        for chain in self.plan.chains:
            head = chain.head
            if head.kind != "source":
                continue
            assert head.source is not None
            if head.source.delivery is DeliveryGuarantee.AT_MOST_ONCE:
                logger.warning(
                    "source %r (uid %r) cannot replay its input: records read since the last "
                    "checkpoint are lost if the job fails (at-most-once)",
                    head.name,
                    head.operator_uid,
                )
            ctx = SourceSessionContext(self.job_name, head.operator_uid, None)
            await stack.enter_async_context(head.source.session(ctx))

    async def _run_attempt(
        self,
        settings: SubtaskSettings,
        splits: dict[int, list[Any]],
        restored: RestoredState | None,
    ) -> JobExecutionError | None:
        deployment = deploy(
            self.plan, settings, splits, self.config.channel_capacity, restored, Subtask
        )
        self._deployment = deployment
        failures: list[JobExecutionError] = []

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

        try:
            async with anyio.create_task_group() as tg:
                for subtask in deployment.subtasks:
                    tg.start_soon(guard, subtask, tg.cancel_scope)
        finally:
            self._records_done += sum(s.records_in for s in deployment.subtasks)
            self._deployment = None
        return failures[0] if failures else None
