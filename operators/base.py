"""The operator contract: what the engine's subtask loop calls, and in which order.

An operator instance belongs to exactly one subtask and is created fresh for every attempt
of the job (a restart builds new instances and restores their state). The engine calls:

1. ``open(ctx)`` once, after the state backends in ``ctx`` were restored (if restoring);
2. ``process_batch(batch)`` for every input batch, returning the output batch (plain lists:
   the hot path is per batch, not per record);
3. ``snapshot_state(checkpoint_id)`` at a checkpoint barrier, before the engine freezes the
   state backends (this is where an operator moves transient data into its state, as a
   two-phase-commit sink pre-commits here);
4. ``notify_checkpoint_complete`` / ``notify_checkpoint_aborted`` when the coordinator says so
   (Flink's CheckpointListener contract: ids only grow; completion of n subsumes every
   pending id below n; notifications are best effort and may be skipped);
5. ``end_input()`` once when every input ended (bounded input), returning any last records;
6. ``close()`` always, also after a failure or cancellation (it must not raise for that).

Time (see :mod:`.records`, :mod:`.watermarks`, :mod:`.processing_time`): a batch is a ``list``
or, when its records carry timestamps, a :class:`~.records.TimestampedBatch`; an operator that
says :attr:`Operator.accepts_timestamps` gets both, any other (a sink) only the records. Between
batches the engine calls ``process_watermark(ts)`` when the operator's input watermark advances
(it fires event-time timers; the engine forwards the watermark after what they emitted) and,
for a :attr:`Operator.timed` operator, ``on_processing_time(now)`` once the processing time it
requested from ``ctx.processing_time`` is reached. An operator that makes its own watermarks
(:attr:`Operator.generates_watermarks`) hands them out with ``take_events()`` after each call;
one that emits side outputs leaves them in :attr:`Operator.side_outputs` after each call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .metrics import MetricGroup
from .processing_time import ProcessingTimeService
from .time import MIN_TIMESTAMP

if TYPE_CHECKING:
    from streamlet.state.heap_backend import HeapKeyedStateBackend
    from streamlet.state.key_groups import KeyGroupRange
    from streamlet.state.operator_state import OperatorStateBackend

__all__ = ["IN", "OUT", "Operator", "OperatorContext"]

IN = TypeVar("IN")
"""Type of the records an operator consumes."""
OUT = TypeVar("OUT")
"""Type of the records an operator produces."""


@dataclass(slots=True)
class OperatorContext:
    """What an operator instance knows about where it runs.

    :param operator_name: the display name (``.name()``)
    :param operator_uid: the stable id state is stored under (``.uid()``)
    :param subtask_index: 0-based index of this subtask
    :param parallelism: number of subtasks of the operator
    :param max_parallelism: number of key groups
    :param job_name: name passed to ``execute``
    :param attempt: 0 for the first run, +1 per restart
    :param operator_state: per-subtask operator state (list, union, broadcast)
    :param keyed_backend: keyed state for a keyed operator, else ``None``
    :param restored: whether state was restored from a checkpoint or savepoint
    :param processing_time: the subtask's processing time (clock and wake-ups)
    :param auto_watermark_interval_ms: how often generated watermarks are emitted (0: never)
    :param batch_execution: whether the job runs in Flink's BATCH mode
    :param job_parameters: the job's global parameters
    """

    operator_name: str
    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    job_name: str
    attempt: int
    operator_state: OperatorStateBackend
    keyed_backend: HeapKeyedStateBackend | None = None
    restored: bool = False
    processing_time: ProcessingTimeService | None = None
    auto_watermark_interval_ms: int = 200
    #: Flink's BATCH execution mode: rolling aggregations emit only final values.
    batch_execution: bool = False
    #: The job's global parameters (``ExecutionConfig.set_global_job_parameters``).
    job_parameters: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: The user metrics of this operator instance (``RuntimeContext.get_metrics_group``).
    metric_group: MetricGroup = field(default_factory=MetricGroup)

    @property
    def key_group_range(self) -> KeyGroupRange | None:
        return None if self.keyed_backend is None else self.keyed_backend.key_group_range

    @property
    def task_name_with_subtask(self) -> str:
        return f"{self.operator_name} ({self.subtask_index + 1}/{self.parallelism})"


class Operator(ABC, Generic[IN, OUT]):
    """One step of a chain, processing a batch at a time.

    Subclasses override :meth:`process_batch` and whichever lifecycle hooks they need. The
    defaults do nothing, so a stateless operator is one method long.
    """

    #: True when the operator needs a keyed state backend (it follows a ``key_by``).
    keyed: bool = False
    #: True when :meth:`process_batch` takes TimestampedBatches (else it gets their records).
    accepts_timestamps: bool = False
    #: True when the engine must call :meth:`on_processing_time` once a requested time came.
    timed: bool = False
    #: True when the operator makes its own watermarks (:meth:`take_events`); it drops the
    #: watermarks it receives, except the final one.
    generates_watermarks: bool = False
    #: The side outputs of the last call (tag id -> records), or None; the engine takes them.
    side_outputs: dict[str, Any] | None = None
    #: The operator's input watermark (Flink's ``currentWatermark``).
    current_watermark: int = MIN_TIMESTAMP
    #: True for a two-input operator (``connect``): :meth:`process_batch` gets the first
    #: input's batches, :meth:`process_batch2` the second's. Its input watermark is the
    #: minimum of both inputs' (idle inputs aside), and barriers align across both.
    two_inputs: bool = False

    ctx: OperatorContext

    async def open(self, ctx: OperatorContext) -> None:
        """Prepare to process; state backends in ``ctx`` are already restored."""
        self.ctx = ctx

    @abstractmethod
    async def process_batch(self, batch: Any) -> Any:
        """Process one batch (a list; a TimestampedBatch too if ``accepts_timestamps``) and
        return the records to emit, in order, as the same kind of batch."""

    async def process_batch2(self, batch: Any) -> Any:
        """Process one batch of the second input (only called if :attr:`two_inputs`)."""
        raise NotImplementedError(f"{type(self).__name__} has one input")

    async def process_watermark(self, watermark: int) -> Any:
        """The input watermark advanced to ``watermark``: fire what it makes due and return
        the records emitted (default: remember it, emit nothing)."""
        self.current_watermark = watermark
        return []

    async def on_processing_time(self, now_ms: int) -> Any:
        """A processing time this operator requested is reached (``timed`` operators)."""
        return []

    def take_events(self) -> list[Any]:
        """Watermarks and statuses made since the last call (``generates_watermarks``)."""
        return []

    async def end_input(self) -> list[OUT]:
        """All input ended: return any records still held back (default: none)."""
        return []

    async def snapshot_state(self, checkpoint_id: int) -> None:
        """Move transient data into state before checkpoint ``checkpoint_id`` freezes it."""

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` (and every older pending one) completed."""

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` was aborted; treat it as if it never happened."""

    async def close(self) -> None:
        """Release resources. Called after success, failure and cancellation alike."""
