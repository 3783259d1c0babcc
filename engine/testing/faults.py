"""Seeded fault injection for tests of recovery (users get it from ``streamlet.testing``).

A :class:`FaultInjector` holds faults, each aimed at an operator (by uid or name), a subtask
and a phase: ``"process"`` (raise at the n-th record the subtask processes), ``"snapshot"``
(raise in the n-th checkpoint's synchronous part) or ``"restore"`` (raise in ``open`` when
the operator was restored from a checkpoint). Every fault fires once per job. Install it with
:func:`inject_faults`; the engine then wraps exactly the targeted operators in a proxy, so
other operators run untouched.

A fault that did not fire is easy to miss (a typo in the uid, a subtask the operator does
not have, fewer records than ``at``): when a job ends, the injector logs a warning on the
``streamlet.testing`` logger naming each such fault and why it may not have fired, and
:meth:`FaultInjector.assert_all_fired` fails a test on them. (A warning, not an error:
seeded random faults may legitimately miss.)

Faults target processing operators and sinks; source operators are never wrapped (put a
``map`` right after a source to fail "in the source").
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlet.operators.base import Operator, OperatorContext

__all__ = ["Fault", "FaultInjector", "InjectedFault", "inject_faults"]

PHASES = ("process", "snapshot", "restore")

logger = logging.getLogger("streamlet.testing")


class InjectedFault(Exception):
    """Raised by an injected fault (never by real code)."""


@dataclass(slots=True)
class Fault:
    """One fault. ``at`` is the record number (process, 1-based, counted per attempt) or
    the checkpoint number (snapshot, 1-based per attempt); unused for restore."""

    operator: str
    phase: str = "process"
    subtask: int = 0
    at: int = 1
    fired: bool = False
    # How far the targeted subtask got (the most of any attempt): why it may not have fired.
    records_seen: int = field(default=0, compare=False, repr=False)
    snapshots_seen: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.at < 1:
            raise ValueError(f"at must be >= 1, got {self.at}")


@dataclass(slots=True)
class FaultInjector:
    """A set of faults for one job; each fires once.

    :param faults: the faults (see :meth:`fail_record` and friends to add more)
    """

    faults: list[Fault] = field(default_factory=list)
    fired: list[Fault] = field(default_factory=list)
    # Subtask indexes of every (non-source) operator the engine deployed, by uid and name.
    _deployed: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)

    def fail_record(self, operator: str, at: int, subtask: int = 0) -> FaultInjector:
        """Fail operator ``operator``'s subtask ``subtask`` at its ``at``-th record."""
        self.faults.append(Fault(operator, "process", subtask, at))
        return self

    def fail_snapshot(self, operator: str, at: int = 1, subtask: int = 0) -> FaultInjector:
        """Fail the synchronous snapshot of the ``at``-th checkpoint of an attempt."""
        self.faults.append(Fault(operator, "snapshot", subtask, at))
        return self

    def fail_restore(self, operator: str, subtask: int = 0) -> FaultInjector:
        """Fail the next time the operator opens restored from a checkpoint."""
        self.faults.append(Fault(operator, "restore", subtask, 1))
        return self

    @classmethod
    def random(
        cls,
        seed: int,
        operators: Sequence[str],
        parallelism: int,
        max_record: int,
        count: int = 3,
        phases: Sequence[str] = PHASES,
        max_checkpoint: int = 3,
    ) -> FaultInjector:
        """Draw ``count`` faults from a seeded generator (the same seed, the same faults)."""
        rng = random.Random(seed)
        injector = cls()
        for _ in range(count):
            phase = rng.choice(list(phases))
            at = rng.randint(1, max_checkpoint if phase == "snapshot" else max_record)
            injector.faults.append(
                Fault(rng.choice(list(operators)), phase, rng.randrange(parallelism), at)
            )
        return injector

    def _for(self, ctx: OperatorContext) -> list[Fault]:
        return [
            f
            for f in self.faults
            if not f.fired
            and f.operator in (ctx.operator_uid, ctx.operator_name)
            and f.subtask == ctx.subtask_index
        ]

    def wrap(self, op: Operator[Any, Any], ctx: OperatorContext) -> Operator[Any, Any]:
        """Return ``op`` itself, or a proxy when a pending fault targets it."""
        for key in (ctx.operator_uid, ctx.operator_name):
            self._deployed.setdefault(key, set()).add(ctx.subtask_index)
        faults = self._for(ctx)
        if not faults:
            return op
        return _FaultyOperator(op, faults, self)

    __call__ = wrap  # the engine calls the injector itself (see inject_faults)

    def not_fired(self) -> list[tuple[Fault, str]]:
        """The faults that have not fired, each with why it may not have."""
        return [(f, self._why_not_fired(f)) for f in self.faults if not f.fired]

    def assert_all_fired(self) -> None:
        """Fail (AssertionError) unless every fault fired, naming those that did not and why.

        Call it after the job in a test whose faults must all fire (a recovery test that
        passes without its failure proves nothing).
        """
        missing = self.not_fired()
        if missing:
            lines = "\n".join(f"  {_describe(f)}: {why}" for f, why in missing)
            raise AssertionError(f"{len(missing)} injected fault(s) did not fire:\n{lines}")

    def job_ended(self, job_name: str) -> None:
        """Called by the engine when a job with these faults ends: warn about faults that
        did not fire (they will not, in that job)."""
        for fault, why in self.not_fired():
            logger.warning(
                "job %r ended but the injected fault %s did not fire: %s "
                "(FaultInjector.assert_all_fired() makes this fail a test)",
                job_name,
                _describe(fault),
                why,
            )

    def _why_not_fired(self, fault: Fault) -> str:
        subtasks = self._deployed.get(fault.operator)
        if not self._deployed:
            return "no job has run with this injector yet (pass it to inject_faults(env, ...))"
        if subtasks is None:
            known = sorted(self._deployed)
            return (
                f"the job has no operator with uid or name {fault.operator!r} (sources are "
                f"never wrapped; put a map after one); its operators' uids and names: {known}"
            )
        if fault.subtask not in subtasks:
            return (
                f"{fault.operator!r} has no subtask {fault.subtask} (0-based; it ran "
                f"subtasks {min(subtasks)}..{max(subtasks)}): lower subtask or raise parallelism"
            )
        if fault.phase == "process":
            return (
                f"its subtask {fault.subtask} processed at most {fault.records_seen} record(s) "
                f"in an attempt, fewer than at={fault.at}: lower at or send more records"
            )
        if fault.phase == "snapshot":
            return (
                f"its subtask {fault.subtask} took at most {fault.snapshots_seen} snapshot(s) "
                f"in an attempt, fewer than at={fault.at}: is checkpointing enabled, and does "
                f"the job run long enough for {fault.at} checkpoint(s)?"
            )
        return (
            "it never opened restored from a checkpoint: a restore needs a completed "
            "checkpoint and then a restart (another fault) or a run with restore=..."
        )

    def _fire(self, fault: Fault, what: str) -> None:
        fault.fired = True
        self.fired.append(fault)
        raise InjectedFault(f"injected fault: {what}")


