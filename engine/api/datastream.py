"""``DataStream`` and ``KeyedStream``: the PyFlink-style API that builds the logical graph.

Every operation adds a node to the environment's graph and returns a new stream. Partitioning
calls (``rebalance()``, ``shuffle()``, ...) and ``union`` add no node: they decide how the
*next* operation's node is connected, as in Flink.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol, overload

import anyio

from streamlet.api.broadcast import BroadcastConnectedStream, BroadcastStream
from streamlet.api.connected import ConnectedStreams
from streamlet.api.joins import CoGroupedStreams, IntervalJoin, JoinedStreams
from streamlet.api.windowed import AllWindowedStream, WindowedStream
from streamlet.graph.partitioners import (
    BroadcastPartitioner,
    CustomPartitioner,
    ForwardPartitioner,
    GlobalPartitioner,
    KeyGroupPartitioner,
    Partitioner,
    RebalancePartitioner,
    RescalePartitioner,
    ShufflePartitioner,
)
from streamlet.graph.stream_graph import StreamGraph, StreamNode
from streamlet.job.background import event_loop_running
from streamlet.job.threaded import BlockingIterator
from streamlet.operators import derived
from streamlet.operators.broadcast import check_broadcast_descriptors
from streamlet.operators.connected import KeySelectors
from streamlet.operators.functions import FunctionAdapter, KeyedProcessFunction, key_selector_of
from streamlet.operators.joins import IntervalJoinSpec
from streamlet.operators.operations import OPERATIONS
from streamlet.operators.records import OutputTag
from streamlet.operators.sinks.base import Sink
from streamlet.operators.time import to_millis
from streamlet.operators.typeinfo import check_type_info, java_string
from streamlet.operators.watermarks import WatermarkStrategy
from streamlet.operators.windowing.assigners import (
    CountSlidingWindowAssigner,
    CountTumblingWindowAssigner,
    WindowAssigner,
)
from streamlet.operators.windowing.operator import WindowSpec
from streamlet.state.descriptors import MapStateDescriptor

if TYPE_CHECKING:
    from streamlet.job.client import JobClient

__all__ = [
    "CollectResultIterator",
    "DataStream",
    "DataStreamSink",
    "KeyedStream",
    "SlotSharingGroup",
]


class SlotSharingGroup:
    """PyFlink's named slot sharing group, for ``slot_sharing_group()``: accepted, without
    effect (one process, no task slots). Resource settings are not modelled."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a slot sharing group needs a non-empty name, got {name!r}")
        self._name = name

    def get_name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"SlotSharingGroup({self._name!r})"


class StreamExecutionEnvironment(Protocol):
    """What a stream needs of its environment (``api.environment`` implements it): the graph
    its operations add nodes to, the checks of parallelism settings, and running the job.
    A Protocol, so the environment (which creates streams) and the streams do not import
    each other."""

    _graph: StreamGraph

    def get_parallelism(self) -> int: ...

    def get_max_parallelism(self) -> int: ...

    def _check_parallelism(self, parallelism: int, what: str) -> None: ...

    def _check_forward_edges(self, node: StreamNode) -> None: ...

    def _execute_on_flink(self, job_name: str, runner: str, flink_address: str | None) -> Any: ...

    def execute(
        self,
        job_name: str = ...,
        *,
        restore: str | None = ...,
        allow_non_restored_state: bool = ...,
    ) -> Any: ...

    def execute_async(
        self,
        job_name: str = ...,
        *,
        restore: str | None = ...,
        allow_non_restored_state: bool = ...,
        task_group: Any = ...,
    ) -> Awaitable[JobClient]: ...


#: (upstream node, partitioner or None, side output tag id or None)
_Input = tuple[StreamNode, Partitioner | None, str | None]


