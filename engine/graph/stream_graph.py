"""The logical graph a DataStream program builds: nodes (operators) joined by edges.

A node knows how to make a fresh operator instance (once per subtask and attempt), its
parallelism (``None`` = the environment's default, resolved when the job starts), its uid
(the key its state is stored under) and its name. An edge carries the partitioner chosen
for it, or ``None`` for the default: forward between equal parallelisms, rebalance otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamlet.graph.partitioners import ForwardPartitioner, Partitioner, RebalancePartitioner
from streamlet.operators.base import Operator
from streamlet.operators.sources.base import Source

__all__ = ["NodeKind", "StreamEdge", "StreamGraph", "StreamNode"]

NodeKind = str  # "source" | "operator" | "sink"

_UID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(eq=False, slots=True)
class StreamEdge:
    """A connection from ``upstream`` to ``downstream`` through ``partitioner``."""

    upstream: StreamNode
    downstream: StreamNode
    partitioner: Partitioner | None = None

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
    kind: NodeKind
    name: str
    factory: Callable[[], Operator[Any, Any]] | None
    source: Source[Any] | None = None
    parallelism: int | None = None
    uid: str | None = None
    keyed: bool = False
    #: The largest parallelism allowed (1 for a non-parallel source).
    parallelism_limit: int | None = None
    chaining: bool = True
    inputs: list[StreamEdge] = field(default_factory=list)
    outputs: list[StreamEdge] = field(default_factory=list)

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
        if self.parallelism is not None:
            return self.parallelism
        if self.parallelism_limit is not None:
            return min(self.parallelism_limit, default_parallelism)
        return default_parallelism


class StreamGraph:
    """All nodes of one environment, in creation order (a topological order)."""

    def __init__(self) -> None:
        self.nodes: list[StreamNode] = []

    def add_node(
        self,
        kind: NodeKind,
        name: str,
        factory: Callable[[], Operator[Any, Any]] | None,
        inputs: list[tuple[StreamNode, Partitioner | None]] = (),  # type: ignore[assignment]
        **options: Any,
    ) -> StreamNode:
        node = StreamNode(id=len(self.nodes) + 1, kind=kind, name=name, factory=factory, **options)
        for upstream, partitioner in inputs:
            edge = StreamEdge(upstream, node, partitioner)
            upstream.outputs.append(edge)
            node.inputs.append(edge)
        self.nodes.append(node)
        return node
