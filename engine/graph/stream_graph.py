"""The logical graph a DataStream program builds: nodes (operators) joined by edges.

The graph is declarative, so that more than one runner can consume it (the local runtime
here; a translator to Apache Flink): a node records its operation (an entry of the one table
:data:`~streamlet.operators.operations.OPERATIONS`), the user function, the key selector (on
a keyed stream), the operation's arguments (the field of ``sum("field")``, the ``Sink`` of
``sink_to``, the ``Source`` of ``from_source``), its
parallelism (``None`` = the environment's default, resolved when the job starts), its uid
(the key its state is stored under) and its name. The local runtime makes a fresh
operator instance from that record, once per subtask and attempt
(:meth:`StreamNode.create_operator`). An edge carries the partitioner chosen
for it, or ``None`` for the default: forward between equal parallelisms, rebalance otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from streamlet.graph.partitioners import ForwardPartitioner, Partitioner, RebalancePartitioner
from streamlet.operators.base import Operator
from streamlet.operators.connected import KeySelectors
from streamlet.operators.operations import Operation, OperationKind
from streamlet.operators.sources.base import Source

__all__ = ["StreamEdge", "StreamGraph", "StreamNode"]

_UID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(eq=False, slots=True)
class StreamEdge:
    """A connection from ``upstream`` to ``downstream`` through ``partitioner``."""

    upstream: StreamNode
    downstream: StreamNode
    partitioner: Partitioner | None = None
    #: The side output this edge carries (an OutputTag's id), None for the main output.
    output_tag: str | None = None
    #: Which input of a two-input operator this edge feeds: 0 (the first, and the only
    #: input of every other operator) or 1 (the second: ``connect``'s argument).
    input_index: int = 0

    def resolved_partitioner(self, default_parallelism: int) -> Partitioner:
        if self.partitioner is not None:
            return self.partitioner
        up = self.upstream.resolved_parallelism(default_parallelism)
        down = self.downstream.resolved_parallelism(default_parallelism)
        return ForwardPartitioner() if up == down else RebalancePartitioner()


@dataclass(eq=False, slots=True)
class StreamNode:
    """One operator of the logical graph."""

    id: int
    operation: Operation
    name: str
    #: The user function as the user gave it (each operator instance gets its own copy).
    function: Any = None
    #: The key selector of a keyed stream's operation, ``None`` on a non-keyed stream; for
    #: an operation on connected keyed streams, one per input (:class:`KeySelectors`).
    key_selector: Callable[[Any], Any] | KeySelectors | None = None
    #: The operation's arguments after the function, as its operator factories take them.
    args: tuple[Any, ...] = ()
    parallelism: int | None = None
    #: The user's ``.uid()``; :attr:`operator_uid` is the one state is stored under.
    uid: str | None = None
    #: The largest parallelism allowed (1 for a non-parallel source).
    parallelism_limit: int | None = None
    #: A node that always runs at this other node's parallelism (the watermark operator
    #: ``from_source`` puts right behind its source), or None.
    parallelism_of: StreamNode | None = None
    chaining: bool = True
    #: The PyFlink type information the user gave its output (``output_type=``,
    #: ``type_info=``), or None: it decides how ``print()`` shows records (Flink prints
    #: typed records as Java does).
    output_type: Any = None
    #: ``start_new_chain()``: never fused into its upstream operator's chain (its own
    #: downstream may still fuse into it).
    new_chain: bool = False
    #: ``set_description()``: shown in the execution plan.
    description: str | None = None
    #: ``set_buffer_timeout()`` of this operator (ms; -1: flush only when full or idle),
    #: None for the job's setting.
    buffer_timeout_ms: float | None = None
    inputs: list[StreamEdge] = field(default_factory=list)
    outputs: list[StreamEdge] = field(default_factory=list)

    @property
    def kind(self) -> OperationKind:
        return self.operation.kind

    @property
    def keyed(self) -> bool:
        return self.key_selector is not None

    @property
    def source(self) -> Source[Any] | None:
        """The source a source node reads (its one argument), ``None`` for other nodes."""
        return self.args[0] if self.kind == "source" else None

    def create_operator(self) -> Operator[Any, Any]:
        """A fresh operator instance for one subtask and attempt, built from the record."""
        return self.operation.create(self.function, self.key_selector, self.args)

    @property
    def operator_uid(self) -> str:
        """The uid state is stored under: the user's ``.uid()``, or one derived from the graph.

        A derived uid changes when the graph changes; set ``.uid()`` on every stateful
        operator of a job that must restore across program changes (as in Flink).
        """
        if self.uid is not None:
            return self.uid
        base = _UID_CHARS.sub("-", self.name.lower()).strip("-") or self.kind
        return f"{base}-{self.id}"

    def resolved_parallelism(self, default_parallelism: int) -> int:
        if self.parallelism_of is not None:
            return self.parallelism_of.resolved_parallelism(default_parallelism)
        if self.parallelism is not None:
            return self.parallelism
        if self.parallelism_limit is not None:
            return min(self.parallelism_limit, default_parallelism)
        return default_parallelism


class StreamGraph:
    """All nodes of one environment, in creation order (a topological order).

    A job's start hands its graph to the job and the environment starts a new one (as
    Flink clears its transformations), but streams built before stay usable, as in Flink: a
    node fed by a node of an earlier graph brings a copy of that node, and of everything
    upstream of it, into this graph (:meth:`_adopt`).
    """

    def __init__(self) -> None:
        self.nodes: list[StreamNode] = []
        #: id() of every node of this graph.
        self._members: set[int] = set()
        #: id() of a node of an earlier graph -> its copy in this one.
        self._adopted: dict[int, StreamNode] = {}

    def add_node(
        self,
        operation: Operation,
        name: str,
        inputs: list[tuple[StreamNode, Partitioner | None, str | None]] = (),  # type: ignore[assignment]
        second_inputs: list[tuple[StreamNode, Partitioner | None, str | None]] = (),  # type: ignore[assignment]
        **record: Any,
    ) -> StreamNode:
        """Add a node fed by ``inputs``: (upstream node, partitioner or None, side output
        tag id or None) each; a two-input operator's second input is ``second_inputs``."""
        # Upstream nodes of earlier graphs are copied in first: ids follow the node order.
        parallelism_of = record.get("parallelism_of")
        if parallelism_of is not None:
            record["parallelism_of"] = self._member(parallelism_of)
        edges = [
            (self._member(upstream), partitioner, tag, input_index)
            for input_index, group in enumerate((inputs, second_inputs))
            for upstream, partitioner, tag in group
        ]
        node = StreamNode(id=len(self.nodes) + 1, operation=operation, name=name, **record)
        for upstream, partitioner, tag, input_index in edges:
            self._connect(upstream, node, partitioner, tag, input_index)
        self.nodes.append(node)
        self._members.add(id(node))
        return node

    def _connect(
        self,
        upstream: StreamNode,
        node: StreamNode,
        partitioner: Partitioner | None,
        tag: str | None,
        input_index: int,
    ) -> None:
        edge = StreamEdge(upstream, node, partitioner, tag, input_index)
        upstream.outputs.append(edge)
        node.inputs.append(edge)

    def _member(self, node: StreamNode) -> StreamNode:
        """``node`` if it is in this graph, else its copy here (made by :meth:`_adopt`)."""
        if id(node) in self._members:
            return node
        return self._adopt(node)

    def _adopt(self, old: StreamNode) -> StreamNode:
        """Copy ``old``, a node of an earlier graph, and its upstream nodes into this graph
        (once each), with the same settings, and fresh edges among the copies only."""
        copy = self._adopted.get(id(old))
        if copy is not None:
            return copy
        upstream = [(self._member(e.upstream), e) for e in old.inputs]
        parallelism_of = None if old.parallelism_of is None else self._member(old.parallelism_of)
        copy = replace(
            old, id=len(self.nodes) + 1, inputs=[], outputs=[], parallelism_of=parallelism_of
        )
        for node, edge in upstream:
            self._connect(node, copy, edge.partitioner, edge.output_tag, edge.input_index)
        self.nodes.append(copy)
        self._members.add(id(copy))
        self._adopted[id(old)] = copy
        return copy
