"""Which parts of a logical graph the Flink translator can run, checked before any JVM starts.

The translator supports a subset of streamlet's graph (see :data:`SUPPORTED`). Rather than
failing at the first unsupported node, :func:`check_translatable` walks the whole graph and
raises one :class:`FlinkTranslationError` listing every node (name and uid) with the feature
that does not translate and what to use instead, so a user fixes the job in one pass.
"""

from __future__ import annotations

import codecs
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamlet.graph.partitioners import CustomPartitioner
from streamlet.graph.stream_graph import StreamGraph, StreamNode
from streamlet.operators.sinks.file import FileSink
from streamlet.operators.sources.collection import CollectionSource, SequenceSource
from streamlet.operators.sources.file_source import FileSource
from streamlet.operators.sources.socket import SocketTextStreamSource
from streamlet.operators.sources.text_file import TextFileSource
from streamlet.operators.watermarks import (
    AscendingTimestampsWatermarks,
    BoundedOutOfOrdernessWatermarks,
    NoWatermarksGenerator,
)
from streamlet.operators.windowing.assigners import (
    CountSlidingWindowAssigner,
    CountTumblingWindowAssigner,
    EventTimeSessionWindows,
    GlobalWindows,
    ProcessingTimeSessionWindows,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)
from streamlet.operators.windowing.triggers import EventTimeTrigger, ProcessingTimeTrigger

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
    "min_by": (False, True),
    "max_by": (False, True),
    # window(...) and window_all(...) (a window_all stream is keyed by one constant key)
    "window": (False, True),
    "assign_timestamps_and_watermarks": (True, False),
    # Two inputs: connect(...).map / flat_map / process and the broadcast state pattern
    # (keyed: both inputs keyed, or the events keyed).
    "co_map": (True, True),
    "co_flat_map": (True, True),
    "co_process": (True, True),
    "broadcast_process": (True, True),
    "print": (True, False),
    # add_sink(fn): fn runs in the calling process, on the records Flink collects to it.
    "add_sink": (True, False),
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

_SOURCES = (
    CollectionSource,
    SequenceSource,
    TextFileSource,
    FileSource,
    SocketTextStreamSource,
)

#: The reconnect delay of Flink's socket source (``SocketTextStreamFunction``), fixed there.
FLINK_SOCKET_RETRY_DELAY_MS = 500

#: The assigners with a PyFlink counterpart (exact types: a subclass may assign otherwise).
_ASSIGNERS = frozenset(
    {
        TumblingEventTimeWindows,
        TumblingProcessingTimeWindows,
        SlidingEventTimeWindows,
        SlidingProcessingTimeWindows,
        EventTimeSessionWindows,
        ProcessingTimeSessionWindows,
        GlobalWindows,
        CountTumblingWindowAssigner,
    }
)


#: Operations that pass their input's timestamps on without reading them.
_TIMESTAMP_BLIND = frozenset(
    {"map", "flat_map", "filter", "reduce", "sum", "min", "max", "print", "execute_and_collect"}
)


def _stamped_as_on_streamlet(spec: Any) -> bool:
    """Whether the window's results carry ``window.max_timestamp()`` on Flink too.

    Streamlet (and Flink's Java WindowOperator) stamp every firing with the window's
    ``max_timestamp()``; PyFlink's window operator stamps it with the time of what fired it:
    the timer's time (the window's end, for the EventTimeTrigger and the
    ProcessingTimeTrigger), or the element's timestamp for a firing by element (count and
    custom triggers, continuous triggers' early firings, late firings within an allowed
    lateness).
    """
    trigger = spec.trigger or spec.assigner.get_default_trigger()
    if type(trigger) is ProcessingTimeTrigger:
        return True
    return type(trigger) is EventTimeTrigger and spec.allowed_lateness == 0


