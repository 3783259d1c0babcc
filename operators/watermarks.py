"""Watermarks and how a source makes them: Flink's ``WatermarkStrategy`` family, PyFlink names.

A watermark ``t`` is a promise that no more records with a timestamp ``<= t`` will follow
(later ones are late). A :class:`WatermarkStrategy` says how a source gets its records'
timestamps (a :class:`TimestampAssigner`) and its watermarks (a :class:`WatermarkGenerator`,
one fresh instance per split or subtask, since each tracks its own input). The engine feeds a
generator the records of each batch (:meth:`WatermarkGenerator.on_events`) and asks it
periodically for a watermark (:meth:`WatermarkGenerator.on_periodic_emit`), both times handing
it a :class:`WatermarkCollector`, from which it then takes what changed
(:meth:`WatermarkCollector.take_events`) and forwards it downstream.

A source with nothing to read for a while can declare itself idle (:data:`IDLE`), so that
operators downstream stop waiting for its watermark; see :class:`WatermarksWithIdleness` and
:meth:`WatermarkStrategy.with_idleness`.

Everything here is a pure state machine: no clock is read except the ``now_ms`` handed in.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .time import MAX_WATERMARK_TIMESTAMP, MIN_TIMESTAMP, to_millis

__all__ = [
    "ACTIVE",
    "IDLE",
    "MAX_WATERMARK",
    "AscendingTimestampsWatermarks",
    "BoundedOutOfOrdernessWatermarks",
    "NoWatermarksGenerator",
    "TimestampAssigner",
    "Watermark",
    "WatermarkCollector",
    "WatermarkGenerator",
    "WatermarkOutput",
    "WatermarkStatus",
    "WatermarkStrategy",
    "WatermarksWithIdleness",
]


@dataclass(frozen=True, slots=True)
class Watermark:
    """Event time has reached ``timestamp`` (ms): no record at or before it should follow.

    Also the event that carries it through the engine's channels.
    """

    timestamp: int

    MAX_WATERMARK: ClassVar[Watermark]
    """The watermark that ends event time (sent when an input is exhausted)."""


MAX_WATERMARK = Watermark(MAX_WATERMARK_TIMESTAMP)
Watermark.MAX_WATERMARK = MAX_WATERMARK


@dataclass(frozen=True, slots=True)
class WatermarkStatus:
    """Whether an input is idle (sends no records or watermarks for now, so it must not hold
    back event time downstream) or active again (Flink's WatermarkStatus event)."""

    idle: bool

    def is_idle(self) -> bool:
        return self.idle

    def is_active(self) -> bool:
        return not self.idle


IDLE = WatermarkStatus(True)
ACTIVE = WatermarkStatus(False)


class WatermarkOutput(Protocol):
    """Where a :class:`WatermarkGenerator` puts what it produces."""

    def emit_watermark(self, watermark: Watermark) -> None:
        """A new watermark; one not above the last emitted is ignored. Marks the output
        active again if it was idle."""

    def mark_idle(self) -> None:
        """The input has nothing to send for now: stop holding back event time downstream."""

    def mark_active(self) -> None:
        """The input sends again (emitting a watermark also does this)."""


class WatermarkGenerator(ABC):
    """Makes watermarks from the records' timestamps (Flink's ``WatermarkGenerator``).

    One instance serves one split or subtask; the strategy creates a fresh one for each.
    """

    @abstractmethod
    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        """Called for each record with its timestamp; a punctuated generator emits here."""

    @abstractmethod
    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        """Called every auto-watermark interval; a periodic generator emits here."""

    def on_events(self, events: list[Any], timestamps: list[int], output: WatermarkOutput) -> None:
        """Called once per batch of records (``timestamps[i]`` is ``events[i]``'s).

        Calls :meth:`on_event` for each record; override it when the batch can be handled
        at once (the built-in generators only need the batch's highest timestamp).
        """
        on_event = self.on_event
        for event, timestamp in zip(events, timestamps, strict=True):
            on_event(event, timestamp, output)


def _check_bound(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int of milliseconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0 ms, got {value}")
    return int(value)


class BoundedOutOfOrdernessWatermarks(WatermarkGenerator):
    """Records arrive at most ``out_of_orderness_ms`` after a record with a later timestamp.

    Tracks the highest timestamp seen; each periodic emit gives ``max_ts - bound - 1``, the
    highest timestamp that can no longer arrive on time. Before any record that is
    :data:`MIN_TIMESTAMP`. The tracked maximum never decreases, so neither do the
    watermarks it emits.
    """

    __slots__ = ("_bound", "_max_ts")

    def __init__(self, out_of_orderness_ms: int) -> None:
        self._bound = _check_bound(out_of_orderness_ms, "out_of_orderness_ms")
        # Chosen so that the first watermark, before any record, is exactly MIN_TIMESTAMP.
        self._max_ts = MIN_TIMESTAMP + self._bound + 1

    @property
    def out_of_orderness_ms(self) -> int:
        return self._bound

    def current_watermark(self) -> int:
        """The watermark the next periodic emit gives."""
        return self._max_ts - self._bound - 1

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        if event_timestamp > self._max_ts:
            self._max_ts = event_timestamp

    def on_events(self, events: list[Any], timestamps: list[int], output: WatermarkOutput) -> None:
        if timestamps:
            highest = max(timestamps)
            if highest > self._max_ts:
                self._max_ts = highest

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(self._max_ts - self._bound - 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(out_of_orderness_ms={self._bound})"


class AscendingTimestampsWatermarks(BoundedOutOfOrdernessWatermarks):
    """Timestamps never decrease: the watermark is ``max_ts - 1`` (a bound of 0)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoWatermarksGenerator(WatermarkGenerator):
    """Emits no watermarks: for processing-time jobs, or streams whose event time is ignored."""

    __slots__ = ()

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        pass

    def on_events(self, events: list[Any], timestamps: list[int], output: WatermarkOutput) -> None:
        pass

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WatermarksWithIdleness(WatermarkGenerator):
    """Wraps a generator; declares the input idle after ``idle_timeout_ms`` without records.

    Records count as activity. A periodic emit that finds no record since the previous one
    starts the inactivity clock (``now_ms``); once a later emit finds it has run for longer
    than the timeout, the output is marked idle (once per idle stretch) instead of asking the
    wrapped generator. The next record ends the stretch: the following periodic emit asks the
    wrapped generator again, and its watermark marks the output active.
    """

    __slots__ = (
        "_activity",
        "_checked_activity",
        "_generator",
        "_idle_now",
        "_inactive_since",
        "_now_ms",
        "_timeout",
    )

    def __init__(
        self, generator: WatermarkGenerator, idle_timeout_ms: int, now_ms: Callable[[], int]
    ) -> None:
        if not isinstance(generator, WatermarkGenerator):
            raise TypeError(
                f"generator must be a WatermarkGenerator, got {generator!r} "
                f"({type(generator).__name__})"
            )
        if isinstance(idle_timeout_ms, bool) or not isinstance(idle_timeout_ms, int):
            raise TypeError(
                f"idle_timeout_ms must be an int of milliseconds, got {idle_timeout_ms!r}"
            )
        if idle_timeout_ms <= 0:
            raise ValueError(f"idle_timeout_ms must be > 0 ms, got {idle_timeout_ms}")
        if not callable(now_ms):
            raise TypeError(f"now_ms must be a callable returning milliseconds, got {now_ms!r}")
        self._generator = generator
        self._timeout = int(idle_timeout_ms)
        self._now_ms = now_ms
        self._activity = 0  # records seen; compared with the count at the last check
        self._checked_activity = 0
        self._inactive_since: int | None = None
        self._idle_now = False

    @property
    def generator(self) -> WatermarkGenerator:
        return self._generator

    @property
    def idle_timeout_ms(self) -> int:
        return self._timeout

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        self._generator.on_event(event, event_timestamp, output)
        self._activity += 1
        self._idle_now = False

    def on_events(self, events: list[Any], timestamps: list[int], output: WatermarkOutput) -> None:
        self._generator.on_events(events, timestamps, output)
        if timestamps:
            self._activity += 1
            self._idle_now = False

    def _check_if_idle(self) -> bool:
        if self._activity != self._checked_activity:
            self._checked_activity = self._activity
            self._inactive_since = None
            return False
        if self._inactive_since is None:
            self._inactive_since = self._now_ms()
            return False
        return self._now_ms() - self._inactive_since > self._timeout

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        if self._check_if_idle():
            if not self._idle_now:
                output.mark_idle()
                self._idle_now = True
        else:
            self._generator.on_periodic_emit(output)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._generator!r}, idle_timeout_ms={self._timeout})"


class TimestampAssigner(ABC):
    """Reads a record's event timestamp (ms) from the record (Flink's ``TimestampAssigner``).

    ``record_timestamp`` is the timestamp the record already carries (from the source), or
    ``None`` if it has none.
    """

    @abstractmethod
    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
        """The event timestamp of ``value``, in milliseconds."""


class _CallableTimestampAssigner(TimestampAssigner):
    """A plain ``(value, record_timestamp) -> int`` callable as a :class:`TimestampAssigner`."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any, int | None], int]) -> None:
        self.fn = fn

    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
        return self.fn(value, record_timestamp)

    def __repr__(self) -> str:
        return f"TimestampAssigner({self.fn!r})"


def timestamp_extractor(assigner: TimestampAssigner) -> Callable[[Any, int | None], int]:
    """The function the engine calls per record for ``assigner``: the user's own callable
    when it was given as one (a call per record instead of two), else the bound
    ``extract_timestamp``."""
    if type(assigner) is _CallableTimestampAssigner:
        return assigner.fn
    return assigner.extract_timestamp


def _as_timestamp_assigner(assigner: Any) -> TimestampAssigner:
    if isinstance(assigner, TimestampAssigner):
        return assigner
    if isinstance(assigner, type):
        raise TypeError(
            f"timestamp_assigner must be a TimestampAssigner instance or a callable "
            f"(value, record_timestamp) -> int, got the class {assigner.__name__}; "
            f"pass an instance, {assigner.__name__}()"
        )
    if callable(assigner):
        return _CallableTimestampAssigner(assigner)
    raise TypeError(
        f"timestamp_assigner must be a TimestampAssigner or a callable "
        f"(value, record_timestamp) -> int, got {assigner!r} ({type(assigner).__name__})"
    )


GeneratorFactory = Callable[[], WatermarkGenerator]
"""Makes a fresh :class:`WatermarkGenerator` (one per split or subtask)."""


def _as_generator_factory(factory: Any) -> GeneratorFactory:
    if isinstance(factory, WatermarkGenerator):
        raise TypeError(
            f"factory must make a fresh WatermarkGenerator per split, got the generator "
            f"{factory!r} itself; pass its class or a lambda, "
            f"for_generator(lambda: {type(factory).__name__}(...))"
        )
    if isinstance(factory, WatermarkStrategy):
        raise TypeError(f"factory must make WatermarkGenerators, got the strategy {factory!r}")
    method = getattr(factory, "create_watermark_generator", None)
    if method is not None and not isinstance(factory, type) and callable(method):
        return method
    if callable(factory):
        return factory
    raise TypeError(
        f"factory must be a callable returning a new WatermarkGenerator, or an object with a "
        f"create_watermark_generator() method, got {factory!r} ({type(factory).__name__})"
    )


class WatermarkStrategy:
    """How a source assigns timestamps and makes watermarks (Flink's ``WatermarkStrategy``).

    Immutable: the ``with_*`` methods return a new strategy. Start from one of the static
    constructors::

        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(5))
            .with_timestamp_assigner(lambda event, ts: event["time_ms"])
            .with_idleness(Duration.of_minutes(1))
    """

    __slots__ = ("_factory", "_idle_timeout_ms", "_timestamp_assigner")

    _factory: GeneratorFactory
    _timestamp_assigner: TimestampAssigner | None
    _idle_timeout_ms: int | None

    def __init__(
        self,
        factory: GeneratorFactory,
        timestamp_assigner: TimestampAssigner | None = None,
        idle_timeout_ms: int | None = None,
    ) -> None:
        object.__setattr__(self, "_factory", _as_generator_factory(factory))
        if timestamp_assigner is not None:
            timestamp_assigner = _as_timestamp_assigner(timestamp_assigner)
        object.__setattr__(self, "_timestamp_assigner", timestamp_assigner)
        if idle_timeout_ms is not None:
            idle_timeout_ms = to_millis(idle_timeout_ms, "idle_timeout", minimum=1)
        object.__setattr__(self, "_idle_timeout_ms", idle_timeout_ms)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"WatermarkStrategy is immutable; with_timestamp_assigner / with_idleness "
            f"return a new strategy (tried to set {name!r})"
        )

    # -- constructors -----------------------------------------------------------------------

    @staticmethod
    def for_monotonous_timestamps() -> WatermarkStrategy:
        """Timestamps never decrease: the watermark trails the highest by 1 ms."""
        return WatermarkStrategy(AscendingTimestampsWatermarks)

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Any) -> WatermarkStrategy:
        """Records arrive at most ``max_out_of_orderness`` (Duration, timedelta or int ms,
        >= 0) behind the highest timestamp seen."""
        bound = to_millis(max_out_of_orderness, "max_out_of_orderness", minimum=0)
        return WatermarkStrategy(functools.partial(BoundedOutOfOrdernessWatermarks, bound))

    @staticmethod
    def no_watermarks() -> WatermarkStrategy:
        """No watermarks at all (processing time only)."""
        return WatermarkStrategy(NoWatermarksGenerator)

    @staticmethod
    def for_generator(factory: Any) -> WatermarkStrategy:
        """Watermarks from a custom generator: ``factory`` is a callable returning a fresh
        :class:`WatermarkGenerator` (a generator class does), or an object with a
        ``create_watermark_generator()`` method."""
        return WatermarkStrategy(_as_generator_factory(factory))

    # -- with_* -----------------------------------------------------------------------------

    def with_timestamp_assigner(self, timestamp_assigner: Any) -> WatermarkStrategy:
        """A copy that reads timestamps with ``timestamp_assigner``: a
        :class:`TimestampAssigner` or a callable ``(value, record_timestamp) -> int``."""
        return WatermarkStrategy(
            self._factory, _as_timestamp_assigner(timestamp_assigner), self._idle_timeout_ms
        )

    def with_idleness(self, idle_timeout: Any) -> WatermarkStrategy:
        """A copy that marks an input idle after ``idle_timeout`` (Duration, timedelta or
        int ms, > 0) without records."""
        timeout = to_millis(idle_timeout, "idle_timeout", minimum=1)
        return WatermarkStrategy(self._factory, self._timestamp_assigner, timeout)

    # -- what the engine asks ---------------------------------------------------------------

    def create_watermark_generator(self, now_ms: Callable[[], int]) -> WatermarkGenerator:
        """A fresh generator (call once per split or subtask); ``now_ms`` is the clock the
        idleness timeout is measured with, if one is configured."""
        generator = self._factory()
        if not isinstance(generator, WatermarkGenerator):
            raise TypeError(
                f"the watermark generator factory {self._factory!r} must return a "
                f"WatermarkGenerator, returned {generator!r} ({type(generator).__name__})"
            )
        if self._idle_timeout_ms is not None:
            return WatermarksWithIdleness(generator, self._idle_timeout_ms, now_ms)
        return generator

    def create_timestamp_assigner(self) -> TimestampAssigner | None:
        """The configured assigner; ``None`` when none was set (records keep the timestamp
        they carry)."""
        return self._timestamp_assigner

    def get_idle_timeout_ms(self) -> int | None:
        return self._idle_timeout_ms

    def is_no_op(self) -> bool:
        """Whether the strategy does nothing: no watermarks, no assigner, no idleness
        (``no_watermarks()`` as it is; ``from_source`` then adds no operator)."""
        return (
            self._factory is NoWatermarksGenerator
            and self._timestamp_assigner is None
            and self._idle_timeout_ms is None
        )

    def __repr__(self) -> str:
        parts = [f"factory={self._factory!r}"]
        if self._timestamp_assigner is not None:
            parts.append(f"timestamp_assigner={self._timestamp_assigner!r}")
        if self._idle_timeout_ms is not None:
            parts.append(f"idle_timeout_ms={self._idle_timeout_ms}")
        return f"WatermarkStrategy({', '.join(parts)})"


