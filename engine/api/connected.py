"""``ConnectedStreams``: two streams, possibly of different types, into one operator.

``a.connect(b)`` pairs two streams; ``map`` / ``flat_map`` / ``process`` add an operator of
two inputs (a CoMapFunction, CoFlatMapFunction, CoProcessFunction or
KeyedCoProcessFunction) whose output is one stream. As in Flink, the operator is keyed
when both streams are keyed (``a.key_by(k1).connect(b.key_by(k2))`` or
``a.connect(b).key_by(k1, k2)``): then records of both inputs with equal keys meet in the
same subtask and share that key's state and timers. With one keyed input only, that input
is merely hash-partitioned and the operator has no keyed state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streamlet.operators.connected import KeySelectors, check_co_function
from streamlet.operators.functions import KeyedCoProcessFunction

__all__ = ["ConnectedStreams"]


class DataStream(Protocol):
    """What connected streams need of their two streams (``datastream`` creates connected
    streams, so this module does not import it)."""

    #: The stream's key selector if it is a KeyedStream, else None.
    _key_selector: Callable[[Any], Any] | None

    def key_by(self, key_selector: Any, key_type: Any = None) -> Any: ...

    def _two_input_node(
        self, api: str, name: str, func: Any, second: Any, key_selector: KeySelectors | None
    ) -> Any: ...


class ConnectedStreams:
    """Two connected streams (``first.connect(second)``); finish with a co-function."""

    def __init__(self, first: DataStream, second: DataStream) -> None:
        self.stream1 = first
        self.stream2 = second

    @property
    def keyed(self) -> bool:
        """Whether both inputs are keyed (then the operator has keyed state and timers)."""
        return self.stream1._key_selector is not None and self.stream2._key_selector is not None

    def key_by(
        self, key_selector1: Any, key_selector2: Any, key_type: Any = None
    ) -> ConnectedStreams:
        """Key both inputs: the first by ``key_selector1``, the second by ``key_selector2``
        (both must return keys of one kind, see :meth:`DataStream.key_by`)."""
        return ConnectedStreams(
            self.stream1.key_by(key_selector1, key_type),
            self.stream2.key_by(key_selector2, key_type),
        )

    def map(self, func: Any, output_type: Any = None) -> Any:
        """Apply a CoMapFunction: ``map1`` to the first input's records, ``map2`` to the
        second's; one output per record."""
        return self._co("co_map", "Co-Map", func)

    def flat_map(self, func: Any, output_type: Any = None) -> Any:
        """Apply a CoFlatMapFunction: ``flat_map1`` / ``flat_map2`` return or yield any
        number of records."""
        return self._co("co_flat_map", "Co-Flat Map", func)

    def process(self, func: Any, output_type: Any = None) -> Any:
        """Apply a CoProcessFunction, or on connected keyed streams a
        KeyedCoProcessFunction (``process_element1`` / ``process_element2``, timestamps,
        side outputs; keyed state and timers when keyed).

        :raises TypeError: for a KeyedCoProcessFunction, or a function with ``on_timer``,
            unless both inputs are keyed
        """
        if not self.keyed and (
            isinstance(func, KeyedCoProcessFunction) or callable(getattr(func, "on_timer", None))
        ):
            raise TypeError(
                f"connect(...).process() got {func!r}, which uses keyed state or timers (a "
                f"KeyedCoProcessFunction or an on_timer method); they need both inputs keyed: "
                f"key both streams (a.key_by(k1).connect(b.key_by(k2)), or "
                f"a.connect(b).key_by(k1, k2)) or use a CoProcessFunction"
            )
        name = "Keyed Co-Process" if self.keyed else "Co-Process"
        return self._co("co_process", name, func)

    def _co(self, api: str, name: str, func: Any) -> Any:
        check_co_function(func, api)
        first, second = self.stream1, self.stream2
        key_selector = None
        if first._key_selector is not None and second._key_selector is not None:
            key_selector = KeySelectors(first._key_selector, second._key_selector)
        return first._two_input_node(api, name, func, second, key_selector)
