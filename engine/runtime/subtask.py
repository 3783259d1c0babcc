"""One subtask: a chain of operators fed by an input gate (or by source readers).

The loop is per batch: take the next buffer from the gate, push it through the chain as
plain calls, let output writers split it over their channels. It awaits only when there is
nothing to read, when an output channel is full (backpressure), and once every few batches
to let other subtasks run. Events (barriers, end of partition) are handled between batches.

The subtask's *mailbox* carries messages from outside (checkpoint triggers for sources,
checkpoint notifications); it wakes the same notifier as the input channels, so a subtask
waits in exactly one place.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from streamlet.checkpoints.events import CancelCheckpointMarker, CheckpointBarrier, EndOfPartition
from streamlet.checkpoints.snapshotter import OperatorSnapshot
from streamlet.errors import JobExecutionError
from streamlet.graph.partitioners import KeySelectorError, Router
from streamlet.operators.base import Operator, OperatorContext
from streamlet.operators.core import SourceOperator
from streamlet.operators.processing_time import (
    NEVER,
    ProcessingTimeClock,
    ProcessingTimeService,
    SystemClock,
)
from streamlet.operators.records import TimestampedBatch
from streamlet.operators.sources.base import SourceReader
from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP
from streamlet.operators.watermark_valve import StatusWatermarkValve
from streamlet.operators.watermarks import MAX_WATERMARK, Watermark, WatermarkStatus
from streamlet.runtime.channels import Channel, InputGate, Notifier
from streamlet.runtime.checkpointing import SubtaskCheckpointer
from streamlet.runtime.metrics import NO_WATERMARK, SubtaskTimes
from streamlet.state.errors import StreamletInternalError
from streamlet.state.keyed_batch import KeyedBatch

__all__ = [
    "ChainedOperator",
    "OutputWriter",
    "Subtask",
    "SubtaskSettings",
    "restore_switch_interval",
]

logger = logging.getLogger("streamlet.runtime")

#: Buffers a subtask processes before it lets other tasks run.
_YIELD_EVERY = 8
#: The switch interval while worker threads are running: a worker thread waiting for the
#: GIL gets it after at most this much of the event loop's work (see :func:`_hand_over_gil`).
_GIL_SWITCH_INTERVAL_S = 200e-6
#: Capacity, in batches, of the hand-off from a source reader's fetcher to its subtask.
_FETCH_CAPACITY = 4
#: A source chain that ends in sinks (no output channel) asks its readers for this many
#: batches at once: a source batch runs through the chain in one pass, which halves the
#: per-batch cost of fully chained jobs. A chain that writes to channels reads
#: ``batch_size`` at a time: its output is cut into ``batch_size`` buffers anyway, and
#: small reads keep fewer records in flight, so CPython recycles their objects instead of
#: its garbage collector tracing them (about 10% of a keyed job at parallelism 4).
_SOURCE_BATCHES = 4


@dataclass(frozen=True, slots=True)
class _ReaderFailed:
    """A fetcher's reader raised: queued behind the batches it returned before.

    The fetcher does not raise itself: that would cancel the subtask loop (their task
    group) while batches already fetched wait in the channel or sit in an awaiting step of
    the chain, and those records would be lost. The loop raises ``error`` when it reaches
    this item, after it forwarded every earlier batch.
    """

    error: Exception


@dataclass(frozen=True, slots=True)
class SubtaskSettings:
    """Knobs shared by every subtask of a job attempt."""

    job_name: str
    attempt: int
    batch_size: int
    buffer_timeout_s: float
    #: The job's processing-time clock.
    clock: ProcessingTimeClock = field(default_factory=SystemClock)
    #: How often watermark generators are asked for a watermark (ms; 0 = never).
    auto_watermark_interval_ms: int = 200
    #: Flink's BATCH execution mode (see RuntimeExecutionMode).
    batch_execution: bool = False
    #: The job's global parameters (``RuntimeContext.get_job_parameter``).
    job_parameters: dict[str, str] = field(default_factory=dict)
    #: Count records and measure idle / backpressured time (Flink's task I/O metrics).
    metrics_enabled: bool = True
    #: Whether checkpoints are incremental: keyed backends then track changed keys.
    incremental_checkpoints: bool = False


class OutputWriter:
    """Splits a subtask's output over the channels of one outgoing edge and flushes them.

    A buffer is sent when it reaches ``batch_size`` records, before any event, and when the
    subtask has no input ready (the loop calls :meth:`flush`). On a key_by edge to several
    consumers, buffers are :class:`KeyedBatch` es: the router computed every record's key and
    key group, and they travel with the records.
    """

    __slots__ = (
        "_batch_size",
        "_buffers",
        "_router",
        "_single",
        "channels",
        "records_out",
        "times",
    )

    def __init__(self, channels: list[Channel], router: Router, batch_size: int) -> None:
        self.channels = channels
        self._router = router
        self._batch_size = batch_size
        # A buffer is a list or a KeyedBatch, of the kind of the parts it collects.
        self._buffers: list[Any] = [[] for _ in channels]
        self._single = len(channels) == 1
        #: Records emitted through this writer (counted while metrics are on).
        self.records_out = 0
        #: The owning subtask's wait times (None: metrics off, nothing is measured).
        self.times: SubtaskTimes | None = None

    async def emit(self, records: Any) -> None:
        if self.times is not None:
            self.records_out += len(records)
        batch_size = self._batch_size
        buffers = self._buffers
        if self._single:
            parts: list[Any] = [records]
        elif type(records) is TimestampedBatch:
            parts = self._router.split_timestamped(records)
        else:
            parts = self._router.split(records)
        for index, part in enumerate(parts):
            if not part:
                continue
            buffer = buffers[index]
            if type(buffer) is not type(part):
                # The router switched between lists and KeyedBatches (see _KeyGroups):
                # what is buffered goes first, so the channel stays in order.
                if buffer:
                    await self._send(index, buffer)
                buffer = buffers[index] = part[:0]
            if not buffer and len(part) == batch_size:
                # Hand the part over as it is (nobody mutates a sent buffer).
                await self._send(index, part)
                continue
            buffer.extend(part)
            while len(buffer) >= batch_size:
                # Invariant: a sent buffer never holds more than batch_size records, so a
                # channel holds at most capacity * batch_size records.
                if len(buffer) == batch_size:
                    buffers[index] = buffer[:0]
                    await self._send(index, buffer)
                    break
                await self._send(index, buffer[:batch_size])
                del buffer[:batch_size]

    async def _send(self, index: int, buffer: Any) -> None:
        channel = self.channels[index]
        if not channel.try_send(buffer):
            times = self.times
            if times is None:
                await channel.send(buffer)
                return
            # Backpressure: the consumer is behind. Timed only here, where we wait anyway.
            start = time.perf_counter()
            times.waiting_since = ("backpressured", start)
            try:
                await channel.send(buffer)
            finally:
                times.waiting_since = None
                times.backpressured_s += time.perf_counter() - start

    async def flush(self) -> None:
        buffers = self._buffers
        for index, buffer in enumerate(buffers):
            if buffer:
                buffers[index] = []
                await self._send(index, buffer)

    async def emit_event(self, event: Any) -> None:
        """Flush pending records, then send ``event`` on every channel (FIFO after them)."""
        await self.flush()
        for index in range(len(self.channels)):
            await self._send(index, event)

    @property
    def overtakable(self) -> bool:
        """Whether an unaligned barrier may overtake this edge's queued buffers."""
        return bool(self.channels) and self.channels[0].overtakable

    def overtake(self, barrier: Any) -> list[tuple[Channel, list[Any]]]:
        """Send ``barrier`` ahead of everything queued on every channel, without waiting;
        return, per channel, the buffers it overtook: those queued in the channel, then a
        copy of this writer's unsent buffer (sent later, after the barrier)."""
        taken = []
        for index, channel in enumerate(self.channels):
            buffers = channel.overtake(barrier)
            pending = self._buffers[index]
            if pending:
                buffers.append(pending[:])
            taken.append((channel, buffers))
        return taken