class WatermarkCollector:
    """The engine's :class:`WatermarkOutput`: keeps the highest watermark and the idle flag,
    and records what changed for :meth:`take_events`.

    A watermark not above :attr:`current` is dropped (watermarks only advance). Emitting a
    watermark while idle, or :meth:`mark_active`, first records :data:`ACTIVE`; marking idle
    records :data:`IDLE` once.
    """

    __slots__ = ("_events", "current", "idle")

    def __init__(self) -> None:
        self.current: int = MIN_TIMESTAMP
        self.idle: bool = False
        self._events: list[Watermark | WatermarkStatus] = []

    def emit_watermark(self, watermark: Watermark) -> None:
        if type(watermark) is not Watermark:
            raise TypeError(
                f"emit_watermark takes a Watermark, got {watermark!r} "
                f"({type(watermark).__name__}); e.g. output.emit_watermark(Watermark(ts))"
            )
        if self.idle:
            self.idle = False
            self._events.append(ACTIVE)
        if watermark.timestamp > self.current:
            self.current = watermark.timestamp
            self._events.append(watermark)

    def mark_idle(self) -> None:
        if not self.idle:
            self.idle = True
            self._events.append(IDLE)

    def mark_active(self) -> None:
        if self.idle:
            self.idle = False
            self._events.append(ACTIVE)

    def take_events(self) -> list[Watermark | WatermarkStatus]:
        """What was emitted since the last call, in order (empty if nothing changed)."""
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    def __repr__(self) -> str:
        return f"WatermarkCollector(current={self.current}, idle={self.idle})"
