"""Joins of two keyed streams: the interval join's operator, and the join functions.

``a.key_by(k1).interval_join(b.key_by(k2)).between(lower, upper).process(fn)`` runs an
:class:`IntervalJoinOperator` (Flink's ``IntervalJoinOperator``): a record of the left input
at time ``t`` meets every record of the right input of the same key whose timestamp lies in
``[t + lower, t + upper]`` (an exclusive bound moves in by 1 ms), whichever arrives first;
each pair goes to ``fn.process_element(left, right, ctx)`` and what it emits carries the
later of the two timestamps.

Both inputs are buffered in keyed map state (``LEFT_BUFFER`` / ``RIGHT_BUFFER``, as Flink
names them): per key a dict ``timestamp -> [records]``, so the buffers are checkpointed,
restored and redistributed by key group like any keyed state. A bucket is removed once the
watermark reaches its cleanup time, Flink's: a left bucket at ``t`` stays until ``t +
upper`` (``t`` itself when ``upper <= 0``), a right one until ``t - lower`` (``t`` when
``lower >= 0``), after which no record of the other side that is not late can meet it.

Cleanup timers: Flink registers an event-time timer per record (deduplicated per key and
timestamp) and keeps the timers in state. Here a timer exists per *bucket*, and since a
bucket's cleanup time is a function of its timestamp, the timers are not stored at all: the
operator keeps them in memory (a heap of cleanup times, each with the buckets due then) and
derives them from the restored buffers when it opens. Buckets are removed at the same
watermarks as in Flink, so the output is Flink's, while a record costs a dict insert and an
int pushed on a heap instead of a timer in keyed state. A record older than the operator's
watermark is late: dropped and counted
(:attr:`IntervalJoinOperator.num_late_records_dropped`), or sent to a side output
(``side_output_left_late_data`` / ``side_output_right_late_data``).

The window join and co-group (``a.join(b)`` / ``a.co_group(b)``) need no operator of their
own: they are a union of tagged records into a window operator whose window function is
:class:`CoGroupWindowFunction` (Flink's ``CoGroupedStreams``); :class:`JoinFunction`,
:class:`FlatJoinFunction` and :class:`CoGroupFunction` are what users give them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import Any, Generic, TypeVar, cast

from streamlet.state.descriptors import MapStateDescriptor
from streamlet.state.errors import StreamletInternalError

from .connected import KeySelectors
from .core import UserFunctionOperator
from .derived import _check_iterable, _collect_async_gen, _take_side_outputs
from .functions import FunctionAdapter, _RichFunction
from .records import TimestampedBatch
from .time import MIN_TIMESTAMP

__all__ = [
    "LEFT_BUFFER",
    "RIGHT_BUFFER",
    "CoGroupFunction",
    "CoGroupWindowFunction",
    "FlatJoinFunction",
    "IntervalJoinOperator",
    "IntervalJoinSpec",
    "JoinFunction",
    "ProcessJoinFunction",
    "interval_join_operator",
]

IN1 = TypeVar("IN1")
"""Type of the records of the first (left) input."""
IN2 = TypeVar("IN2")
"""Type of the records of the second (right) input."""
OUT = TypeVar("OUT")
"""Type of the records a join produces."""

#: The keyed map states of the buffered records (Flink's names).
LEFT_BUFFER = "LEFT_BUFFER"
RIGHT_BUFFER = "RIGHT_BUFFER"

_NO_TIMESTAMP = (
    "interval join {name!r}: a record of the {side} input has no timestamp; an interval join "
    "matches records by their event time, so both inputs need timestamps: give the sources a "
    "WatermarkStrategy with a timestamp assigner (env.from_source(source, strategy)) or call "
    "assign_timestamps_and_watermarks(...) on both streams before key_by"
)


# --- user functions ---


class ProcessJoinFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """What an interval join calls per joined pair (Flink's ``ProcessJoinFunction``).

    ``process_element(left, right, ctx)`` returns or yields outputs (``yield tag, value``
    with an :class:`OutputTag` emits to a side output); they carry ``ctx.get_timestamp()``,
    the later of the two records' timestamps. The function may use keyed state: the pair's
    key is current.
    """

    class Context:
        """The timestamps of a joined pair."""

        __slots__ = ("_backend", "_left", "_right")

        def __init__(self, backend: Any = None) -> None:
            self._backend = backend
            self._left = MIN_TIMESTAMP
            self._right = MIN_TIMESTAMP

        def get_left_timestamp(self) -> int:
            """The left record's timestamp."""
            return self._left

        def get_right_timestamp(self) -> int:
            """The right record's timestamp."""
            return self._right

        def get_timestamp(self) -> int:
            """The result's timestamp: the later of the two."""
            return self._left if self._left >= self._right else self._right

        def get_current_key(self) -> Any:
            """The key both records have."""
            return None if self._backend is None else self._backend.get_current_key()

    @abstractmethod
    def process_element(
        self, left: IN1, right: IN2, ctx: ProcessJoinFunction.Context
    ) -> Iterable[OUT] | None:
        """A pair of records within the bounds: return (or yield) zero or more records."""


class JoinFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """A window join's function: one output per pair of a window (Flink's ``JoinFunction``)."""

    @abstractmethod
    def join(self, first: IN1, second: IN2) -> OUT: ...


class FlatJoinFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """A window join's function returning (or yielding) any number of outputs per pair."""

    @abstractmethod
    def join(self, first: IN1, second: IN2) -> Iterable[OUT] | None: ...


class CoGroupFunction(_RichFunction, Generic[IN1, IN2, OUT]):
    """A co-group's function: per key and window, the records of both inputs (either list
    may be empty, never both), returning (or yielding) any number of outputs."""

    @abstractmethod
    def co_group(self, first: list[IN1], second: list[IN2]) -> Iterable[OUT] | None: ...


# --- the interval join ---


@dataclass(frozen=True, slots=True)
class IntervalJoinSpec:
    """The bounds of an interval join (ms, relative to the left record's timestamp) and
    where its late records go; the arguments of its operation.

    :raises ValueError: if ``lower > upper`` (checked before exclusive bounds move in)
    :raises TypeError: if a bound is not an int, or a tag not an OutputTag id (str) or None
    """

    lower: int
    upper: int
    lower_inclusive: bool = True
    upper_inclusive: bool = True
    left_late_tag: str | None = None
    right_late_tag: str | None = None

    def __post_init__(self) -> None:
        for what, bound in (("lower", self.lower), ("upper", self.upper)):
            if isinstance(bound, bool) or not isinstance(bound, int):
                raise TypeError(f"interval join {what} bound must be an int of ms, got {bound!r}")
        if self.lower > self.upper:
            raise ValueError(
                f"interval join bounds need lower <= upper, got lower={self.lower} ms > "
                f"upper={self.upper} ms; swap them, or use negative bounds for right records "
                f"before the left one"
            )

    @property
    def effective_lower(self) -> int:
        """The lowest offset that joins (an exclusive bound moves up by 1 ms)."""
        return self.lower if self.lower_inclusive else self.lower + 1

    @property
    def effective_upper(self) -> int:
        """The highest offset that joins (an exclusive bound moves down by 1 ms)."""
        return self.upper if self.upper_inclusive else self.upper - 1


class _Side:
    """One input of the join: its buffer, the other's, bounds relative to its records."""

    __slots__ = (
        "cleanup_index",
        "cleanup_offset",
        "cleanup_times",
        "is_left",
        "key_selector",
        "late_tag",
        "name",
        "other",
        "own",
        "relative_lower",
        "relative_upper",
        "removal_offset",
    )

    def __init__(
        self,
        name: str,
        is_left: bool,
        key_selector: Callable[[Any], Any],
        relative_lower: int,
        relative_upper: int,
        late_tag: str | None,
    ) -> None:
        self.name = name
        self.is_left = is_left
        self.key_selector = key_selector
        self.relative_lower = relative_lower
        self.relative_upper = relative_upper
        # Flink's cleanup time: the record may meet the other side until the watermark
        # passes ts + relative_upper (or ts itself, when all its partners are earlier).
        self.cleanup_offset = relative_upper if relative_upper > 0 else 0
        # So a cleanup timer at T removes the bucket at T - cleanup_offset.
        self.removal_offset = -self.cleanup_offset
        self.late_tag = late_tag
        self.own: Any = None
        self.other: Any = None
        #: The cleanup timers: cleanup time -> [key group index, key, index, key, ...] of
        #: the buckets due then, and a heap of those times (see IntervalJoinOperator).
        self.cleanup_index: dict[int, list[Any]] = {}
        self.cleanup_times: list[int] = []

    def rebuild_cleanup(self) -> None:
        """Derive the cleanup timers from the buffer (after a restore): one per bucket."""
        index: dict[int, list[Any]] = {}
        offset = self.cleanup_offset
        for i, group in enumerate(self.own.tables):
            for key, buckets in group.items():
                for ts in buckets:
                    entry = index.get(ts + offset)
                    if entry is None:
                        index[ts + offset] = [i, key]
                    else:
                        entry += (i, key)
        self.cleanup_index = index
        self.cleanup_times = list(index)
        heapify(self.cleanup_times)


#: A pair for an async join function: left, right, their timestamps, key group index, key.
_Pair = tuple[Any, Any, int, int, int, Any]


class IntervalJoinOperator(UserFunctionOperator):
    """Flink's ``IntervalJoinOperator``: see the module docstring.

    :param adapter: the ProcessJoinFunction (or a callable ``(left, right, ctx)``)
    :param key_selectors: the key of a left and of a right record
    :param spec: the bounds
    """

    two_inputs = True
    keyed = True
    accepts_timestamps = True

    def __init__(
        self, adapter: FunctionAdapter, key_selectors: KeySelectors, spec: IntervalJoinSpec
    ) -> None:
        super().__init__(adapter)
        self.spec = spec
        lower, upper = spec.effective_lower, spec.effective_upper
        self.lower_bound = lower
        self.upper_bound = upper
        #: Records dropped because their timestamp was below the watermark (and no late
        #: side output was set for their input).
        self.num_late_records_dropped = 0
        # The left record at t meets right records in [t + lower, t + upper]; the right
        # record at t meets left ones in [t - upper, t - lower].
        self._left = _Side(
            "left",
            True,
            key_selectors.first,
            lower,
            upper,
            spec.left_late_tag,
        )
        self._right = _Side(
            "right",
            False,
            key_selectors.second,
            -upper,
            -lower,
            spec.right_late_tag,
        )
        self._call = adapter.call

    async def open(self, ctx: Any) -> None:
        backend = ctx.keyed_backend
        if backend is None:
            raise StreamletInternalError(
                f"interval join {ctx.operator_name!r} was opened without a keyed state backend"
            )
        self._backend = backend
        # Flink's metric name; read from the counter the hot path keeps (no call per record).
        ctx.metric_group.gauge("numLateRecordsDropped", lambda: self.num_late_records_dropped)
        # Registered as map state, so restore decodes them (and their data stays with the
        # key groups); the hot loops work on the tables, as the state views do.
        backend.get_map_state(MapStateDescriptor(LEFT_BUFFER))
        backend.get_map_state(MapStateDescriptor(RIGHT_BUFFER))
        left_table = backend._tables[LEFT_BUFFER]
        right_table = backend._tables[RIGHT_BUFFER]
        self._left.own, self._left.other = left_table, right_table
        self._right.own, self._right.other = right_table, left_table
        self._left.rebuild_cleanup()
        self._right.rebuild_cleanup()
        self._ctx = ProcessJoinFunction.Context(backend)
        await super().open(ctx)

    async def process_batch(self, batch: Any) -> Any:
        return await self._process(batch, self._left)

    async def process_batch2(self, batch: Any) -> Any:
        return await self._process(batch, self._right)

    async def _process(self, batch: Any, side: _Side) -> Any:
        if type(batch) is not TimestampedBatch:
            if not batch:
                return []
            raise TypeError(_NO_TIMESTAMP.format(name=self.ctx.operator_name, side=side.name))
        if None in batch.timestamps or MIN_TIMESTAMP in batch.timestamps:
            raise TypeError(_NO_TIMESTAMP.format(name=self.ctx.operator_name, side=side.name))
        stamps = cast(list[int], batch.timestamps)  # no None: checked above
        backend = self._backend
        records, keys, indexes = backend.resolve(batch.records, side.key_selector)
        out: list[Any] = []
        out_stamps: list[int | None] = []
        late: list[Any] = []
        late_stamps: list[int | None] = []
        pairs: list[tuple[Any, Any, int, int, int, Any]] | None = (
            [] if self.adapter.is_async else None
        )
        watermark = self.current_watermark
        own = side.own
        own_writable = own.writable
        touch = own.touch
        other_tables = side.other.tables
        cleanup_index = side.cleanup_index
        cleanup_times = side.cleanup_times
        cleanup_offset = side.cleanup_offset
        relative_lower = side.relative_lower
        relative_upper = side.relative_upper
        is_left = side.is_left
        call = self._call
        ctx = self._ctx
        extend = out.extend
        for record, key, i, ts in zip(records, keys, indexes, stamps, strict=True):
            if ts < watermark:  # late (nothing is below MIN_TIMESTAMP, the first watermark)
                late.append(record)
                late_stamps.append(ts)
                continue
            backend._kg_index = i
            backend._current_key = key
            t = own_writable[i]
            if t is None:
                t = touch(i, key)
            buffer = t.get(key)
            if buffer is None:
                t[key] = {ts: [record]}
                bucket = None
            else:
                bucket = buffer.get(ts)
                if bucket is None:
                    buffer[ts] = [record]
                else:
                    bucket.append(record)
            if bucket is None:  # a new bucket: its cleanup timer (one per bucket)
                cleanup = ts + cleanup_offset
                entry = cleanup_index.get(cleanup)
                if entry is None:
                    cleanup_index[cleanup] = [i, key]
                    heappush(cleanup_times, cleanup)
                else:
                    entry += (i, key)
            others = other_tables[i].get(key)
            if not others:
                continue
            low = ts + relative_lower
            high = ts + relative_upper
            for other_ts, bucket in others.items():
                if other_ts < low or other_ts > high:
                    continue
                # Per bucket, not per pair: both timestamps, so the context and the
                # outputs' timestamp, are the bucket's.
                if is_left:
                    left_ts, right_ts = ts, other_ts
                else:
                    left_ts, right_ts = other_ts, ts
                if pairs is not None:
                    for other in bucket:
                        if is_left:
                            pairs.append((record, other, left_ts, right_ts, i, key))
                        else:
                            pairs.append((other, record, left_ts, right_ts, i, key))
                    continue
                ctx._left = left_ts
                ctx._right = right_ts
                before = len(out)
                for other in bucket:
                    result = call(record, other, ctx) if is_left else call(other, record, ctx)
                    if result is not None:
                        if type(result) is str:
                            _check_iterable(result, "interval_join process")
                        extend(result)
                emitted = len(out) - before
                if emitted == 1:
                    out_stamps.append(ts if ts >= other_ts else other_ts)
                elif emitted:
                    out_stamps.extend([ts if ts >= other_ts else other_ts] * emitted)
        if pairs:
            await self._run_async(pairs, out, out_stamps)
        main, side_outputs = _take_side_outputs(TimestampedBatch(out, out_stamps))
        if late:
            if side.late_tag is None:
                self.num_late_records_dropped += len(late)
            else:
                side_outputs = side_outputs or {}
                part = side_outputs.get(side.late_tag)
                if part is None:
                    side_outputs[side.late_tag] = TimestampedBatch(late, late_stamps)
                else:
                    part.extend(TimestampedBatch(late, late_stamps))
        self.side_outputs = side_outputs
        return main

    async def _run_async(
        self,
        pairs: list[_Pair],
        out: list[Any],
        stamps: list[int | None],
    ) -> None:
        """Call an ``async def`` (or async generator) join function per pair, in order.

        The pairs were collected with their key; the key of each is made current again.
        """
        call = self._call
        ctx = self._ctx
        backend = self._backend
        is_gen = self.adapter.is_async_gen
        for left, right, left_ts, right_ts, i, key in pairs:
            ctx._left, ctx._right = left_ts, right_ts
            backend._kg_index = i
            backend._current_key = key
            if is_gen:
                emitted = await _collect_async_gen(call(left, right, ctx))
            else:
                result = await call(left, right, ctx)
                emitted = [] if result is None else list(_check_iterable(result, "interval_join"))
            out.extend(emitted)
            stamps.extend([max(left_ts, right_ts)] * len(emitted))

    async def process_watermark(self, watermark: int) -> Any:
        """Remove every bucket whose cleanup time the watermark reached (Flink's cleanup
        timers firing); nothing is emitted."""
        self.current_watermark = watermark
        for side in (self._left, self._right):
            times = side.cleanup_times
            if not times or times[0] > watermark:
                continue
            index = side.cleanup_index
            own = side.own
            writable = own.writable
            touch = own.touch
            removal_offset = side.removal_offset
            while times and times[0] <= watermark:
                cleanup = heappop(times)
                ts = cleanup + removal_offset
                entry = index.pop(cleanup)
                for position in range(0, len(entry), 2):
                    i = entry[position]
                    key = entry[position + 1]
                    t = writable[i]
                    if t is None:
                        t = touch(i, key)
                    buffer = t.get(key)
                    if buffer is not None:
                        buffer.pop(ts, None)
                        if not buffer:  # no empty dicts are kept (MapState's invariant)
                            del t[key]
        return []


def interval_join_operator(
    fn: Any, key_selectors: KeySelectors, spec: IntervalJoinSpec
) -> IntervalJoinOperator:
    return IntervalJoinOperator(
        FunctionAdapter(fn, "process_element", "interval_join"), key_selectors, spec
    )


# --- window join / co-group: the window function over tagged records ---


class CoGroupWindowFunction:
    """The window function of a window join or co-group (Flink's ``CoGroupWindowFunction``):
    split a window's tagged records, ``(0, first)`` and ``(1, second)``, by input and hand
    them to the user's function, whose ``open`` / ``close`` it forwards.

    - ``"co_group"``: ``co_group(firsts, seconds)`` once per key and window (a callable
      ``f(firsts, seconds)`` too), returning or yielding outputs;
    - ``"join"``: ``join(first, second)`` per pair of the window (nested loop over both
      sides; nothing when one is empty), one output each;
    - ``"flat_join"``: as ``join``, with any number of outputs per pair.

    :raises TypeError: for a class, an object without the method that is not callable, or
        an async function (window functions are synchronous)
    """

    _METHODS = {"co_group": "co_group", "join": "join", "flat_join": "join"}

    def __init__(self, kind: str, function: Any) -> None:
        method = self._METHODS[kind]
        api = "co_group" if kind == "co_group" else "join"
        adapter = FunctionAdapter(function, method, f"{api}(...).apply")
        if adapter.is_async:
            raise TypeError(
                f"{api}(...).apply() needs a synchronous function, got the async {function!r}"
            )
        self.kind = kind
        self.function = function
        self._call = adapter.call
        self._hooks = adapter.obj is not adapter.call

    def open(self, runtime_context: Any) -> None:
        hook = getattr(self.function, "open", None) if self._hooks else None
        if callable(hook):
            hook(runtime_context)

    def close(self) -> None:
        hook = getattr(self.function, "close", None) if self._hooks else None
        if callable(hook):
            hook()

    def apply(self, key: Any, window: Any, inputs: Iterable[tuple[int, Any]]) -> list[Any]:
        first: list[Any] = []
        second: list[Any] = []
        for tag, value in inputs:
            (second if tag else first).append(value)
        call = self._call
        if self.kind == "co_group":
            result = call(first, second)
            return [] if result is None else list(_check_iterable(result, "co_group"))
        if self.kind == "join":
            return [call(a, b) for a in first for b in second]
        out: list[Any] = []
        for a in first:
            for b in second:
                result = call(a, b)
                if result is not None:
                    out.extend(_check_iterable(result, "join"))
        return out