class ChainedOperator:
    """An operator in a chain, with the operators fused after it and its output writers.

    Downstream of an operator are its main output (``children``, ``writers``) and its side
    outputs, by tag id (``side_children``, ``side_writers``). Watermarks and watermark
    statuses go down the same paths as records, after the records emitted before them.
    """

    __slots__ = (
        "accepts_timestamps",
        "children",
        "counting",
        "ctx",
        "input_watermark",
        "node_name",
        "op",
        "output_watermark",
        "records_in",
        "records_out",
        "side_children",
        "side_writers",
        "writers",
    )

    def __init__(self, op: Operator[Any, Any], ctx: OperatorContext) -> None:
        self.op = op
        self.ctx = ctx
        self.node_name = ctx.operator_name
        self.accepts_timestamps = op.accepts_timestamps
        self.children: list[ChainedOperator] = []
        self.writers: list[OutputWriter] = []
        self.side_children: dict[str, list[ChainedOperator]] = {}
        self.side_writers: dict[str, list[OutputWriter]] = {}
        #: Flink's operator metrics numRecordsIn / numRecordsOut (main output), counted per
        #: batch while ``counting``; the watermarks last received and last emitted.
        self.counting = True
        self.records_in = 0
        self.records_out = 0
        self.input_watermark = NO_WATERMARK
        self.output_watermark = NO_WATERMARK

    def failure(self, exc: BaseException, detail: str | None = None) -> JobExecutionError:
        ctx = self.ctx
        error = JobExecutionError(
            ctx.operator_name,
            ctx.operator_uid,
            ctx.subtask_index,
            ctx.parallelism,
            attempt=ctx.attempt,
            job_name=ctx.job_name,
            detail=detail,
        )
        error.__cause__ = exc
        return error

    async def push(self, batch: Any) -> None:
        await self._push(batch, self.op.process_batch)

    async def push2(self, batch: Any) -> None:
        """:meth:`push` for the second input of a two-input operator."""
        await self._push(batch, self.op.process_batch2)

    async def _push(self, batch: Any, process: Callable[[Any], Awaitable[Any]]) -> None:
        if type(batch) is TimestampedBatch and not self.accepts_timestamps:
            batch = batch.records
        backend = self.ctx.keyed_backend
        if backend is not None:
            # TTL states with cleanup_incrementally(n, run_cleanup_for_every_record=True)
            # check n entries per record: once per batch, for all of its records.
            backend.ttl_cleanup_step(len(batch))
        if self.counting:
            self.records_in += len(batch)
        try:
            out = await process(batch)
        except Exception as exc:
            raise self.failure(exc) from exc
        await self._emitted(out)

    async def _emitted(self, out: Any) -> None:
        """Send what the operator emitted: records, then side outputs, then the watermarks
        it made (a watermark never overtakes the records before it)."""
        op = self.op
        if out:
            await self.forward(out)
        side = op.side_outputs
        if side is not None:
            op.side_outputs = None
            for tag, records in side.items():
                await self._forward_side(tag, records)
        if op.generates_watermarks:
            for event in op.take_events():
                await self._event_downstream(event)

    async def forward(self, out: Any) -> None:
        if self.counting:
            self.records_out += len(out)
        for writer in self.writers:
            try:
                await writer.emit(out)
            except KeySelectorError as exc:
                # The user's key_by selector ran here, while routing this operator's
                # output; the message names the keyed operator it feeds.
                raise self.failure(exc, detail=str(exc)) from exc
        for child in self.children:
            await child.push(out)

    async def _forward_side(self, tag: str, records: Any) -> None:
        for writer in self.side_writers.get(tag, ()):
            try:
                await writer.emit(records)
            except KeySelectorError as exc:
                raise self.failure(exc, detail=str(exc)) from exc
        for child in self.side_children.get(tag, ()):
            await child.push(records)

    async def _event_downstream(self, event: Watermark | WatermarkStatus) -> None:
        """Send a watermark or status to everything downstream, main and side outputs."""
        if type(event) is Watermark:
            self.output_watermark = event.timestamp
        for writer in self.writers:
            await writer.emit_event(event)
        for writers in self.side_writers.values():
            for writer in writers:
                await writer.emit_event(event)
        children = [*self.children, *(c for cs in self.side_children.values() for c in cs)]
        for child in children:
            if isinstance(event, Watermark):
                await child.on_watermark(event)
            else:
                await child.on_status(event)

    async def on_watermark(self, watermark: Watermark) -> None:
        """The operator's input watermark advanced: fire what is due, then forward it."""
        op = self.op
        self.input_watermark = watermark.timestamp
        if op.generates_watermarks and watermark.timestamp != MAX_WATERMARK_TIMESTAMP:
            return  # the operator's own watermarks replace those it receives
        try:
            out = await op.process_watermark(watermark.timestamp)
        except Exception as exc:
            raise self.failure(exc) from exc
        await self._emitted(out)
        await self._event_downstream(watermark)

    async def on_status(self, status: WatermarkStatus) -> None:
        if self.op.generates_watermarks:
            return  # the operator decides its own status
        await self._event_downstream(status)

    async def on_processing_time(self, now_ms: int) -> None:
        try:
            out = await self.op.on_processing_time(now_ms)
        except Exception as exc:
            raise self.failure(exc) from exc
        await self._emitted(out)

    async def call(self, hook: Callable[[], Awaitable[Any]]) -> Any:
        """Run one lifecycle hook of this operator, wrapping a failure with its identity."""
        try:
            return await hook()
        except Exception as exc:
            raise self.failure(exc) from exc


