"""Turn an execution plan into the subtasks and channels of one attempt of a job.

Every attempt gets fresh operator instances, fresh channels and fresh state backends
(restored from a checkpoint when there is one), so nothing of a failed attempt leaks into
the next.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamlet.checkpoints.channel_state import ChannelStateEntry, edge_id
from streamlet.graph.plan import ChainPlan, JobPlan
from streamlet.graph.stream_graph import StreamNode
from streamlet.operators.base import OperatorContext
from streamlet.operators.core import SourceOperator
from streamlet.operators.processing_time import ProcessingTimeService
from streamlet.operators.records import TimestampedBatch
from streamlet.runtime.channel_state import (
    NOT_RESCALABLE,
    ChannelStateRestoreError,
    decode_buffer,
)
from streamlet.runtime.channels import Channel, EdgeInfo, InputGate, Notifier
from streamlet.runtime.subtask import ChainedOperator, OutputWriter, Subtask, SubtaskSettings
from streamlet.state.heap_backend import HeapKeyedStateBackend
from streamlet.state.key_groups import key_group_range_for_subtask
from streamlet.state.operator_state import OperatorStateBackend

__all__ = ["Deployment", "RestoredState", "coordinator_triggered", "deploy", "restore_channels"]


@dataclass(slots=True)
class RestoredState:
    """What a checkpoint gives back, by operator uid (filled by the recovery layer).

    :param keyed: uid -> key group -> serialized key group
    :param operator: uid -> serialized operator state of every old subtask, in index order
    :param checkpoint_id: the id of the checkpoint or savepoint it came from
    :param channel_state: the channel state entries of every state file
    :param keyed_changes: uid -> key group -> the changes of incremental checkpoints to
        apply on top of ``keyed``, oldest first
    """

    keyed: dict[str, dict[int, bytes]] = field(default_factory=dict)
    keyed_changes: dict[str, dict[int, list[bytes]]] = field(default_factory=dict)
    operator: dict[str, list[bytes]] = field(default_factory=dict)
    checkpoint_id: int | None = None
    #: In-flight records of an unaligned checkpoint, put back into the channels first.
    channel_state: list[ChannelStateEntry] = field(default_factory=list)


@dataclass(slots=True)
class Deployment:
    """The subtasks of one attempt, and the channels between them.

    ``triggered`` are the subtasks that get their checkpoint barriers from the coordinator
    (see :func:`coordinator_triggered`); every other subtask gets them from its channels.
    """

    subtasks: list[Subtask]
    by_chain: dict[int, list[Subtask]]
    channels: list[Channel]
    triggered: list[Subtask] = field(default_factory=list)


def coordinator_triggered(plan: JobPlan) -> list[tuple[int, int]]:
    """Return ``(chain index, subtask index)`` of every subtask no channel reaches.

    Those are the sources, and subtasks no producer routes to (e.g. every subtask but the
    first behind ``global_()``). They get checkpoint triggers from the coordinator instead
    of barriers from channels, and they are the ones that wait for the final checkpoint
    once their input ended (FLIP-147). Decided here, once, from the plan: the runner tells
    the coordinator and :func:`deploy` marks the subtasks with the same answer.
    """
    triggered: list[tuple[int, int]] = []
    for chain in plan.chains:
        reached: set[int] = set()
        if not chain.is_source:
            for edge in chain.input_edges:
                producer = plan.chain_of[edge.upstream.id]
                partitioner = plan.partitioner(edge)
                for i in range(producer.parallelism):
                    reached.update(partitioner.targets(i, producer.parallelism, chain.parallelism))
        triggered.extend(
            (chain.index, index) for index in range(chain.parallelism) if index not in reached
        )
    return triggered


def deploy(
    plan: JobPlan,
    settings: SubtaskSettings,
    source_splits: dict[int, list[Any]],
    channel_capacity: int,
    restored: RestoredState | None = None,
    *,
    operator_wrapper: Callable[[Any, OperatorContext], Any] | None = None,
) -> Deployment:
    """Build every subtask of ``plan`` for one attempt.

    :param source_splits: node id of each source -> its splits (made once per job)
    :param restored: state to restore, or None for a fresh start
    :param operator_wrapper: wraps each non-source operator (fault injection in tests)
    """
    notifiers = {
        chain.index: [Notifier() for _ in range(chain.parallelism)] for chain in plan.chains
    }
    gate_channels: dict[int, list[list[Channel]]] = {
        chain.index: [[] for _ in range(chain.parallelism)] for chain in plan.chains
    }
    # The input (0 or 1) of the chain's head each gate channel feeds, in gate order.
    channel_inputs: dict[int, list[list[int]]] = {
        chain.index: [[] for _ in range(chain.parallelism)] for chain in plan.chains
    }
    # (edge id, producer index) -> writer
    writers: dict[tuple[int, int], OutputWriter] = {}
    all_channels: list[Channel] = []
    # channel-state edge id -> (edge info, producer index -> writer)
    edges: dict[str, tuple[EdgeInfo, dict[int, OutputWriter]]] = {}
    for consumer in plan.chains:
        for edge in consumer.input_edges:
            producer = plan.chain_of[edge.upstream.id]
            partitioner = plan.partitioner(edge)
            info = EdgeInfo(
                edge_id(
                    edge.upstream.operator_uid,
                    edge.output_tag,
                    edge.downstream.operator_uid,
                    edge.input_index,
                ),
                partitioner.name,
                producer.parallelism,
                consumer.parallelism,
            )
            edge_writers: dict[int, OutputWriter] = {}
            edges[info.edge_id] = (info, edge_writers)
            for i in range(producer.parallelism):
                targets = partitioner.targets(i, producer.parallelism, consumer.parallelism)
                channels = []
                for j in targets:
                    channel = Channel(
                        channel_capacity,
                        notifiers[consumer.index][j],
                        f"{edge.upstream.name}[{i}] -> {consumer.head.name}[{j}]",
                    )
                    channel.edge = info
                    channel.producer_index = i
                    channel.consumer_index = j
                    channels.append(channel)
                    gate_channels[consumer.index][j].append(channel)
                    channel_inputs[consumer.index][j].append(edge.input_index)
                    all_channels.append(channel)
                router = partitioner.router(
                    i, len(targets), consumer.parallelism, plan.max_parallelism
                )
                head = edge.downstream
                router.set_consumer(head.name, head.operator_uid, head.keyed)
                writer = writers[(id(edge), i)] = OutputWriter(
                    channels, router, settings.batch_size
                )
                edge_writers[i] = writer
    if restored is not None and restored.channel_state:
        restore_channels(restored.channel_state, edges)

    subtasks: list[Subtask] = []
    by_chain: dict[int, list[Subtask]] = {}
    for chain in plan.chains:
        by_chain[chain.index] = []
        for index in range(chain.parallelism):
            subtask = _build_subtask(
                plan,
                chain,
                index,
                settings,
                writers,
                source_splits,
                restored,
                notifiers[chain.index][index],
                gate_channels[chain.index][index],
                channel_inputs[chain.index][index],
                operator_wrapper,
            )
            subtasks.append(subtask)
            by_chain[chain.index].append(subtask)
    triggered = [by_chain[chain][index] for chain, index in coordinator_triggered(plan)]
    for subtask in triggered:
        subtask.triggered_by_coordinator = True
    return Deployment(subtasks, by_chain, all_channels, triggered)


def _build_subtask(
    plan: JobPlan,
    chain: ChainPlan,
    index: int,
    settings: SubtaskSettings,
    writers: dict[tuple[int, int], OutputWriter],
    source_splits: dict[int, list[Any]],
    restored: RestoredState | None,
    notifier: Notifier,
    channels: list[Channel],
    channel_inputs: list[int],
    operator_wrapper: Callable[[Any, OperatorContext], Any] | None,
) -> Subtask:
    chained: dict[int, ChainedOperator] = {}
    ordered: list[ChainedOperator] = []
    # One processing time per subtask: its operators share the clock and the wake-ups.
    processing_time = ProcessingTimeService(settings.clock)
    for node in chain.nodes:
        ctx = _context(plan, node, chain.parallelism, index, settings, restored)
        ctx.processing_time = processing_time
        ctx.auto_watermark_interval_ms = settings.auto_watermark_interval_ms
        ctx.batch_execution = settings.batch_execution
        ctx.job_parameters = settings.job_parameters
        if node.kind == "source":
            assert node.source is not None
            splits = source_splits[node.id]
            mine = [s for j, s in enumerate(splits) if j % chain.parallelism == index]
            op: Any = SourceOperator(node.source, mine)
        else:
            op = node.create_operator()
            if op.keyed:
                ctx.keyed_backend = _keyed_backend(plan, node, chain.parallelism, index, restored)
                if settings.incremental_checkpoints:
                    ctx.keyed_backend.enable_change_tracking()
                # State time-to-live runs on the job's processing-time clock (a test's
                # ManualClock too), as Flink's TTL runs on processing time.
                ctx.keyed_backend.ttl_time_provider = processing_time.now_ms
            if operator_wrapper is not None:
                op = operator_wrapper(op, ctx)
        c = ChainedOperator(op, ctx)
        chained[node.id] = c
        ordered.append(c)
    for node in chain.nodes:
        c = chained[node.id]
        # A fused child is reached through exactly one edge (it has one input).
        tag_of = {edge.downstream.id: edge.output_tag for edge in node.outputs}
        for child in chain.chained[node.id]:
            tag = tag_of[child.id]
            if tag is None:
                c.children.append(chained[child.id])
            else:
                c.side_children.setdefault(tag, []).append(chained[child.id])
        for edge in chain.network_outputs[node.id]:
            writer = writers[(id(edge), index)]
            if edge.output_tag is None:
                c.writers.append(writer)
            else:
                c.side_writers.setdefault(edge.output_tag, []).append(writer)
    gate = None if chain.is_source else InputGate(channels, notifier)
    settings = _chain_settings(chain, settings)
    # A source subtask creates its readers itself, once its source operator knows its
    # (possibly restored) splits; see Subtask._run_source.
    return Subtask(
        chain.name, index, ordered, gate, notifier, settings, processing_time, channel_inputs
    )


def _chain_settings(chain: ChainPlan, settings: SubtaskSettings) -> SubtaskSettings:
    """The job's settings with the chain's own buffer timeout, if an operator of it set
    one (``set_buffer_timeout``): a chain is one subtask with one flush timer, so the
    shortest timeout of its operators wins; -1 (flush only when full or idle) is none."""
    own = [n.buffer_timeout_ms for n in chain.nodes if n.buffer_timeout_ms is not None]
    if not own:
        return settings
    timeout_s = min(math.inf if ms < 0 else ms / 1000 for ms in own)
    return dataclasses.replace(settings, buffer_timeout_s=timeout_s)


def _context(
    plan: JobPlan,
    node: StreamNode,
    parallelism: int,
    index: int,
    settings: SubtaskSettings,
    restored: RestoredState | None,
) -> OperatorContext:
    uid = node.operator_uid
    operator_state = OperatorStateBackend(uid, index)
    was_restored = False
    if restored is not None and uid in restored.operator:
        operator_state.restore(restored.operator[uid], index, parallelism)
        was_restored = True
    if restored is not None and (uid in restored.keyed or uid in restored.keyed_changes):
        was_restored = True
    return OperatorContext(
        operator_name=node.name,
        operator_uid=uid,
        subtask_index=index,
        parallelism=parallelism,
        max_parallelism=plan.max_parallelism,
        job_name=settings.job_name,
        attempt=settings.attempt,
        operator_state=operator_state,
        restored=was_restored,
    )


def _keyed_backend(
    plan: JobPlan,
    node: StreamNode,
    parallelism: int,
    index: int,
    restored: RestoredState | None,
) -> HeapKeyedStateBackend:
    key_groups = key_group_range_for_subtask(index, parallelism, plan.max_parallelism)
    backend = HeapKeyedStateBackend(node.operator_uid, key_groups, plan.max_parallelism)
    if restored is not None and node.operator_uid in restored.keyed:
        backend.restore(restored.keyed[node.operator_uid])
    if restored is not None and node.operator_uid in restored.keyed_changes:
        backend.restore_changes(restored.keyed_changes[node.operator_uid])
    return backend


def restore_channels(
    entries: list[ChannelStateEntry],
    edges: dict[str, tuple[EdgeInfo, dict[int, OutputWriter]]],
) -> None:
    """Put the in-flight records of an unaligned checkpoint back into the channels.

    Each old channel's input state comes before its output state (that is their order in
    the channel), and all of it before anything the new attempt sends. See
    :mod:`streamlet.runtime.channel_state` for the rescaling rules.

    :raises ChannelStateRestoreError: if the job lacks an edge the state belongs to, or
        the state cannot move to the edge's new parallelism
    """
    order = {"input": 0, "output": 1}
    ordered = sorted(entries, key=lambda e: (e.edge, e.producer, e.consumer, order[e.kind]))
    for entry in ordered:
        found = edges.get(entry.edge)
        if found is None:
            raise ChannelStateRestoreError(
                f"the checkpoint holds in-flight records of edge {_edge_name(entry.edge)} "
                f"that this job does not have; restore the job with that edge, or restore "
                f"from a savepoint (always aligned, so without in-flight records)"
            )
        info, writers = found
        buffers = [decode_buffer(b) for b in entry.buffers]
        if entry.producers == info.producers and entry.consumers == info.consumers:
            writer = writers.get(entry.producer)
            channel = None
            if writer is not None:
                channel = next(
                    (c for c in writer.channels if c.consumer_index == entry.consumer), None
                )
            if channel is None:
                raise ChannelStateRestoreError(
                    f"in-flight records of edge {_edge_name(entry.edge)} from subtask "
                    f"{entry.producer} to {entry.consumer}: this job has no such channel"
                )
            channel.restore_buffers(buffers)
            continue
        if info.partitioner in NOT_RESCALABLE:
            raise ChannelStateRestoreError(
                f"cannot rescale the in-flight records of the {info.partitioner} edge "
                f"{_edge_name(entry.edge)} from parallelism {entry.producers} -> "
                f"{entry.consumers} to {info.producers} -> {info.consumers}: a "
                f"{info.partitioner} edge maps subtasks one to one (or to all), so its "
                f"channel state has no place at another parallelism (Flink refuses it "
                f"too). Restore at the old parallelism, or from a savepoint (always "
                f"aligned); an explicit shuffle()/rebalance() instead of forward or "
                f"rescale makes the edge rescalable"
            )
        writer = writers[entry.producer % info.producers]
        for buffer in buffers:
            _route(writer, buffer)


def _route(writer: OutputWriter, buffer: Any) -> None:
    """Send a restored buffer through ``writer``'s router (rescaled channel state)."""
    if type(buffer) is not list and type(buffer) is not TimestampedBatch:
        buffer = buffer.records  # a KeyedBatch: the router computes keys anew
    channels = writer.channels
    if len(channels) == 1:
        parts: list[Any] = [buffer]
    elif type(buffer) is TimestampedBatch:
        parts = writer._router.split_timestamped(buffer)
    else:
        parts = writer._router.split(buffer)
    for channel, part in zip(channels, parts, strict=True):
        if part:
            channel.restore_buffers([part])


def _edge_name(edge: str) -> str:
    producer, tag, consumer, input_index = [*edge.split("|"), "", "", ""][:4]
    side = f" (side output {tag!r})" if tag else ""
    return f"{producer!r}{side} -> {consumer!r} input {input_index}"