class _NodeHandle:
    """Settings that apply to the node behind a stream or sink."""

    _env: StreamExecutionEnvironment
    _node: StreamNode | None

    def _own_node(self, what: str) -> StreamNode:
        if self._node is None:
            raise TypeError(
                f"{what}() applies to an operator; this stream is a union or a partitioning "
                f"view of other streams, so call it on the operator that produced it"
            )
        return self._node

    def set_parallelism(self, parallelism: int) -> Any:
        """Run this operator with ``parallelism`` subtasks.

        :raises ValueError: if parallelism < 1, exceeds the max parallelism or what the
            operator supports, or breaks a forward edge
        """
        node = self._own_node("set_parallelism")
        self._env._check_parallelism(parallelism, f"operator {node.name!r}")
        if node.parallelism_limit is not None and parallelism > node.parallelism_limit:
            raise ValueError(
                f"operator {node.name!r} supports parallelism <= {node.parallelism_limit}, "
                f"got {parallelism}"
            )
        old = node.parallelism
        node.parallelism = parallelism
        try:
            self._env._check_forward_edges(node)
        except ValueError:
            node.parallelism = old
            raise
        return self

    def uid(self, uid: str) -> Any:
        """Set the stable id this operator's state is stored under (set it on stateful ones).

        :raises ValueError: if empty or already used by another operator
        """
        node = self._own_node("uid")
        if not isinstance(uid, str) or not uid.strip():
            raise ValueError(f"uid must be a non-empty string, got {uid!r}")
        for other in self._env._graph.nodes:
            if other is not node and other.uid == uid:
                raise ValueError(f"uid {uid!r} is already used by operator {other.name!r}")
        node.uid = uid
        return self

    def name(self, name: str) -> Any:
        """Set the display name (used in logs, errors and statistics)."""
        node = self._own_node("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        node.name = name
        return self

    def get_name(self) -> str:
        return self._own_node("get_name").name

    def disable_chaining(self) -> Any:
        """Run this operator in a subtask of its own, never fused with neighbours."""
        self._own_node("disable_chaining").chaining = False
        return self

    def get_parallelism(self) -> int:
        node = self._own_node("get_parallelism")
        return node.resolved_parallelism(self._env.get_parallelism())

    # --- PyFlink's per-operator settings (issue 16) ---

    def start_new_chain(self) -> Any:
        """Begin a new chain at this operator: it is not fused with the operator before it
        (the ones after it may still be fused with it)."""
        self._own_node("start_new_chain").new_chain = True
        return self

    def set_max_parallelism(self, max_parallelism: int) -> Any:
        """Bound this operator's parallelism (Flink's per-operator max parallelism).

        streamlet splits keyed state into the job's key groups, one number for the whole
        job (``env.set_max_parallelism``): on a keyed operator only that number is
        accepted. On other operators it bounds the parallelism (a default parallelism
        above it is lowered to it).

        :raises ValueError: if outside [1, 32768], below the operator's set parallelism,
            or a keyed operator's value differs from the job's max parallelism
        """
        node = self._own_node("set_max_parallelism")
        if not isinstance(max_parallelism, int) or isinstance(max_parallelism, bool):
            raise TypeError(f"max parallelism must be an int, got {max_parallelism!r}")
        if not 1 <= max_parallelism <= 32768:
            raise ValueError(f"max parallelism must be in [1, 32768], got {max_parallelism}")
        job_max = self._env.get_max_parallelism()
        if node.keyed and max_parallelism != job_max:
            raise ValueError(
                f"operator {node.name!r} is keyed: its key groups are the job's "
                f"({job_max}, env.set_max_parallelism), and a per-operator number of key "
                f"groups is not supported; call env.set_max_parallelism({max_parallelism}) "
                f"instead"
            )
        if node.parallelism is not None and node.parallelism > max_parallelism:
            raise ValueError(
                f"operator {node.name!r} has parallelism {node.parallelism}, above the max "
                f"parallelism {max_parallelism}"
            )
        if max_parallelism < job_max:
            limit = node.parallelism_limit
            node.parallelism_limit = (
                max_parallelism if limit is None else min(limit, max_parallelism)
            )
        return self

    def force_non_parallel(self) -> Any:
        """Run this operator in one subtask, and refuse a parallelism above 1 later."""
        node = self._own_node("force_non_parallel")
        old = node.parallelism, node.parallelism_limit
        node.parallelism, node.parallelism_limit = 1, 1
        try:
            self._env._check_forward_edges(node)
        except ValueError:
            node.parallelism, node.parallelism_limit = old
            raise
        return self

    def set_description(self, description: str) -> Any:
        """Describe this operator (shown in ``env.get_execution_plan()``)."""
        if not isinstance(description, str):
            raise TypeError(f"description must be a str, got {description!r}")
        self._own_node("set_description").description = description
        return self

    def set_buffer_timeout(self, timeout_millis: Any) -> Any:
        """Flush this operator's output at least every ``timeout_millis`` ms under load
        (an int, ``Duration``, ``Time`` or ``timedelta``); ``-1``: only when a buffer is full
        (or the subtask is idle, which streamlet always flushes at); ``0``: at every check
        (every few input buffers). A chain of operators runs as one subtask with one
        flush timer: the shortest timeout among its operators applies to the chain.

        :raises ValueError: for a timeout below -1
        """
        node = self._own_node("set_buffer_timeout")
        node.buffer_timeout_ms = float(to_millis(timeout_millis, "buffer timeout", minimum=-1))
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> Any:
        """Accepted and without effect: streamlet runs every subtask in one process, with
        no task slots to share (the name or ``SlotSharingGroup`` must still be given)."""
        self._own_node("slot_sharing_group")
        if not isinstance(slot_sharing_group, str) and not hasattr(slot_sharing_group, "get_name"):
            raise TypeError(
                f"slot_sharing_group() needs a name (str) or a SlotSharingGroup, got "
                f"{slot_sharing_group!r}"
            )
        return self

    def get_execution_environment(self) -> Any:
        """The environment this stream belongs to."""
        return self._env


class DataStream(_NodeHandle):
    """A stream of records produced by one operator, or a union / partitioning of streams."""

    #: The key selector of a KeyedStream; None for a stream that is not keyed.
    _key_selector: Callable[[Any], Any] | None = None

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        inputs: list[_Input],
        node: StreamNode | None = None,
    ) -> None:
        self._env = env
        self._inputs = inputs
        self._node = node

    # --- building blocks ---

    def _add(self, api: str, name: str, **record: Any) -> StreamNode:
        operation = OPERATIONS[api]
        if record.get("function") is not None:
            assert operation.method is not None
            FunctionAdapter(record["function"], operation.method, api)  # validate at the call
            derived.check_copyable(record["function"], api)
        node = self._env._graph.add_node(operation, name, list(self._inputs), **record)
        self._env._check_forward_edges(node)
        return node

    def _transform(self, name: str, fn: Any, api: str, output_type: Any = None) -> DataStream:
        node = self._add(api, name, function=fn, output_type=output_type)
        return DataStream(self._env, [(node, None, None)], node)

    def _partitioned(self, partitioner: Partitioner) -> DataStream:
        return DataStream(self._env, [(node, partitioner, tag) for node, _, tag in self._inputs])

    # --- operations ---

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        """Apply ``func`` to every record (a callable, ``async def``, or a MapFunction).
        ``output_type`` (a ``Types`` type information) is accepted and not enforced."""
        _type_arg(output_type, "map(output_type)")
        return self._transform("Map", func, "map", output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        """Replace every record by the records ``func`` returns or yields."""
        _type_arg(output_type, "flat_map(output_type)")
        return self._transform("Flat Map", func, "flat_map", output_type)

    def filter(self, func: Any) -> DataStream:
        """Keep the records for which ``func`` is true."""
        return self._transform("Filter", func, "filter")

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Apply a ProcessFunction (``process_element(value, ctx)`` yields outputs;
        ``yield tag, value`` with an :class:`OutputTag` emits to a side output).

        :raises TypeError: for a KeyedProcessFunction or a function with ``on_timer``:
            timers need a keyed stream (call ``key_by`` first)
        """
        _type_arg(output_type, "process(output_type)")
        if isinstance(func, KeyedProcessFunction) or callable(getattr(func, "on_timer", None)):
            raise TypeError(
                f"process() on a non-keyed stream got {func!r}, which uses timers "
                f"(a KeyedProcessFunction or an on_timer method); timers are only available "
                f"on a keyed stream: call key_by(...) first, then process()"
            )
        return self._transform("Process", func, "process", output_type)

    def assign_timestamps_and_watermarks(self, watermark_strategy: WatermarkStrategy) -> DataStream:
        """Give every record the timestamp ``watermark_strategy``'s assigner extracts, and
        emit the watermarks its generator makes (every auto-watermark interval).

        :raises TypeError: if ``watermark_strategy`` is not a WatermarkStrategy
        """
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError(
                f"assign_timestamps_and_watermarks() needs a WatermarkStrategy, got "
                f"{watermark_strategy!r}"
            )
        node = self._add(
            "assign_timestamps_and_watermarks", "Timestamps/Watermarks", args=(watermark_strategy,)
        )
        return DataStream(self._env, [(node, None, None)], node)

    def get_side_output(self, output_tag: OutputTag) -> DataStream:
        """The records this operator emitted to ``output_tag`` (``yield output_tag, value``),
        with their timestamps.

        :raises TypeError: if ``output_tag`` is not an OutputTag, or this stream is not an
            operator's output
        """
        if not isinstance(output_tag, OutputTag):
            raise TypeError(f"get_side_output() needs an OutputTag, got {output_tag!r}")
        node = self._own_node("get_side_output")
        return DataStream(self._env, [(node, None, output_tag.tag_id)])

    def key_by(self, key_selector: Any, key_type: Any = None) -> KeyedStream:
        """Partition by key: records with equal keys go to the same subtask, in order.

        Keys are compared as dict keys are: ``1``, ``1.0`` and ``True`` are one key, and so
        are ``2**63`` and ``2.0**63``, or a namedtuple and the plain tuple it equals; equal
        keys share one key group and one state. A key must hash the same in every process
        and be restorable from a checkpoint as itself, so ``key_selector`` must return:

        - str, int, float, bool, bytes or None;
        - a tuple of those, or a namedtuple (``collections.namedtuple`` or
          ``typing.NamedTuple``) defined at module level, which is restored as its class.

        Refused, at the first record that has such a key, checkpointing or not (the job
        fails with an error naming the keyed operator, the key, its type and what to
        return instead):

        - NaN, also inside a tuple: it is not equal to itself, so every record would get
          a state of its own; map it to None or a string;
        - enum members (``Enum``, ``IntEnum``, ``StrEnum``): return ``.value`` or
          ``.name``. Flink refuses enum keys too, as their hash is not stable;
        - other subclasses of the types above (``class UserId(str)``): return the plain
          value;
        - a str with lone surrogates (left by ``errors="surrogateescape"`` decoding), which
          a checkpoint cannot write: return bytes or a cleaned str;
        - lists, dicts, sets and other unhashable or process-dependent objects: return a
          tuple.

        The check runs once per distinct key (keys are memoised), not per record.
        """
        _type_arg(key_type, "key_by(key_type)")
        selector = key_selector_of(key_selector)
        return KeyedStream(
            self._env,
            [(node, KeyGroupPartitioner(selector), tag) for node, _, tag in self._inputs],
            selector,
        )

    def window_all(self, window_assigner: WindowAssigner) -> AllWindowedStream:
        """Window the whole stream (not per key): one subtask computes every window, as in
        Flink's ``windowAll``."""
        return AllWindowedStream(self.key_by(_one_key), window_assigner)

    def count_window_all(self, size: int, slide: int = 0) -> AllWindowedStream:
        """Count windows over the whole stream: every ``size`` elements (sliding by
        ``slide`` if given), in one subtask."""
        return self.window_all(_count_assigner(size, slide))

    @overload
    def connect(self, stream: BroadcastStream) -> BroadcastConnectedStream: ...

    @overload
    def connect(self, stream: DataStream) -> ConnectedStreams: ...

    def connect(self, stream: DataStream | BroadcastStream) -> Any:
        """Pair this stream with ``stream`` (of any record type) for an operator of two
        inputs: ``.map`` (CoMapFunction), ``.flat_map`` (CoFlatMapFunction) or ``.process``
        (CoProcessFunction, KeyedCoProcessFunction); keyed when both streams are keyed.

        With a :class:`~streamlet.api.broadcast.BroadcastStream` (``rules.broadcast(
        descriptor)``), a :class:`~streamlet.api.broadcast.BroadcastConnectedStream`:
        ``.process`` of a (Keyed)BroadcastProcessFunction, this stream the events.

        :raises TypeError: if ``stream`` is neither a DataStream nor a BroadcastStream
        :raises ValueError: if ``stream`` belongs to another execution environment
        """
        if isinstance(stream, BroadcastStream):
            if stream._env is not self._env:
                raise ValueError("connect() needs two streams of the same execution environment")
            return BroadcastConnectedStream(self, stream)
        if not isinstance(stream, DataStream):
            raise TypeError(f"connect() needs a DataStream, got {stream!r}")
        if stream._env is not self._env:
            raise ValueError("connect() needs two streams of the same execution environment")
        return ConnectedStreams(self, stream)

    def _two_input_node(
        self,
        api: str,
        name: str,
        func: Any,
        second: Any,
        key_selector: KeySelectors | Callable[[Any], Any] | None,
        args: tuple[Any, ...] = (),
        what: str | None = None,
    ) -> DataStream:
        """Add an operator of two inputs: this stream its first input, ``second`` (a stream,
        or a BroadcastStream) its second. Connected streams, the broadcast pattern and the
        interval join all add theirs here.

        :param what: the API call, for the error if ``func`` cannot be copied
        """
        derived.check_copyable(func, what or f"connect(...).{api.removeprefix('co_')}")
        node = self._env._graph.add_node(
            OPERATIONS[api],
            name,
            list(self._inputs),
            second_inputs=list(second._inputs),
            function=func,
            key_selector=key_selector,
            args=args,
        )
        self._env._check_forward_edges(node)
        return DataStream(self._env, [(node, None, None)], node)

    def _broadcast_node(
        self, name: str, func: Any, broadcast_stream: BroadcastStream, keyed: bool
    ) -> DataStream:
        """Add the operator of the broadcast state pattern: this stream (the events) its
        first input, ``broadcast_stream`` its second (see
        :class:`~streamlet.api.broadcast.BroadcastConnectedStream`)."""
        return self._two_input_node(
            "broadcast_process",
            name,
            func,
            broadcast_stream,
            self._key_selector if keyed else None,
            (broadcast_stream.broadcast_state_descriptors,),
            "connect(broadcast_stream).process",
        )

    # --- joins (streamlet.api.joins) ---

    def join(self, other_stream: DataStream) -> JoinedStreams:
        """Join with ``other_stream`` in windows:
        ``.where(k1).equal_to(k2).window(assigner).apply(join_function)``."""
        return JoinedStreams(self, self._check_other(other_stream, "join"))

    def co_group(self, other_stream: DataStream) -> CoGroupedStreams:
        """Co-group with ``other_stream`` in windows:
        ``.where(k1).equal_to(k2).window(assigner).apply(co_group_function)``."""
        return CoGroupedStreams(self, self._check_other(other_stream, "co_group"))

    def interval_join(self, other_stream: DataStream) -> IntervalJoin:
        """Interval joins need keyed streams: ``a.key_by(k1).interval_join(b.key_by(k2))``.

        :raises TypeError: always, on a stream that is not keyed
        """
        raise TypeError(
            "interval_join() needs two keyed streams: write "
            "a.key_by(k1).interval_join(b.key_by(k2)).between(lower, upper).process(fn)"
        )

    def _check_other(self, other: Any, api: str) -> DataStream:
        if not isinstance(other, DataStream):
            raise TypeError(f"{api}() needs a DataStream, got {other!r}")
        if other._env is not self._env:
            raise ValueError(f"{api}() needs two streams of the same execution environment")
        return other

    def _interval_join_node(
        self,
        second: DataStream,
        func: Any,
        key_selectors: KeySelectors,
        spec: IntervalJoinSpec,
    ) -> DataStream:
        """Add the interval join's operator: this stream its left input, ``second`` its
        right (see :class:`~streamlet.api.joins.IntervalJoin`)."""
        FunctionAdapter(func, "process_element", "interval_join(...).process")
        return self._two_input_node(
            "interval_join",
            "Interval Join",
            func,
            second,
            key_selectors,
            (spec,),
            "interval_join(...).process",
        )

    def union(self, *streams: DataStream) -> DataStream:
        """Merge this stream with ``streams`` (same record type) into one stream."""
        inputs = list(self._inputs)
        for stream in streams:
            if not isinstance(stream, DataStream):
                raise TypeError(f"union() needs DataStreams, got {stream!r}")
            if stream._env is not self._env:
                raise ValueError("union() needs streams of the same execution environment")
            inputs.extend(stream._inputs)
        return DataStream(self._env, inputs)

    # --- partitioning ---

    def forward(self) -> DataStream:
        """Send subtask i's records to subtask i of the next operator (equal parallelism)."""
        return self._partitioned(ForwardPartitioner())

    def rebalance(self) -> DataStream:
        """Distribute records round-robin over every subtask of the next operator."""
        return self._partitioned(RebalancePartitioner())

    def rescale(self) -> DataStream:
        """Distribute round-robin over a local subset of the next operator's subtasks."""
        return self._partitioned(RescalePartitioner())

    def shuffle(self, seed: int = 0) -> DataStream:
        """Send every record to a uniformly random subtask (seeded, so runs repeat)."""
        return self._partitioned(ShufflePartitioner(seed))

    @overload
    def broadcast(self) -> DataStream: ...

    @overload
    def broadcast(
        self, descriptor: MapStateDescriptor, /, *more: MapStateDescriptor
    ) -> BroadcastStream: ...

    def broadcast(self, *broadcast_state_descriptors: MapStateDescriptor) -> Any:
        """Send every record to every subtask of the next operator.

        Without arguments, the broadcast partitioning of this stream (a DataStream). With
        MapStateDescriptors, a :class:`~streamlet.api.broadcast.BroadcastStream` for the
        broadcast state pattern: ``events.connect(stream.broadcast(descriptor)).process(f)``
        keeps this stream's records in the broadcast states of those descriptors.

        :raises TypeError: if a descriptor is not a MapStateDescriptor
        :raises ValueError: if two descriptors share a name
        """
        if not broadcast_state_descriptors:
            return self._partitioned(BroadcastPartitioner())
        descriptors = check_broadcast_descriptors(broadcast_state_descriptors)
        inputs = [(node, BroadcastPartitioner(), tag) for node, _, tag in self._inputs]
        return BroadcastStream(self._env, inputs, descriptors)

    def global_(self) -> DataStream:
        """Send every record to subtask 0 of the next operator."""
        return self._partitioned(GlobalPartitioner())

    def partition_custom(self, partitioner: Any, key_selector: Any) -> DataStream:
        """Let ``partitioner(key, num_partitions) -> index`` choose each record's subtask."""
        return self._partitioned(CustomPartitioner(partitioner, key_selector))

    # --- sinks ---

    def _sink(self, api: str, name: str, **record: Any) -> DataStreamSink:
        return DataStreamSink(self._env, self._add(api, name, **record))

    def print(self, sink_identifier: str | None = None) -> DataStreamSink:
        """Print every record to stdout, prefixed ``N> `` (subtask N) when parallel.

        A stream with a PyFlink type (``output_type=Types.TUPLE([...])``, ``type_info=``)
        prints as Flink prints it, Java's way (``(the,15)``, ``+I[1, hi]``); an untyped
        one prints ``str(record)``, as PyFlink's pickled records do.
        """
        formatter = java_string(self._output_type())
        return self._sink("print", "Print to Std. Out", args=(sink_identifier, formatter))

    def _output_type(self) -> Any:
        """The PyFlink type of this stream's records, if every input has the same one."""
        types = set()
        for node, _, tag in self._inputs:
            types.add(None if tag is not None else _node_output_type(node))
        return types.pop() if len(types) == 1 else None

    def add_sink(self, sink_func: Any) -> DataStreamSink:
        """Call ``sink_func`` (sync or async, or a SinkFunction's ``invoke``) per record."""
        return self._sink("add_sink", "Sink", function=sink_func)

    def sink_to(self, sink: Sink) -> DataStreamSink:
        """Write to a :class:`Sink` (for example ``FileSink`` or a two-phase-commit sink)."""
        if not isinstance(sink, Sink):
            raise TypeError(f"sink_to() needs a Sink instance, got {sink!r}")
        return self._sink("sink_to", getattr(sink, "name", "Sink"), args=(sink,))

    def execute_and_collect(
        self,
        job_name: str | None = None,
        limit: int | None = None,
        *,
        runner: str = "local",
        flink_address: str | None = None,
    ) -> Any:
        """Run the job and return this stream's records.

        Which form runs where:

        * inside a running event loop, an async iterator and async context manager:
          ``async for x in ds.execute_and_collect(): ...`` (``async with`` it to be sure the
          job stops when you stop reading); ``limit`` stops after that many records;
        * where no event loop runs (PyFlink's form), ``with ds.execute_and_collect() as
          results: for x in results: ...``: a closeable iterator whose job runs in a
          background thread; with ``limit``, the list of the first ``limit`` records (the
          job is stopped then).

        Breaking out of the iteration and closing the iterator stop the job.

        With ``runner="flink"`` the job runs on Apache Flink (``flink_address`` as for
        :meth:`StreamExecutionEnvironment.execute`) and the records come back as a list
        once the job has finished (bounded jobs only), ``limit`` applied: inside an event
        loop as an awaitable of that list.
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        if runner != "local" or flink_address is not None:
            self._add("execute_and_collect", "Collect Sink", args=(None,)).parallelism = None
            ran = self._env._execute_on_flink(job_name or "Collect Job", runner, flink_address)
            if inspect.isawaitable(ran):
                return FlinkCollecting(ran, limit)
            records = ran.collected[0][:limit]
            return records if limit is not None else FlinkCollected(records)
        send, receive = anyio.create_memory_object_stream[list[Any]](16)
        node = self._add("execute_and_collect", "Collect Sink", args=(send,))
        node.parallelism = None
        name = job_name or "Collect Job"
        collected = CollectResultIterator(self._env, name, send, receive, limit)
        if limit is not None and not event_loop_running():
            with collected as records:
                return list(records)
        return collected


class FlinkCollected(list[Any]):
    """The records of a job that ran on Flink, in the local form's shapes: a list, and also
    a context manager (``with ds.execute_and_collect() as results:``, PyFlink's
    ``CloseableIterator`` form), so a program runs unchanged on either runner."""

    def __enter__(self) -> FlinkCollected:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to stop: the Flink job has finished when the records are here."""


class FlinkCollecting:
    """The records of a job running on Flink, inside an event loop: ``await`` it for the
    list, or use it as the local form is used, ``async with`` and ``async for``. The job
    runs (in a worker thread) when it is first awaited or iterated."""

    def __init__(self, ran: Awaitable[Any], limit: int | None) -> None:
        self._ran: Awaitable[Any] | None = ran
        self._limit = limit
        self._records: list[Any] | None = None

    async def _result(self) -> list[Any]:
        if self._records is None:
            ran, self._ran = self._ran, None
            if ran is None:
                raise RuntimeError("the Flink job of this execute_and_collect() failed before")
            result = await ran
            self._records = list(result.collected[0][: self._limit])
        return self._records

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._result().__await__()

    async def __aenter__(self) -> FlinkCollecting:
        await self._result()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        for record in await self._result():
            yield record

    async def aclose(self) -> None:
        """Nothing to stop: the records come once the Flink job has finished."""


class KeyedStream(DataStream):
    """A stream partitioned by key; its operations have keyed state scoped to each key."""

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        inputs: list[_Input],
        key_selector: Callable[[Any], Any],
    ) -> None:
        super().__init__(env, inputs)
        self._key_selector = key_selector

    def _keyed(self, name: str, fn: Any, api: str, output_type: Any = None) -> DataStream:
        node = self._add(
            api, name, function=fn, key_selector=self._key_selector, output_type=output_type
        )
        return DataStream(self._env, [(node, None, None)], node)

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        _type_arg(output_type, "map(output_type)")
        return self._keyed("Map", func, "map", output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        _type_arg(output_type, "flat_map(output_type)")
        return self._keyed("Flat Map", func, "flat_map", output_type)

    def filter(self, func: Any) -> DataStream:
        return self._keyed("Filter", func, "filter")

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Apply a KeyedProcessFunction (``process_element(value, ctx)``, keyed state)."""
        _type_arg(output_type, "process(output_type)")
        return self._keyed("Keyed Process", func, "process", output_type)

    def reduce(self, func: Any) -> DataStream:
        """Rolling reduce per key: emit ``func(previous, record)`` for every record."""
        return self._keyed("Reduce", func, "reduce")

    def _aggregate(self, kind: str, name: str, position: int | str) -> DataStream:
        if not isinstance(position, int | str) or isinstance(position, bool):
            raise TypeError(
                f"{kind}() needs a field position (int) or name (str), got {position!r}"
            )
        node = self._add(kind, name, key_selector=self._key_selector, args=(position,))
        return DataStream(self._env, [(node, None, None)], node)

    def sum(self, position_to_sum: int | str = 0) -> DataStream:
        """Rolling sum per key of field ``position_to_sum`` (or of the record, if a number)."""
        return self._aggregate("sum", "Sum", position_to_sum)

    def min(self, position_to_min: int | str = 0) -> DataStream:
        return self._aggregate("min", "Min", position_to_min)

    def max(self, position_to_max: int | str = 0) -> DataStream:
        return self._aggregate("max", "Max", position_to_max)

    def min_by(self, position_to_min_by: int | str = 0) -> DataStream:
        return self._aggregate("min_by", "Min By", position_to_min_by)

    def max_by(self, position_to_max_by: int | str = 0) -> DataStream:
        return self._aggregate("max_by", "Max By", position_to_max_by)

    def window(self, window_assigner: WindowAssigner) -> WindowedStream:
        """Cut each key's records into windows (``TumblingEventTimeWindows.of(...)`` and
        the other assigners); finish with ``reduce``, ``aggregate``, ``process`` or
        ``apply``."""
        return WindowedStream(self, window_assigner)

    def count_window(self, size: int, slide: int = 0) -> WindowedStream:
        """Windows of ``size`` elements per key (sliding by ``slide`` if given)."""
        return self.window(_count_assigner(size, slide))

    def interval_join(self, other_stream: DataStream) -> IntervalJoin:
        """Join with the keyed ``other_stream`` by event time: a record of this stream at
        ``t`` meets those of ``other_stream`` with the same key in ``[t + lower, t +
        upper]``; continue with ``.between(lower, upper).process(ProcessJoinFunction)``.

        :raises TypeError: if ``other_stream`` is not keyed
        """
        return IntervalJoin(self, self._check_other(other_stream, "interval_join"))

    def _window_node(self, spec: WindowSpec, name: str, output_type: Any = None) -> DataStream:
        node = self._add(
            "window", name, key_selector=self._key_selector, args=(spec,), output_type=output_type
        )
        return DataStream(self._env, [(node, None, None)], node)

    def _partitioned(self, partitioner: Partitioner) -> DataStream:
        raise TypeError(
            "a KeyedStream is already partitioned by key; apply an operation first "
            "(e.g. .map(...)) and partition its result"
        )


#: Operations whose records have their input's type (``reduce`` on a TUPLE stream gives
#: TUPLEs, as in Flink).
_TYPE_PRESERVING = frozenset(
    {
        "filter",
        "reduce",
        "sum",
        "min",
        "max",
        "min_by",
        "max_by",
        "assign_timestamps_and_watermarks",
    }
)


def _node_output_type(node: StreamNode) -> Any:
    while node.output_type is None and node.operation.api in _TYPE_PRESERVING and node.inputs:
        node = node.inputs[0].upstream
    return node.output_type


def _type_arg(type_info: Any, what: str) -> None:
    """Check a PyFlink type argument (``output_type``, ``key_type``): None or a type
    information (``Types.INT()``). Records are not checked against it (see
    :mod:`streamlet.operators.typeinfo`)."""
    if type_info is not None:
        check_type_info(type_info, what)


def _one_key(record: Any) -> int:
    """The key of every record of a ``window_all`` stream."""
    return 0


def _count_assigner(size: int, slide: int) -> WindowAssigner:
    if not isinstance(slide, int) or isinstance(slide, bool) or slide < 0:
        raise ValueError(f"slide must be an int >= 0 (0: tumbling), got {slide!r}")
    if slide == 0:
        return CountTumblingWindowAssigner.of(size)
    return CountSlidingWindowAssigner.of(size, slide)


class DataStreamSink(_NodeHandle):
    """The end of a stream: set its parallelism, name or uid."""

    def __init__(self, env: StreamExecutionEnvironment, node: StreamNode) -> None:
        self._env = env
        self._node = node


class CollectResultIterator:
    """The records of a collected stream, as an async iterator (and async context manager)."""

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        job_name: str,
        send: Any,
        receive: Any,
        limit: int | None,
    ) -> None:
        self._env = env
        self._job_name = job_name
        self._send = send
        self._receive = receive
        self._limit = limit
        self._pending: list[Any] = []
        self._position = 0
        self._returned = 0
        self._client: JobClient | None = None
        self._closed = False
        #: The iterator of the ``with`` form (where no event loop runs).
        self._blocking_iterator: BlockingIterator | None = None

    async def _start(self) -> None:
        if self._client is None:
            self._client = await self._env.execute_async(self._job_name)
            self._client._on_done.append(self._send.close)

    @property
    def job_client(self) -> JobClient | None:
        return self._client

    async def __aenter__(self) -> CollectResultIterator:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> CollectResultIterator:
        return self

    def __iter__(self) -> Any:
        """Iterate where no event loop runs (PyFlink's form; see execute_and_collect)."""
        return self._blocking("a plain for loop")

    def __enter__(self) -> Any:
        self._blocking_iterator = self._blocking("a plain with block")
        return self._blocking_iterator

    def __exit__(self, *exc: object) -> None:
        if self._blocking_iterator is not None:
            self._blocking_iterator.close()

    def _blocking(self, what: str) -> BlockingIterator:
        if event_loop_running():
            raise TypeError(
                f"execute_and_collect() inside a running event loop is an async iterator: "
                f"use 'async for x in ds.execute_and_collect()' (or 'async with'); {what} "
                f"would block the loop the job runs on"
            )
        if self._client is not None:
            raise RuntimeError("this execute_and_collect() iterator was already started")
        return BlockingIterator(self, self._job_name)

    async def _take(self) -> list[Any]:
        """The next records the sink received (up to the limit); [] at the end. Raises the
        job's failure after the records before it."""
        try:
            records = [await self.__anext__()]
        except StopAsyncIteration:
            return []
        pending = self._pending[self._position :]
        if self._limit is not None:
            pending = pending[: self._limit - self._returned]
        self._position += len(pending)
        self._returned += len(pending)
        records.extend(pending)
        return records

    async def __anext__(self) -> Any:
        if self._closed or (self._limit is not None and self._returned >= self._limit):
            await self.aclose()
            raise StopAsyncIteration
        await self._start()
        while self._position >= len(self._pending):
            try:
                self._pending = await self._receive.receive()
                self._position = 0
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                assert self._client is not None
                self._closed = True
                self._receive.close()
                await self._client.wait()  # raises the job's failure, if any
                raise StopAsyncIteration from None
        record = self._pending[self._position]
        self._position += 1
        self._returned += 1
        return record

    async def aclose(self) -> None:
        """Stop reading: cancel the job if it still runs and release the stream."""
        self._closed = True
        if self._client is not None and not self._client.done:
            self._receive.close()
            await self._client.cancel()
        self._receive.close()
        self._send.close()
