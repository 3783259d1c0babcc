"""``BroadcastStream`` and ``BroadcastConnectedStream``: the broadcast state pattern.

``rules.broadcast(descriptor, ...)`` makes a BroadcastStream: its records go to every subtask
of the operator it feeds, and that operator keeps them in broadcast state, one map per
``MapStateDescriptor``. ``events.connect(rules_broadcast)`` pairs it with a stream of events,
which keeps its own partitioning; ``.process(f)`` adds the operator: a
:class:`~streamlet.operators.broadcast.BroadcastProcessFunction` on a non-keyed event
stream, a :class:`~streamlet.operators.broadcast.KeyedBroadcastProcessFunction` on a keyed
one (``events.key_by(k).connect(...)``: then with keyed state and timers).

The operator's watermark is the minimum of both inputs', as for every two-input operator:
give the broadcast stream watermarks, or let it end (a bounded, finished input does not
hold the other back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streamlet.operators.broadcast import (
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    check_broadcast_function,
)
from streamlet.state.descriptors import MapStateDescriptor

__all__ = ["BroadcastConnectedStream", "BroadcastStream"]


class DataStream(Protocol):
    """What the broadcast pattern needs of the event stream (``datastream`` creates
    broadcast streams, so this module does not import it)."""

    #: The stream's key selector if it is a KeyedStream, else None.
    _key_selector: Callable[[Any], Any] | None

    def _broadcast_node(
        self, name: str, func: Any, broadcast_stream: BroadcastStream, keyed: bool
    ) -> Any: ...


class BroadcastStream:
    """A stream whose records reach every subtask of the operator it feeds, to be kept in
    the broadcast states of ``descriptors`` (made by ``DataStream.broadcast(descriptor,
    ...)``; connect a stream of events to it with ``events.connect(broadcast_stream)``).

    :param env: the execution environment
    :param inputs: the broadcast stream's edges (with the broadcast partitioner)
    :param descriptors: the broadcast states' MapStateDescriptors
    """

    def __init__(
        self, env: Any, inputs: list[Any], descriptors: tuple[MapStateDescriptor, ...]
    ) -> None:
        self._env = env
        self._inputs = inputs
        self.broadcast_state_descriptors = descriptors

    def __repr__(self) -> str:
        names = [d.name for d in self.broadcast_state_descriptors]
        return f"<BroadcastStream of broadcast states {names}>"


class BroadcastConnectedStream:
    """A stream of events connected to a BroadcastStream; finish with :meth:`process`."""

    def __init__(self, events: DataStream, broadcast_stream: BroadcastStream) -> None:
        self.non_broadcast_stream = events
        self.broadcast_stream = broadcast_stream

    @property
    def keyed(self) -> bool:
        """Whether the events are keyed (then the function has keyed state and timers)."""
        return self.non_broadcast_stream._key_selector is not None

    def process(self, func: Any, output_type: Any = None) -> Any:
        """Apply a BroadcastProcessFunction (non-keyed events) or a
        KeyedBroadcastProcessFunction (keyed events): ``process_element(value, ctx)`` per
        event with the broadcast state read-only, ``process_broadcast_element(value, ctx)``
        per broadcast element, on every subtask, with it writable.

        :raises TypeError: if ``func`` lacks one of the two methods or is a class; if it is
            a KeyedBroadcastProcessFunction or has ``on_timer`` but the events are not
            keyed; if it is a BroadcastProcessFunction but the events are keyed
        """
        check_broadcast_function(func)
        if self.keyed:
            if isinstance(func, BroadcastProcessFunction):
                raise TypeError(
                    f"connect(broadcast_stream).process() got {func!r}, a "
                    f"BroadcastProcessFunction, but the events are keyed; use a "
                    f"KeyedBroadcastProcessFunction (it has the key, keyed state and "
                    f"timers), or connect the stream before key_by"
                )
            name = "Co-Process-Broadcast-Keyed"
        else:
            if isinstance(func, KeyedBroadcastProcessFunction) or callable(
                getattr(func, "on_timer", None)
            ):
                raise TypeError(
                    f"connect(broadcast_stream).process() got {func!r}, which uses keyed "
                    f"state or timers (a KeyedBroadcastProcessFunction or an on_timer "
                    f"method); they need keyed events: events.key_by(...).connect("
                    f"broadcast_stream), or use a BroadcastProcessFunction"
                )
            name = "Co-Process-Broadcast"
        return self.non_broadcast_stream._broadcast_node(
            name, func, self.broadcast_stream, self.keyed
        )
