"""Which parts of a logical graph the Flink translator can run, checked before any JVM starts.

The translator supports a subset of streamlet's graph (see :data:`SUPPORTED`). Rather than
failing at the first unsupported node, :func:`check_translatable` walks the whole graph and
raises one :class:`FlinkTranslationError` listing every node (name and uid) with the feature
that does not translate and what to use instead, so a user fixes the job in one pass.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from streamlet.graph.partitioners import CustomPartitioner
from streamlet.graph.stream_graph import StreamGraph, StreamNode
from streamlet.operators.sinks.file import FileSink
from streamlet.operators.sources.collection import CollectionSource, SequenceSource
from streamlet.operators.sources.text_file import TextFileSource
from streamlet.operators.watermarks import (
    AscendingTimestampsWatermarks,
    BoundedOutOfOrdernessWatermarks,
    NoWatermarksGenerator,
)

__all__ = ["SUPPORTED", "FlinkTranslationError", "Refusal", "check_translatable"]

#: Operations the translator maps, per kind of stream: (non-keyed, keyed).
SUPPORTED: dict[str, tuple[bool, bool]] = {
    "map": (True, True),
    "flat_map": (True, True),
    "filter": (True, True),
    "process": (True, True),
    "reduce": (False, True),
    "sum": (False, True),
    "min": (False, True),
    "max": (False, True),
    "assign_timestamps_and_watermarks": (True, False),
    # Two inputs: connect(...).map / flat_map / process and the broadcast state pattern
    # (keyed: both inputs keyed, or the events keyed).
    "co_map": (True, True),
    "co_flat_map": (True, True),
    "co_process": (True, True),
    "broadcast_process": (True, True),
    "print": (True, False),
    "sink_to": (True, False),
    "execute_and_collect": (True, False),
}

#: Hooks of a user function that have no Flink counterpart in the translator.
_UNSUPPORTED_HOOKS = {
    "initialize_state": "operator state: keep the state keyed (key_by, then keyed state)",
    "snapshot_state": "operator state: keep the state keyed (key_by, then keyed state)",
    "notify_checkpoint_complete": "checkpoint notifications: run on streamlet's own runtime",
    "notify_checkpoint_aborted": "checkpoint notifications: run on streamlet's own runtime",
}

_SOURCES = (CollectionSource, SequenceSource, TextFileSource)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One node that cannot run on Flink: what it is, why, and what to use instead."""

    name: str
    uid: str
    feature: str
    instead: str

    def __str__(self) -> str:
        return f"- {self.name!r} (uid {self.uid!r}): {self.feature}; instead: {self.instead}"


class FlinkTranslationError(ValueError):
    """The job uses features the Flink runner cannot translate; :attr:`refusals` lists them."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        lines = "\n".join(str(r) for r in refusals)
        super().__init__(
            f"this job cannot run on Flink ({len(refusals)} node(s) do not translate):\n{lines}"
        )


def watermark_kind(strategy: Any) -> tuple[str, int] | None:
    """``("monotonous", 0)``, ``("bounded", bound_ms)`` or ``("none", 0)`` for the built-in
    generators of a streamlet WatermarkStrategy, ``None`` for a custom one."""
    factory = strategy._factory
    if factory is NoWatermarksGenerator:
        return ("none", 0)
    if factory is AscendingTimestampsWatermarks:
        return ("monotonous", 0)
    if isinstance(factory, functools.partial) and factory.func is BoundedOutOfOrdernessWatermarks:
        return ("bounded", int(factory.args[0]))
    return None


def _user_defines(fn: Any, method: str) -> bool:
    """Whether the user's class (not one of streamlet's base classes) defines ``method``."""
    return any(
        method in vars(cls) and not cls.__module__.startswith("streamlet.")
        for cls in type(fn).__mro__
    )


def _calls(function: Any, name: str) -> bool:
    """Whether ``function``'s code (or code nested in it: closures, comprehensions)
    names ``name``, an attribute it may call. A check of the code, not of what runs, so a
    call made through ``getattr`` goes unseen; the Flink-side context raises then."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    stack = [code] if code is not None else []
    while stack:
        code = stack.pop()
        if name in code.co_names:
            return True
        stack.extend(c for c in code.co_consts if inspect.iscode(c))
    return False