class _FaultyOperator(Operator[Any, Any]):
    """Delegates to the real operator, raising where a fault says."""

    def __init__(self, op: Operator[Any, Any], faults: list[Fault], injector: FaultInjector):
        self._op = op
        self._faults = faults
        self._injector = injector
        self._records = 0
        self._snapshots = 0
        self.keyed = op.keyed
        self.accepts_timestamps = op.accepts_timestamps
        self.generates_watermarks = op.generates_watermarks
        self.two_inputs = op.two_inputs

    # What the engine reads of an operator between calls: the real operator's (it may
    # change them in open or in any call).
    @property
    def timed(self) -> bool:
        return self._op.timed

    @timed.setter
    def timed(self, value: bool) -> None:
        self._op.timed = value

    @property
    def side_outputs(self) -> dict[str, Any] | None:
        return self._op.side_outputs

    @side_outputs.setter
    def side_outputs(self, value: dict[str, Any] | None) -> None:
        self._op.side_outputs = value

    @property
    def current_watermark(self) -> int:
        return self._op.current_watermark

    @current_watermark.setter
    def current_watermark(self, value: int) -> None:
        self._op.current_watermark = value

    async def process_watermark(self, watermark: int) -> Any:
        return await self._op.process_watermark(watermark)

    async def on_processing_time(self, now_ms: int) -> Any:
        return await self._op.on_processing_time(now_ms)

    def take_events(self) -> list[Any]:
        return self._op.take_events()

    def _pending(self, phase: str) -> list[Fault]:
        return [f for f in self._faults if f.phase == phase and not f.fired]

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        if ctx.restored:
            for fault in self._pending("restore"):
                self._injector._fire(fault, f"restore of {ctx.task_name_with_subtask}")
        await self._op.open(ctx)

    async def process_batch(self, batch: Any) -> Any:
        return await self._process(batch, self._op.process_batch)

    async def process_batch2(self, batch: Any) -> Any:
        return await self._process(batch, self._op.process_batch2)

    async def _process(self, batch: Any, process: Any) -> Any:
        # Records of both inputs of a two-input operator count towards a fault's position.
        start = self._records
        self._records += len(batch)
        for fault in self._faults:
            fault.records_seen = max(fault.records_seen, self._records)
        for fault in self._pending("process"):
            if start < fault.at <= self._records:
                # Process the records before the faulty one, then fail (as per record).
                await process(batch[: fault.at - start - 1])
                self._injector._fire(
                    fault, f"record {fault.at} of {self.ctx.task_name_with_subtask}"
                )
        return await process(batch)

    async def end_input(self) -> list[Any]:
        return await self._op.end_input()

    async def snapshot_state(self, checkpoint_id: int) -> None:
        self._snapshots += 1
        for fault in self._faults:
            fault.snapshots_seen = max(fault.snapshots_seen, self._snapshots)
        for fault in self._pending("snapshot"):
            if fault.at == self._snapshots:
                self._injector._fire(
                    fault, f"snapshot {checkpoint_id} of {self.ctx.task_name_with_subtask}"
                )
        await self._op.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self._op.notify_checkpoint_complete(checkpoint_id)

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        await self._op.notify_checkpoint_aborted(checkpoint_id)

    async def close(self) -> None:
        await self._op.close()


def inject_faults(env: Any, injector: FaultInjector) -> FaultInjector:
    """Make the jobs of ``env`` run with ``injector``'s faults; return the injector.

    When each job ends, faults that did not fire are logged as warnings (see
    :meth:`FaultInjector.assert_all_fired`).
    """
    env._operator_wrapper = injector
    return injector


def _describe(fault: Fault) -> str:
    """The fault as the call that made it."""
    if fault.phase == "process":
        return f"fail_record({fault.operator!r}, at={fault.at}, subtask={fault.subtask})"
    if fault.phase == "snapshot":
        return f"fail_snapshot({fault.operator!r}, at={fault.at}, subtask={fault.subtask})"
    return f"fail_restore({fault.operator!r}, subtask={fault.subtask})"
