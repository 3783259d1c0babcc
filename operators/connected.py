"""Operators of two inputs: what ``a.connect(b)`` runs (Flink's ``TwoInputStreamOperator``).

A two-input operator says :attr:`~.base.Operator.two_inputs`; the engine gives the first
input's batches to ``process_batch`` and the second's to ``process_batch2``. Everything else
is as for one input: its watermark is the minimum over the channels of both inputs (an idle
input does not hold the other back), barriers align across both inputs, and on connected
keyed streams both inputs share one keyed state backend, each input keyed by its own
selector (:class:`KeySelectors`).

- ``map`` / ``flat_map`` of a :class:`~.functions.CoMapFunction` /
  :class:`~.functions.CoFlatMapFunction`: a :class:`CoOperator` runs each input through the
  one-input operator of the same name over one method of the user's object (the fast batch
  paths of ``map`` and ``flat_map``, keyed or not), and the object's lifecycle hooks once.
- ``process`` of a :class:`~.functions.CoProcessFunction`: :class:`CoProcessOperator`;
  of a :class:`~.functions.KeyedCoProcessFunction`: :class:`KeyedCoProcessOperator`, whose
  timers (one set for both inputs) fire ``on_timer`` with their key current.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from . import derived
from .base import Operator, OperatorContext
from .core import UserFunctionOperator
from .derived import KeyedProcessOperator, ProcessOperator, _ProcessCalls
from .functions import FunctionAdapter

__all__ = [
    "CO_METHODS",
    "CoOperator",
    "CoProcessOperator",
    "KeySelectors",
    "KeyedCoProcessOperator",
    "check_co_function",
    "co_flat_map_operator",
    "co_map_operator",
    "co_process_operator",
    "keyed_co_flat_map_operator",
    "keyed_co_map_operator",
    "keyed_co_process_operator",
]


class KeySelectors(NamedTuple):
    """The key selectors of connected keyed streams: the key of a record of each input.

    A two-input node's ``key_selector`` in the logical graph; records of both inputs with
    equal keys share keyed state (and go to the same subtask).
    """

    first: Callable[[Any], Any]
    second: Callable[[Any], Any]


#: Co-operation -> the two methods its function object implements (the first is also in
#: FUNCTION_METHODS, the table of every operation's method).
CO_METHODS: dict[str, tuple[str, str]] = {
    "co_map": ("map1", "map2"),
    "co_flat_map": ("flat_map1", "flat_map2"),
    "co_process": ("process_element1", "process_element2"),
}


def check_co_function(fn: Any, api: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Return the two per-input methods of ``fn`` for co-operation ``api``.

    :raises TypeError: if ``fn`` is a class, or lacks one of the methods
    """
    names = CO_METHODS[api]
    public = api.removeprefix("co_")
    if isinstance(fn, type):
        raise TypeError(
            f"connect(...).{public}() needs an instance, got the class {fn.__name__}; pass "
            f"{fn.__name__}() instead"
        )
    methods = [getattr(fn, name, None) for name in names]
    missing = [name for name, m in zip(names, methods, strict=True) if not callable(m)]
    if missing:
        raise TypeError(
            f"connect(...).{public}() needs an object with {names[0]}() and {names[1]}() "
            f"(one per input), got {fn!r} of type {type(fn).__name__}, which lacks "
            f"{' and '.join(m + '()' for m in missing)}"
        )
    return methods[0], methods[1]  # type: ignore[return-value]