def _timestamp_reader(node: StreamNode) -> StreamNode | None:
    """The first node downstream of ``node``'s main output that reads record timestamps
    (a process function, an event-time window, a timestamp assigner), if any."""
    pending = [edge.downstream for edge in node.outputs if edge.output_tag is None]
    seen: set[int] = set()
    while pending:
        down = pending.pop()
        if down.id in seen:
            continue
        seen.add(down.id)
        api = down.operation.api
        if api == "window" and not down.args[0].assigner.is_event_time():
            blind = True
        else:
            blind = api in _TIMESTAMP_BLIND
        if not blind:
            return down
        pending.extend(edge.downstream for edge in down.outputs)
    return None


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _code_names(const)
    return names


def _reads_window_state(fn: Any) -> bool:
    """Whether the user's window function class names ``window_state`` in its code."""
    if fn is None or inspect.isroutine(fn):
        return False
    for cls in type(fn).__mro__:
        if cls.__module__.startswith("streamlet.") or cls is object:
            continue
        for member in vars(cls).values():
            code = getattr(member, "__code__", None)
            if code is not None and "window_state" in _code_names(code):
                return True
    return False


def _window_refusals(spec: Any) -> list[tuple[str, str]]:
    """(feature, instead) for the parts of a window node that do not translate.

    PyFlink 2.3's window operator takes an assigner, a trigger, allowed lateness, a late
    data side output and a window function, but no evictor: evictors, and the count
    windows that need one, stay on streamlet's runtime.
    """
    found: list[tuple[str, str]] = []
    assigner = spec.assigner
    if isinstance(assigner, CountSlidingWindowAssigner):
        found.append(
            (
                "a sliding count window (count_window(size, slide)) needs an evictor "
                "(Flink's CountEvictor), and PyFlink 2.3's windows have none; its "
                "CountSlidingWindowAssigner fires other windows than Flink's countWindow",
                "count_window(size) (tumbling), or streamlet's own runtime",
            )
        )
    elif type(assigner) not in _ASSIGNERS:
        found.append(
            (
                f"the custom window assigner {type(assigner).__name__} (only the built-in "
                "assigners have PyFlink counterparts)",
                "a built-in assigner (tumbling, sliding, session, global, count_window), "
                "or streamlet's own runtime",
            )
        )
    if assigner.is_merging and any(
        _reads_window_state(fn) for fn in (spec.function, spec.window_function)
    ):
        found.append(
            (
                "per-window state (context.window_state()) in merging (session) windows: "
                "Flink's window operator does not allow it",
                "context.global_state(), or streamlet's own runtime",
            )
        )
    if spec.evictor is not None:
        found.append(
            (
                f"the evictor {spec.evictor!r} (PyFlink 2.3's windows have no evictors)",
                "a window function that skips the elements the evictor would remove, "
                "or streamlet's own runtime",
            )
        )
    return found


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
        if isinstance(edge.partitioner, CustomPartitioner) and node.operation.inputs == 2:
            refuse(
                "a partition_custom() input of a two-input operator (PyFlink's "
                "partition_custom cannot feed one: its Python operator fails to configure)",
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
        if isinstance(source, SocketTextStreamSource):
            _socket_refusals(source, refuse)
        if isinstance(source, FileSource) and not _is_utf8(source.stream_format.charset_name):
            refuse(
                f"a FileSource in {source.stream_format.charset_name!r}: the Flink runner "
                f"reads files in UTF-8 (Java's charset names differ from Python's)",
                "UTF-8 files, or streamlet's own runtime",
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
    if api == "add_sink":
        _callback_sink_refusals(node.function, refuse)
    if api == "assign_timestamps_and_watermarks" and watermark_kind(node.args[0]) is None:
        refuse(
            "a custom watermark generator (WatermarkStrategy.for_generator)",
            "for_monotonous_timestamps() or for_bounded_out_of_orderness(...)",
        )
    functions: list[Any] = [node.function]
    if api == "window":
        spec = node.args[0]
        for feature, instead in _window_refusals(spec):
            refuse(feature, instead)
        reader = None if _stamped_as_on_streamlet(spec) else _timestamp_reader(node)
        if reader is not None:
            refuse(
                f"its results feed {reader.name!r}, which reads timestamps, but on Flink "
                "a firing by element or by an early timer is stamped with that element's "
                "or timer's time, not the window's max_timestamp() (PyFlink's window "
                "operator)",
                "the assigner's default trigger without allowed_lateness, or streamlet's "
                "own runtime",
            )
        functions = [spec.function, spec.window_function]
    for fn in functions:
        if fn is not None and not inspect.isroutine(fn) and not isinstance(fn, type):
            for hook, instead in _UNSUPPORTED_HOOKS.items():
                if _user_defines(fn, hook):
                    refuse(f"the function's {hook}() hook", instead)
    return found


def _callback_sink_refusals(fn: Any, refuse: Callable[[str, str], None]) -> None:
    """``add_sink(fn)`` on Flink calls ``fn`` in the calling process, once per record Flink
    collects back to it: what needs more than a plain call cannot be done there."""
    instead = (
        "a plain function or a SinkFunction with invoke() only (on Flink it runs in the "
        "calling process, once per record), print(), or a FileSink"
    )
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "invoke", None)):
        refuse("an async add_sink() function", instead)
    if not inspect.isroutine(fn) and not isinstance(fn, type):
        for hook in ("open", "close"):
            if _user_defines(fn, hook):
                refuse(f"the sink function's {hook}() hook", instead)


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _socket_refusals(source: SocketTextStreamSource, refuse: Callable[[str, str], None]) -> None:
    """What of ``socket_text_stream`` Flink's ``socketTextStream`` cannot do."""
    if source.write_ahead_log:
        refuse(
            "socket_text_stream(write_ahead_log=True): Flink's socket source has no "
            "write-ahead log, so a failover loses the lines read since the last checkpoint",
            "write_ahead_log=False (at-most-once after a failure, as Flink's "
            "socketTextStream), or a replayable source (files, a Flink connector such as "
            "Kafka) for exactly-once",
        )
    if source.retry_delay_ms != FLINK_SOCKET_RETRY_DELAY_MS:
        refuse(
            f"socket_text_stream(retry_delay_ms={source.retry_delay_ms}): Flink's socket "
            f"source waits a fixed {FLINK_SOCKET_RETRY_DELAY_MS} ms between reconnects",
            f"leave retry_delay_ms at its default ({FLINK_SOCKET_RETRY_DELAY_MS})",
        )
    if not _is_utf8(source.encoding):
        refuse(
            f"socket_text_stream(encoding={source.encoding!r}): the Flink runner's socket "
            f"source decodes UTF-8",
            "send UTF-8, or decode the bytes yourself on streamlet's own runtime",
        )


#: Fault injection wraps streamlet's operators, which do not run on Flink.
FAULT_INJECTION = Refusal(
    "<job>",
    "-",
    "fault injection (streamlet.testing.inject_faults) wraps streamlet's operators, which "
    "do not run on Flink",
    "raise from your own function at a chosen record (as tests/flink/test_failover.py "
    "does), or test on streamlet's own runtime",
)


def check_translatable(graph: StreamGraph, job_refusals: Sequence[Refusal] = ()) -> None:
    """Raise one :class:`FlinkTranslationError` naming every node that does not translate
    (after ``job_refusals``, what the environment refuses of the job as a whole).

    Runs on the graph alone (no PyFlink import, no JVM), so a job is refused at once.
    """
    refusals = [*job_refusals, *(r for node in graph.nodes for r in _refusals_of(node))]
    if not graph.nodes:
        refusals.append(
            Refusal("<job>", "-", "the job has no operators", "add a source and a sink first")
        )
    if refusals:
        raise FlinkTranslationError(refusals)