def _refuse_sink(sink: Any, refuse: Any) -> None:
    if type(sink) is not FileSink:
        refuse(
            f"the Python sink {type(sink).__name__} (only streamlet's FileSink has a Flink "
            f"counterpart)",
            "FileSink.for_row_format(path, encoder).build(), print(), or streamlet's own runtime",
        )
    elif sink.commit_on_end_of_input is False:
        refuse(
            "a FileSink with commit_on_end_of_input=False (Flink's FileSink always commits "
            "its last part files at the end of a bounded input)",
            "leave commit_on_end_of_input at its default",
        )


def _refusals_of(node: StreamNode) -> list[Refusal]:
    found: list[Refusal] = []

    def refuse(feature: str, instead: str) -> None:
        found.append(Refusal(node.name, node.operator_uid, feature, instead))

    api = node.operation.api
    for edge in node.inputs:
        if isinstance(edge.partitioner, CustomPartitioner):
            refuse(
                "a partition_custom() input (a Python partitioner Flink cannot call)",
                "key_by on the value the partitioner reads, or rebalance()",
            )
    if node.kind == "source":
        source = node.source
        if not isinstance(source, _SOURCES):
            refuse(
                f"the Python source {type(source).__name__} (a Source reader or a push source "
                f"has no replayable Flink counterpart)",
                "from_collection, from_sequence or read_text_file, or a Flink connector",
            )
        return found
    if api == "interval_join":
        refuse(
            "interval_join() (PyFlink has no interval join, and a keyed co-process "
            "function cannot stand in for it: a Python function's outputs carry its "
            "input record's timestamp, not the later of the pair's, so event time "
            "downstream would differ)",
            "run this job on streamlet's own runtime (runner='local'), or join in windows "
            "(a.join(b).where(k1).equal_to(k2).window(...)) once windows translate",
        )
        return found
    support = SUPPORTED.get(api)
    if support is None or not support[1 if node.keyed else 0]:
        stream = "keyed" if node.keyed else "non-keyed"
        refuse(
            f"{api}() on a {stream} stream is not translated yet",
            "run this job on streamlet's own runtime (runner='local')",
        )
    if (
        api == "broadcast_process"
        and node.keyed
        and _calls(
            getattr(node.function, "process_broadcast_element", None), "apply_to_keyed_state"
        )
    ):
        refuse(
            "ctx.apply_to_keyed_state() in process_broadcast_element() (Java's "
            "KeyedStateFunction; PyFlink has no counterpart)",
            "keep what the rule changes in broadcast state and apply it in "
            "process_element() (or on_timer) per key, or run on streamlet's own runtime",
        )
    if api == "sink_to":
        _refuse_sink(node.args[0], refuse)
    if api == "assign_timestamps_and_watermarks" and watermark_kind(node.args[0]) is None:
        refuse(
            "a custom watermark generator (WatermarkStrategy.for_generator)",
            "for_monotonous_timestamps() or for_bounded_out_of_orderness(...)",
        )
    fn: Any = node.function
    if fn is not None and not inspect.isroutine(fn) and not isinstance(fn, type):
        for hook, instead in _UNSUPPORTED_HOOKS.items():
            if _user_defines(fn, hook):
                refuse(f"the function's {hook}() hook", instead)
    return found


def check_translatable(graph: StreamGraph) -> None:
    """Raise one :class:`FlinkTranslationError` naming every node that does not translate.

    Runs on the graph alone (no PyFlink import, no JVM), so a job is refused at once.
    """
    refusals = [r for node in graph.nodes for r in _refusals_of(node)]
    if not graph.nodes:
        refusals.append(
            Refusal("<job>", "-", "the job has no operators", "add a source and a sink first")
        )
    if refusals:
        raise FlinkTranslationError(refusals)