class CoOperator(UserFunctionOperator):
    """Runs each input through its own one-input operator, over one user object.

    ``first`` and ``second`` are built over the object's bound methods (``map1``,
    ``map2``), which have no lifecycle hooks of their own: the object's ``open``, ``close``
    and checkpoint hooks run once, here. On connected keyed streams both are keyed
    operators over the one keyed backend of the subtask, so both inputs share its state.

    :param adapter: the user object, for its lifecycle hooks
    :param first: the operator of the first input
    :param second: the operator of the second input
    """

    two_inputs = True
    accepts_timestamps = True

    def __init__(
        self, adapter: FunctionAdapter, first: Operator[Any, Any], second: Operator[Any, Any]
    ) -> None:
        super().__init__(adapter)
        self._first = first
        self._second = second
        self.keyed = first.keyed

    async def open(self, ctx: OperatorContext) -> None:
        await super().open(ctx)
        await self._first.open(ctx)
        await self._second.open(ctx)

    async def process_batch(self, batch: Any) -> Any:
        return await self._first.process_batch(batch)

    async def process_batch2(self, batch: Any) -> Any:
        return await self._second.process_batch(batch)

    async def process_watermark(self, watermark: int) -> Any:
        self.current_watermark = watermark
        await self._first.process_watermark(watermark)
        await self._second.process_watermark(watermark)
        return []

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._first.close()
            await self._second.close()


def co_map_operator(fn: Any) -> CoOperator:
    map1, map2 = check_co_function(fn, "co_map")
    return CoOperator(
        FunctionAdapter(fn, "map1", "map"), derived.map_operator(map1), derived.map_operator(map2)
    )


def keyed_co_map_operator(fn: Any, key_selectors: KeySelectors) -> CoOperator:
    map1, map2 = check_co_function(fn, "co_map")
    return CoOperator(
        FunctionAdapter(fn, "map1", "map"),
        derived.keyed_map_operator(map1, key_selectors.first),
        derived.keyed_map_operator(map2, key_selectors.second),
    )


def co_flat_map_operator(fn: Any) -> CoOperator:
    flat_map1, flat_map2 = check_co_function(fn, "co_flat_map")
    return CoOperator(
        FunctionAdapter(fn, "flat_map1", "flat_map"),
        derived.flat_map_operator(flat_map1),
        derived.flat_map_operator(flat_map2),
    )


def keyed_co_flat_map_operator(fn: Any, key_selectors: KeySelectors) -> CoOperator:
    flat_map1, flat_map2 = check_co_function(fn, "co_flat_map")
    return CoOperator(
        FunctionAdapter(fn, "flat_map1", "flat_map"),
        derived.keyed_flat_map_operator(flat_map1, key_selectors.first),
        derived.keyed_flat_map_operator(flat_map2, key_selectors.second),
    )


class CoProcessOperator(ProcessOperator):
    """A CoProcessFunction on non-keyed connected streams: ``process_element1`` for the
    first input, ``process_element2`` for the second, with timestamps and side outputs as
    a ProcessFunction has them (and, as there, no timers)."""

    two_inputs = True

    def __init__(self, adapter: FunctionAdapter, process_element2: Callable[..., Any]) -> None:
        super().__init__(adapter)
        self._calls2 = _ProcessCalls(process_element2, "process")

    async def process_batch2(self, batch: Any) -> Any:
        return await self._process(batch, self._calls2)


class KeyedCoProcessOperator(KeyedProcessOperator):
    """A KeyedCoProcessFunction on connected keyed streams: each input's records with their
    key current (by that input's selector), one keyed state and one set of timers for both
    inputs, ``on_timer`` as in a KeyedProcessFunction."""

    two_inputs = True

    def __init__(
        self,
        adapter: FunctionAdapter,
        process_element2: Callable[..., Any],
        key_selectors: KeySelectors,
    ) -> None:
        super().__init__(adapter, key_selectors.first)
        self._calls2 = _ProcessCalls(process_element2, "process")
        self._key_selector2 = key_selectors.second

    async def process_batch2(self, batch: Any) -> Any:
        return await self._process(batch, self._calls2, self._key_selector2)


def co_process_operator(fn: Any) -> CoProcessOperator:
    _, process_element2 = check_co_function(fn, "co_process")
    return CoProcessOperator(FunctionAdapter(fn, "process_element1", "process"), process_element2)


def keyed_co_process_operator(fn: Any, key_selectors: KeySelectors) -> KeyedCoProcessOperator:
    _, process_element2 = check_co_function(fn, "co_process")
    return KeyedCoProcessOperator(
        FunctionAdapter(fn, "process_element1", "process"), process_element2, key_selectors
    )
