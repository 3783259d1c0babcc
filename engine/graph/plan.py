"""From logical graph to execution plan: resolve parallelism, validate, chain operators.

Chaining (DESIGN §2, Flink's operator chaining): a node joins its upstream node's chain when
the edge between them is forward, both have the same parallelism, the node has exactly one
input, and chaining is not disabled. A chain runs inside one subtask as plain function calls;
only edges between chains become channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamlet.errors import JobGraphError
from streamlet.graph.partitioners import ForwardPartitioner, Partitioner
from streamlet.graph.stream_graph import StreamEdge, StreamGraph, StreamNode
from streamlet.state.key_groups import check_parallelism

__all__ = ["ChainPlan", "JobPlan", "build_plan"]


@dataclass(eq=False, slots=True)
class ChainPlan:
    """Nodes that run fused in one subtask, ``parallelism`` times."""

    index: int
    head: StreamNode
    parallelism: int
    #: Nodes of the chain in topological order (head first).
    nodes: list[StreamNode] = field(default_factory=list)
    #: node id -> downstream nodes fused into this chain.
    chained: dict[int, list[StreamNode]] = field(default_factory=dict)
    #: node id -> edges leaving the chain (each becomes channels).
    network_outputs: dict[int, list[StreamEdge]] = field(default_factory=dict)
    #: Edges entering the head from other chains, in a fixed order.
    input_edges: list[StreamEdge] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " -> ".join(node.name for node in self.nodes)

    @property
    def is_source(self) -> bool:
        return self.head.kind == "source"


@dataclass(eq=False, slots=True)
class JobPlan:
    """The chains of a job, with every parallelism and partitioner resolved."""

    chains: list[ChainPlan]
    max_parallelism: int
    parallelism: dict[int, int]
    partitioners: dict[int, Partitioner]
    chain_of: dict[int, ChainPlan]

    def partitioner(self, edge: StreamEdge) -> Partitioner:
        return self.partitioners[id(edge)]


def _describe(node: StreamNode) -> str:
    return f"{node.name!r} (uid {node.operator_uid!r})"


def build_plan(graph: StreamGraph, default_parallelism: int, max_parallelism: int) -> JobPlan:
    """Validate ``graph`` and cut it into chains.

    :raises JobGraphError: if the graph is empty
    :raises ValueError: if a parallelism, a forward edge or a uid is inconsistent
    """
    if not graph.nodes:
        raise JobGraphError("no operators defined in the job: add a source and a sink")
    parallelism: dict[int, int] = {}
    uids: dict[str, StreamNode] = {}
    for node in graph.nodes:
        p = node.resolved_parallelism(default_parallelism)
        try:
            check_parallelism(p, max_parallelism)
        except ValueError as exc:
            raise ValueError(f"operator {_describe(node)}: {exc}") from None
        if node.parallelism_limit is not None and p > node.parallelism_limit:
            raise ValueError(
                f"operator {_describe(node)} supports parallelism <= {node.parallelism_limit}, "
                f"got {p}"
            )
        parallelism[node.id] = p
        uid = node.operator_uid
        if uid in uids:
            raise ValueError(
                f"uid {uid!r} is used by two operators: {uids[uid].name!r} and {node.name!r}"
            )
        uids[uid] = node

    partitioners: dict[int, Partitioner] = {}
    for node in graph.nodes:
        for edge in node.inputs:
            partitioner = edge.resolved_partitioner(default_parallelism)
            up, down = parallelism[edge.upstream.id], parallelism[node.id]
            if isinstance(partitioner, ForwardPartitioner) and up != down:
                raise ValueError(
                    f"forward edge from {_describe(edge.upstream)} (parallelism {up}) to "
                    f"{_describe(node)} (parallelism {down}) needs equal parallelism; use "
                    f"rebalance() or another partitioner"
                )
            partitioners[id(edge)] = partitioner

    def chainable(edge: StreamEdge) -> bool:
        down = edge.downstream
        return (
            isinstance(partitioners[id(edge)], ForwardPartitioner)
            and len(down.inputs) == 1
            and down.chaining
            and not down.new_chain
            and edge.upstream.chaining
            and parallelism[edge.upstream.id] == parallelism[down.id]
        )

    chains: list[ChainPlan] = []
    chain_of: dict[int, ChainPlan] = {}
    for node in graph.nodes:
        if node.inputs and chainable(node.inputs[0]):
            continue  # fused into its upstream node's chain
        chain = ChainPlan(index=len(chains), head=node, parallelism=parallelism[node.id])
        stack = [node]
        while stack:
            current = stack.pop(0)
            chain.nodes.append(current)
            chain_of[current.id] = chain
            fused = [e.downstream for e in current.outputs if chainable(e)]
            chain.chained[current.id] = fused
            chain.network_outputs[current.id] = [e for e in current.outputs if not chainable(e)]
            stack.extend(fused)
        chains.append(chain)
    for chain in chains:
        chain.input_edges = list(chain.head.inputs)
    return JobPlan(chains, max_parallelism, parallelism, partitioners, chain_of)