class Subtask:
    """Runs one parallel instance of a chain until its input ends, it fails or is cancelled.

    :param chain_name: the chain's display name (``Source -> Map``)
    :param index: this subtask's index
    :param operators: the chain's operators, head first (topological order)
    :param gate: the input gate (``None`` for a source chain)
    :param notifier: wakes this subtask (input channels and mailbox)
    """

    def __init__(
        self,
        chain_name: str,
        index: int,
        operators: list[ChainedOperator],
        gate: InputGate | None,
        notifier: Notifier,
        settings: SubtaskSettings,
        processing_time: ProcessingTimeService | None = None,
        channel_inputs: list[int] | None = None,
    ) -> None:
        self.chain_name = chain_name
        self.index = index
        self.parallelism = operators[0].ctx.parallelism
        self.operators = operators
        self.root = operators[0]
        self.gate = gate
        #: For each gate channel, the input of the head it feeds (0, or 1: the second
        #: input of a two-input operator).
        self.channel_inputs = channel_inputs or [0] * (len(gate.channels) if gate else 0)
        self.notifier = notifier
        self.settings = settings
        self.readers: list[SourceReader[Any]] = []
        self.mailbox: deque[Callable[[], Awaitable[None]]] = deque()
        self.writers = [
            w
            for chained in operators
            for w in [*chained.writers, *(w for ws in chained.side_writers.values() for w in ws)]
        ]
        self.records_in = 0
        #: Idle and backpressured time (None while metrics are off).
        self.times: SubtaskTimes | None = None
        if settings.metrics_enabled:
            self.times = SubtaskTimes()
            for writer in self.writers:
                writer.times = self.times
        else:
            for chained in operators:
                chained.counting = False
        #: The subtask's processing time: clock and the earliest wake-up its operators want.
        self.processing_time = processing_time or ProcessingTimeService(settings.clock)
        #: The operators to call when a requested processing time is reached (after open).
        self._timed: list[ChainedOperator] = []
        #: Combines the watermarks and statuses of the input channels (None for sources).
        self.valve = StatusWatermarkValve(len(gate.channels)) if gate and gate.channels else None
        #: Checkpoint duties; None when the job runs without checkpoints.
        self.checkpointer: SubtaskCheckpointer | None = None
        #: Whether checkpoint barriers come from the coordinator, not from channels (decided
        #: by deploy: sources, and subtasks that no channel reaches).
        self.triggered_by_coordinator = False
        #: True while run() runs: its mailbox is served (see MailboxGateway.drain).
        self.running = False
        #: Set by :meth:`stop_input` (stop with savepoint and drain): a source reads no
        #: more and ends as if its input were exhausted.
        self.input_stopped = False

    # --- the chain, as the checkpointer sees it (runtime.checkpointing.CheckpointedChain) ---

    async def snapshot_operators(
        self, checkpoint_id: int, incremental: Collection[str] = ()
    ) -> list[OperatorSnapshot]:
        for chained in self.operators:
            await chained.call(partial(chained.op.snapshot_state, checkpoint_id))
        snapshots: list[OperatorSnapshot] = []
        for chained in self.operators:
            ctx = chained.ctx
            backend = ctx.keyed_backend
            keyed = None
            confirm = None
            if backend is not None:
                keyed = backend.snapshot_sync(
                    checkpoint_id, incremental=ctx.operator_uid in incremental
                )
                if backend.tracks_changes:
                    confirm = backend.notify_checkpoint_complete
            operator_state = None
            if ctx.operator_state.has_state():
                operator_state = ctx.operator_state.snapshot_sync()
            if keyed is None and operator_state is None:
                continue
            snapshots.append(
                OperatorSnapshot(ctx.operator_uid, keyed, operator_state, confirm=confirm)
            )
        return snapshots

    def source_positions(self) -> list[Any] | None:
        root = self.root.op
        if isinstance(root, SourceOperator):
            return [position for _, position in root.splits]
        return None

    async def emit_event(self, event: Any) -> None:
        for writer in self.writers:
            await writer.emit_event(event)

    async def emit_barrier_unaligned(
        self, barrier: CheckpointBarrier
    ) -> list[tuple[Channel, list[Any]]]:
        # Overtake first, on every edge that allows it: the barrier must not wait behind
        # a full channel of an aligned-only edge before it overtook the others.
        taken = []
        for writer in self.writers:
            if writer.overtakable:
                taken.extend(writer.overtake(barrier))
        aligned = dataclasses.replace(barrier, unaligned=False)
        for writer in self.writers:
            if not writer.overtakable:
                await writer.emit_event(aligned)
        return taken

    async def notify_checkpoint_complete(
        self, checkpoint_id: int, positions: list[Any] | None
    ) -> None:
        for chained in self.operators:
            await chained.call(partial(chained.op.notify_checkpoint_complete, checkpoint_id))
        if positions is not None:
            for reader, position in zip(self.readers, positions, strict=False):
                await self.root.call(
                    partial(reader.notify_checkpoint_complete, checkpoint_id, position)
                )

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        for chained in self.operators:
            await chained.call(partial(chained.op.notify_checkpoint_aborted, checkpoint_id))

    # --- mailbox ---

    def post(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` in this subtask, between two batches."""
        self.mailbox.append(action)
        self.notifier.notify()

    async def _run_mailbox(self) -> None:
        mailbox = self.mailbox
        while mailbox:
            await mailbox.popleft()()

    async def stop_input(self) -> None:
        """End this source subtask's input here (Flink's drain; post it to the mailbox).

        What it forwarded so far is all it emits: its positions are those of the last
        forwarded batch (batches read ahead are dropped and read again by a job restored
        from here). It then ends as a bounded source does: the MAX watermark fires every
        event-time timer downstream and the job's final checkpoint is taken.
        """
        self.input_stopped = True

    # --- lifecycle ---

    async def run(self) -> None:
        clock = self.processing_time.clock
        clock.subscribe(self.notifier)
        self.running = True
        try:
            for chained in reversed(self.operators):
                await chained.call(partial(chained.op.open, chained.ctx))
            # Known once the operators are open (an assigner is timed only with an interval).
            self._timed = [chained for chained in self.operators if chained.op.timed]
            if self.checkpointer is None:
                await self._run_loop()
            else:
                # Asynchronous snapshot parts run in this group, owned by the subtask.
                try:
                    async with anyio.create_task_group() as snapshots:
                        self.checkpointer.task_group = snapshots
                        await self._run_loop()
                except BaseExceptionGroup as group:
                    error = first_error(group)
                    if error is None:
                        raise
                    raise error from error.__cause__
        except BaseException:
            self.running = False
            clock.unsubscribe(self.notifier)
            await self._close_all(raise_errors=False)
            raise
        self.running = False
        clock.unsubscribe(self.notifier)
        await self._close_all(raise_errors=True)

    async def _run_loop(self) -> None:
        if self.gate is None:
            await self._run_source()
        else:
            await self._run_inputs()
        if self.checkpointer is not None:
            self.checkpointer.cancel_timers()
        await self._finish(self.root)
        await self.flush()
        for writer in self.writers:
            await writer.emit_event(EndOfPartition())

    async def _finish(self, chained: ChainedOperator) -> None:
        out = await chained.call(chained.op.end_input)
        await chained._emitted(out)
        for child in chained.children:
            await self._finish(child)
        for children in chained.side_children.values():
            for child in children:
                await self._finish(child)

    async def _close_all(self, raise_errors: bool) -> None:
        first: JobExecutionError | None = None
        with anyio.CancelScope(shield=True):
            for chained in self.operators:
                try:
                    await chained.op.close()
                except Exception as exc:
                    if first is None:
                        first = chained.failure(exc, detail=f"close() failed: {exc!r}")
                    logger.warning("closing %s failed: %r", chained.node_name, exc)
        if raise_errors and first is not None:
            raise first

    async def flush(self) -> None:
        for writer in self.writers:
            await writer.flush()

    # --- the two loops ---

    async def _run_inputs(self) -> None:
        gate = self.gate
        assert gate is not None
        if self.triggered_by_coordinator:
            # No producer reaches this subtask: it is finished from the start, and acts like
            # a finished source until the final checkpoint.
            await self.root.on_watermark(MAX_WATERMARK)
            await self.on_sources_finished()
            return
        push = self.root.push
        if self.root.op.two_inputs:
            push2 = self.root.push2
            second = [index == 1 for index in self.channel_inputs]

            async def on_two_inputs(channel_index: int, records: list[Any]) -> None:
                self.records_in += len(records)
                if second[channel_index]:
                    await push2(records)
                else:
                    await push(records)

            await self._drain(gate, on_two_inputs, self.on_event)
            return

        async def on_records(channel_index: int, records: list[Any]) -> None:
            self.records_in += len(records)
            await push(records)

        await self._drain(gate, on_records, self.on_event)

    async def _drain(
        self,
        gate: InputGate,
        on_data: Callable[[int, Any], Awaitable[None]],
        on_event: Callable[[int, Any], Awaitable[bool]],
    ) -> None:
        """Read ``gate`` until every channel ended: the one loop of every subtask.

        Data buffers (record lists, or a source's ``(records, position)``) go to
        ``on_data``, events to ``on_event`` (True when the event ended its channel);
        mailbox messages run between buffers. Outputs are flushed when no input is ready
        and at least every buffer timeout under load, and the subtask lets others run
        every few buffers.
        """
        poll = gate.poll
        notifier = self.notifier
        threads = anyio.to_thread.current_default_thread_limiter()
        timeout = self.settings.buffer_timeout_s
        now = anyio.current_time
        last_flush = now()
        remaining = len(gate.channels)
        since_yield = 0
        timed = bool(self._timed)
        service = self.processing_time
        clock = service.clock
        now_ms = service.now_ms
        while remaining:
            if self.mailbox:
                await self._run_mailbox()
                if self.input_stopped:  # set by a mailbox action (stop_input)
                    return
            # The clock is read only while a wake-up is wanted (a keyed process operator
            # is timed, but most have no processing-time timer).
            if timed and service.deadline != NEVER and service.deadline <= now_ms():
                await self._fire_processing_time()
            item = poll()
            if item is None:
                await self.flush()
                last_flush = now()
                if not self.mailbox:
                    times = self.times
                    if times is not None:
                        start = time.perf_counter()
                        times.waiting_since = ("idle", start)
                    try:
                        if service.deadline == NEVER:
                            await notifier.wait()
                        else:
                            with anyio.move_on_after(clock.seconds_until(service.deadline)):
                                await notifier.wait()
                    finally:
                        if times is not None:
                            times.waiting_since = None
                            times.idle_s += time.perf_counter() - start
                continue
            channel_index, buffer = item
            kind = type(buffer)
            if kind is list or kind is KeyedBatch or kind is tuple or kind is TimestampedBatch:
                await on_data(channel_index, buffer)
                since_yield += 1
                if since_yield >= _YIELD_EVERY:
                    since_yield = 0
                    if now() - last_flush >= timeout:
                        await self.flush()
                        last_flush = now()
                    _hand_over_gil(threads.borrowed_tokens)
                    await anyio.lowlevel.checkpoint()
            elif await on_event(channel_index, buffer):
                remaining -= 1

    async def _fire_processing_time(self) -> None:
        """Call every timed operator once its requested processing time is reached (they
        request their next wake-up themselves)."""
        service = self.processing_time
        now_ms = service.now_ms()
        if service.take_due(now_ms):
            for chained in self._timed:
                await chained.on_processing_time(now_ms)

    async def _on_input_events(self, events: list[Watermark | WatermarkStatus]) -> None:
        """Pass what the watermark valve emitted to the head of the chain."""
        root = self.root
        for event in events:
            if type(event) is Watermark:
                await root.on_watermark(event)
            else:
                await root.on_status(event)  # type: ignore[arg-type]

    async def on_event(self, channel_index: int, event: Any) -> bool:
        """Handle an event from input channel ``channel_index``; True if the channel ended."""
        checkpointer = self.checkpointer
        kind = type(event)
        valve = self.valve
        if kind is Watermark and valve is not None:
            await self._on_input_events(valve.on_watermark(channel_index, event.timestamp))
            return False
        if kind is WatermarkStatus and valve is not None:
            await self._on_input_events(valve.on_status(channel_index, event))
            return False
        if kind is EndOfPartition:
            assert self.gate is not None
            self.gate.channels[channel_index].ended = True
            if valve is not None:
                await self._on_input_events(valve.on_end_of_partition(channel_index))
            if checkpointer is not None:
                await checkpointer.on_end_of_partition(channel_index)
            return True
        if checkpointer is None:
            raise StreamletInternalError(f"{event!r} reached a subtask without checkpointing")
        if kind is CheckpointBarrier:
            await checkpointer.on_barrier(channel_index, event)
        elif kind is CancelCheckpointMarker:
            await checkpointer.on_cancel_marker(channel_index, event)
        else:
            raise StreamletInternalError(f"unknown event {event!r} in a channel")
        return False

    async def _run_source(self) -> None:
        source_op = self.root.op
        assert isinstance(source_op, SourceOperator)
        notifier = self.notifier
        source = source_op.source
        self.readers = [
            await self.root.call(partial(_create, source, split, position))
            for split, position in source_op.splits
        ]
        channels = [
            Channel(_FETCH_CAPACITY, notifier, f"{self.chain_name}[{self.index}] split {i}")
            for i in range(len(self.readers))
        ]
        gate = InputGate(channels, notifier)
        try:
            async with anyio.create_task_group() as fetchers:
                for reader, channel in zip(self.readers, channels, strict=True):
                    fetchers.start_soon(self._fetch, reader, channel)
                await self._source_loop(gate, source_op)
                fetchers.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = first_error(group)
            if error is None:
                raise
            raise error from error.__cause__

    async def _fetch(self, reader: SourceReader[Any], channel: Channel) -> None:
        """Read one split ahead of the subtask (at most a few batches) in a task of its own."""
        batch_size = self.settings.batch_size
        if not self.writers:
            batch_size *= _SOURCE_BATCHES
        call = self.root.call
        try:
            try:
                await call(reader.open)
                while True:
                    batch = await call(lambda: reader.read_batch(batch_size))
                    if batch is None:
                        break
                    if batch:
                        position = await call(lambda: _position(reader))
                        await channel.send((batch, position))
                # A reader may have moved past input it did not emit (TestingSource's EOF
                # marker): checkpoint its final position, so a later run resumes after it.
                final = await call(lambda: _position(reader))
            except Exception as exc:
                # Records returned before the error are delivered first (see _ReaderFailed).
                await channel.send(_ReaderFailed(exc))
                return
            await channel.send(([], final))
            await channel.send(EndOfPartition())
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await reader.close()
                except Exception as exc:  # a reader's close must not hide the real outcome
                    logger.warning("closing a reader of %s failed: %r", self.chain_name, exc)

    async def _source_loop(self, gate: InputGate, source_op: SourceOperator) -> None:
        forward = self.root.forward
        advance = source_op.advance

        async def on_batch(split_index: int, batch: tuple[list[Any], Any]) -> None:
            records, position = batch
            if records:
                self.records_in += len(records)
                await forward(records)
            advance(split_index, position)

        async def on_end(split_index: int, event: Any) -> bool:
            if type(event) is _ReaderFailed:
                # Every batch the reader returned before it failed is forwarded by now;
                # push it out of the output buffers too, then fail.
                await self.flush()
                raise event.error
            return True  # otherwise EndOfPartition, once the split is exhausted

        await self._drain(gate, on_batch, on_end)
        # The end of a bounded input is the end of time: everything downstream fires
        # its event-time timers before the input ends (Flink's final MAX watermark).
        await self.root.on_watermark(MAX_WATERMARK)
        await self.on_sources_finished()

    async def on_sources_finished(self) -> None:
        """Every split of this source subtask is exhausted (or no channel reaches it).

        With checkpointing, the subtask stays alive (answering checkpoint triggers with its
        final positions) until the job's final checkpoint completed, so a two-phase-commit
        sink commits everything before the job ends (Flink's FLIP-147).
        """
        checkpointer = self.checkpointer
        if checkpointer is None or not checkpointer.awaits_final_checkpoint:
            return
        await self.flush()
        checkpointer.on_end_of_input()
        while not checkpointer.released:
            if self.mailbox:
                await self._run_mailbox()
            else:
                await self.notifier.wait()


#: The switch interval to restore once no worker thread runs; None while not lowered.
_saved_switch_interval: float | None = None


def _hand_over_gil(busy_threads: int) -> None:
    """Let worker threads that wait for the GIL get it soon, without stopping the loop.

    A busy event loop starves worker threads (checkpoint and log writes, a sink's file
    I/O): each of its system calls (the selector's poll, a socket send) drops the GIL and
    wakes a waiting thread, but takes the GIL back before that thread is scheduled, and
    the wake-up restarts the thread's wait of one switch interval (5 ms) before it may
    demand the GIL. A thread then waits for seconds at every step that needs the GIL (a
    checkpoint that never completed under a fast source showed it).

    So while worker threads run (``busy_threads``), the switch interval is lowered to
    ``_GIL_SWITCH_INTERVAL_S``, which a loop step of record processing outlasts: a
    waiting thread then demands the GIL, and the interpreter hands it over at once (the
    loop's thread waits until the other one took it). Only a thread that does wait costs
    anything; one inside a system call (an fsync) costs nothing. The previous remedy,
    sleeping 50 us here whenever a thread ran, slept ~500 us a time on a busy virtual
    machine, and mostly while no thread needed the GIL. The interval is restored at the
    first call that finds no worker thread running.
    """
    global _saved_switch_interval
    if busy_threads:
        if _saved_switch_interval is None:
            _saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_switch_interval, _GIL_SWITCH_INTERVAL_S))
    elif _saved_switch_interval is not None:
        restore_switch_interval()


def restore_switch_interval() -> None:
    """Put back the switch interval :func:`_hand_over_gil` lowered, if it did (a job's end
    calls it, so the lowered interval never outlasts the job that set it)."""
    global _saved_switch_interval
    if _saved_switch_interval is not None:
        sys.setswitchinterval(_saved_switch_interval)
        _saved_switch_interval = None


async def _position(reader: SourceReader[Any]) -> Any:
    return reader.position()


async def _create(source: Any, split: Any, position: Any) -> SourceReader[Any]:
    return source.create_reader(split, position)


def first_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """Return the most telling error inside ``group``: a JobExecutionError if any.

    A task group reports its children's failures as a group; a job reports one failure,
    so we pick it out (cancellations of the siblings are not failures).
    """
    errors: list[Exception] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif isinstance(exc, Exception):
            errors.append(exc)
    for exc in errors:
        if isinstance(exc, JobExecutionError):
            return exc
    return errors[0] if errors else None
