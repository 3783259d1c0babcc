"""Window functions (PyFlink's names): what a fired window emits.

A window function sees all of a window's elements at once when it fires: either the
elements themselves, or (after ``reduce`` / ``aggregate`` pre-aggregation) the one
pre-aggregated value. :class:`ProcessWindowFunction` also gets a :class:`Context` with the
window, the clocks and two state stores: per-window state (``window_state()``, cleared with
the window through :meth:`ProcessWindowFunction.clear`) and per-key state shared by all of
the key's windows (``global_state()``). :class:`WindowFunction` is the older, simpler form.
The ``All`` variants serve non-keyed ``window_all`` streams and have no key.

A function returns (or yields) its results; each result carries the window's
``max_timestamp()`` as its timestamp. ``open(runtime_context)`` / ``close()`` are the
lifecycle hooks every function class has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from ..functions import _RichFunction

__all__ = [
    "AllWindowFunction",
    "ProcessAllWindowFunction",
    "ProcessWindowFunction",
    "WindowFunction",
]

IN = TypeVar("IN")
"""Type of the window function's input (the elements, or the pre-aggregated value)."""
OUT = TypeVar("OUT")
"""Type of the window function's results."""
KEY = TypeVar("KEY")
"""Type of the keys of the keyed stream."""
W = TypeVar("W")
"""Type of the windows (TimeWindow, CountWindow, GlobalWindow)."""
CW = TypeVar("CW")
"""Type of a context's window (a nested class needs its own type variable)."""


class _WindowContext(ABC, Generic[CW]):
    """What a process window function may ask about the window that fired (implemented by
    the window operator)."""

    @abstractmethod
    def window(self) -> CW:
        """The window being evaluated."""

    @abstractmethod
    def current_processing_time(self) -> int:
        """The operator's processing time in ms."""

    @abstractmethod
    def current_watermark(self) -> int:
        """The operator's current event-time watermark in ms."""

    @abstractmethod
    def window_state(self) -> Any:
        """State scoped to the current key and this window (``get_state(descriptor)``,
        ``get_list_state``, ...); it lives until the function's ``clear`` runs."""

    @abstractmethod
    def global_state(self) -> Any:
        """State scoped to the current key only, shared by all its windows."""


class ProcessWindowFunction(_RichFunction, Generic[IN, OUT, KEY, W]):
    """Evaluates a keyed window with its elements and a :class:`Context` (PyFlink's)."""

    class Context(_WindowContext[CW]):
        """The context of :meth:`ProcessWindowFunction.process` and ``clear``."""

    @abstractmethod
    def process(
        self, key: KEY, context: ProcessWindowFunction.Context[W], elements: Iterable[IN]
    ) -> Iterable[OUT]:
        """The results of the window of ``key``; ``elements`` are its contents (or its one
        pre-aggregated value)."""

    def clear(self, context: ProcessWindowFunction.Context[W]) -> None:
        """Called when the window is discarded: clear what was kept in ``window_state()``."""


class ProcessAllWindowFunction(_RichFunction, Generic[IN, OUT, W]):
    """Evaluates a window of a non-keyed (``window_all``) stream with a :class:`Context`."""

    class Context(_WindowContext[CW]):
        """The context of :meth:`ProcessAllWindowFunction.process` and ``clear``."""

    @abstractmethod
    def process(
        self, context: ProcessAllWindowFunction.Context[W], elements: Iterable[IN]
    ) -> Iterable[OUT]:
        """The results of the window; ``elements`` are its contents (or its one
        pre-aggregated value)."""

    def clear(self, context: ProcessAllWindowFunction.Context[W]) -> None:
        """Called when the window is discarded: clear what was kept in ``window_state()``."""


class WindowFunction(_RichFunction, Generic[IN, OUT, KEY, W]):
    """Evaluates a keyed window from its key, the window and its contents (PyFlink's)."""

    @abstractmethod
    def apply(self, key: KEY, window: W, inputs: Iterable[IN]) -> Iterable[OUT]:
        """The results of ``window`` of ``key``; ``inputs`` are its contents (or its one
        pre-aggregated value)."""


class AllWindowFunction(_RichFunction, Generic[IN, OUT, W]):
    """Evaluates a window of a non-keyed (``window_all``) stream from the window and its
    contents."""

    @abstractmethod
    def apply(self, window: W, inputs: Iterable[IN]) -> Iterable[OUT]:
        """The results of ``window``; ``inputs`` are its contents (or its one pre-aggregated
        value)."""
