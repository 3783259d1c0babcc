"""State descriptors: the name, kind and serializer of one piece of state.

A descriptor is what a user function hands to ``RuntimeContext.get_state`` (and friends) in
``open()``. The name identifies the state inside its operator, across checkpoints and
restarts, so it must stay stable. The constructors follow PyFlink's argument order: the
type information PyFlink passes second (``ValueStateDescriptor("count", Types.INT())``) is
accepted and kept for documentation only; streamlet serializes by value (see
:mod:`streamlet.state.serde`), so everything else is keyword-only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from .ttl_config import StateTtlConfig

__all__ = [
    "ACC",
    "IN",
    "OUT",
    "AggregateFunction",
    "AggregatingStateDescriptor",
    "ListStateDescriptor",
    "MapStateDescriptor",
    "ReducingStateDescriptor",
    "StateDescriptor",
    "ValueStateDescriptor",
]

IN = TypeVar("IN")
"""Type of the values added to an aggregating state."""
ACC = TypeVar("ACC")
"""Type of an aggregating state's accumulator (what is stored and checkpointed)."""
OUT = TypeVar("OUT")
"""Type of the result an aggregating state returns."""


class AggregateFunction(ABC, Generic[IN, ACC, OUT]):
    """Flink's ``AggregateFunction``: fold values into an accumulator, read a result from it.

    The accumulator is the state that is stored and checkpointed, so it must be serializable
    by the descriptor's serializer. ``add`` may mutate the accumulator in place and return it.
    """

    @abstractmethod
    def create_accumulator(self) -> ACC:
        """Return a new, empty accumulator."""

    @abstractmethod
    def add(self, value: IN, accumulator: ACC) -> ACC:
        """Add ``value`` to ``accumulator`` and return the updated accumulator."""

    @abstractmethod
    def get_result(self, accumulator: ACC) -> OUT:
        """Return the result for ``accumulator``."""

    def merge(self, acc_a: ACC, acc_b: ACC) -> ACC:
        """Merge two accumulators (session windows need it; keyed state does not)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement merge()")


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"state name must be a str, got {name!r}")
    if not name:
        raise ValueError(f"state name must be a non-empty str, got {name!r}")


def _check_serializer(serializer: object) -> None:
    if serializer is None:
        return
    if not callable(getattr(serializer, "dumps", None)) or not callable(
        getattr(serializer, "loads", None)
    ):
        raise TypeError(
            f"serializer must have dumps(value) -> bytes and loads(bytes) -> value methods, "
            f"got {serializer!r}"
        )


@dataclass(frozen=True, slots=True)
class StateDescriptor:
    """Common part of every descriptor: the state's name and optional serializer.

    :param name: unique name of the state within its operator (non-empty)
    :param serializer: a :class:`streamlet.state.serde.Serializer`; ``None`` means the default
        orjson-based serializer
    :raises TypeError: if ``name`` is not a str or ``serializer`` lacks ``dumps``/``loads``
    :raises ValueError: if ``name`` is empty
    """

    #: The kind of state this descriptor declares ("value", "list", ...); also written into
    #: snapshots, so a state restored under another kind is refused.
    kind: ClassVar[str] = ""

    name: str
    #: The :class:`~streamlet.state.ttl_config.StateTtlConfig` set by :meth:`enable_time_to_live`
    #: (``None``: the state never expires). Not an argument, not compared: like PyFlink, TTL
    #: is switched on by a call on the descriptor, before the state is registered.
    ttl_config: StateTtlConfig | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_serializer(getattr(self, "serializer", None))

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        """Give the state a time-to-live (Flink's ``StateDescriptor.enableTimeToLive``).

        Call it before the state is registered (``get_state`` and friends, in ``open()``);
        the registered state keeps the TTL it was registered with.

        :param ttl_config: a :class:`~streamlet.state.ttl_config.StateTtlConfig` from
            ``StateTtlConfig.new_builder(ttl)...build()``
        :raises TypeError: if ``ttl_config`` is not a ``StateTtlConfig``
        :raises ValueError: if its update type is ``Disabled`` (TTL would be off)
        """
        if not isinstance(ttl_config, StateTtlConfig):
            raise TypeError(
                f"enable_time_to_live() of state {self.name!r} needs a StateTtlConfig (from "
                f"StateTtlConfig.new_builder(ttl).build()), got {ttl_config!r}"
            )
        if not ttl_config.is_enabled():
            raise ValueError(
                f"enable_time_to_live() of state {self.name!r} got a StateTtlConfig with update "
                f"type Disabled, which turns TTL off; use UpdateType.OnCreateAndWrite or "
                f"OnReadAndWrite, or do not call enable_time_to_live()"
            )
        # The descriptor is frozen for what identifies the state; TTL is set by this call.
        object.__setattr__(self, "ttl_config", ttl_config)

    def get_ttl_config(self) -> StateTtlConfig | None:
        """Return the :class:`~streamlet.state.ttl_config.StateTtlConfig` set by
        :meth:`enable_time_to_live`, or ``None`` when the state has no TTL."""
        return self.ttl_config


@dataclass(frozen=True, slots=True)
class ValueStateDescriptor(StateDescriptor):
    """Declares a :class:`streamlet.state.keyed.ValueState`: one value per key.

    :param type_info: PyFlink's value type information; accepted and ignored
    :param default_value: what ``value()`` returns for a key without a value (a mutable
        default is copied for every key, so it is never shared)
    :param serializer: see :class:`StateDescriptor`
    """

    kind: ClassVar[str] = "value"

    type_info: Any = None
    _: KW_ONLY
    default_value: Any = None
    serializer: Any = None


@dataclass(frozen=True, slots=True)
class ListStateDescriptor(StateDescriptor):
    """Declares a :class:`streamlet.state.keyed.ListState` (or operator list state): a list per key.

    :param type_info: PyFlink's element type information; accepted and ignored
    :param serializer: see :class:`StateDescriptor`; a custom serializer is applied to each
        element, so operator list state can be split between subtasks without decoding it
    """

    kind: ClassVar[str] = "list"

    type_info: Any = None
    _: KW_ONLY
    serializer: Any = None


@dataclass(frozen=True, slots=True)
class MapStateDescriptor(StateDescriptor):
    """Declares a :class:`streamlet.state.keyed.MapState` (or broadcast state): a dict per key.

    :param key_type_info: PyFlink's map key type information; accepted and ignored
    :param value_type_info: PyFlink's map value type information; accepted and ignored
    :param serializer: see :class:`StateDescriptor`; a custom serializer is applied to a
        whole map at once
    """

    kind: ClassVar[str] = "map"

    key_type_info: Any = None
    value_type_info: Any = None
    _: KW_ONLY
    serializer: Any = None


@dataclass(frozen=True, slots=True)
class ReducingStateDescriptor(StateDescriptor):
    """Declares a :class:`streamlet.state.keyed.ReducingState`: values folded with a reduce
    function.

    :param reduce_function: ``f(accumulated, new) -> accumulated``, or an object with such a
        ``reduce`` method (PyFlink's ``ReduceFunction``)
    :param type_info: PyFlink's value type information; accepted and ignored
    :param serializer: see :class:`StateDescriptor`
    :raises TypeError: if ``reduce_function`` is neither callable nor has a ``reduce`` method
    """

    kind: ClassVar[str] = "reducing"

    reduce_function: Any
    type_info: Any = None
    _: KW_ONLY
    serializer: Any = None
    #: The two-argument callable the state calls (``reduce_function`` or its ``reduce``).
    reduce: Callable[[Any, Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        StateDescriptor.__post_init__(self)
        fn = getattr(self.reduce_function, "reduce", None)
        if not callable(fn):
            fn = self.reduce_function
        if not callable(fn):
            raise TypeError(
                f"reduce_function must be a callable or have a reduce(a, b) method, "
                f"got {self.reduce_function!r}"
            )
        object.__setattr__(self, "reduce", fn)


@dataclass(frozen=True, slots=True)
class AggregatingStateDescriptor(StateDescriptor):
    """Declares a :class:`streamlet.state.keyed.AggregatingState`: values folded into an
    accumulator.

    :param aggregate_function: an object with ``create_accumulator()``,
        ``add(value, accumulator) -> accumulator`` and ``get_result(accumulator)``
        (an :class:`AggregateFunction` or anything shaped like one)
    :param type_info: PyFlink's accumulator type information; accepted and ignored
    :param serializer: see :class:`StateDescriptor`; it serializes the accumulator
    :raises TypeError: if ``aggregate_function`` lacks one of the three methods
    """

    kind: ClassVar[str] = "aggregating"

    aggregate_function: Any
    type_info: Any = None
    _: KW_ONLY
    serializer: Any = None

    def __post_init__(self) -> None:
        StateDescriptor.__post_init__(self)
        for method in ("create_accumulator", "add", "get_result"):
            if not callable(getattr(self.aggregate_function, method, None)):
                raise TypeError(
                    f"aggregate_function must have create_accumulator(), add(value, "
                    f"accumulator) and get_result(accumulator) methods; "
                    f"{self.aggregate_function!r} has no {method}()"
                )
