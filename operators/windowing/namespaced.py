"""Keyed state scoped to a window as well as a key (Flink's namespaced state).

The heap backend keeps one value per (state, key). A window operator needs one per (state,
key, window): trigger state (a count per window), window contents, a process window
function's ``window_state()``. Here each such state is one backend *value* state whose value
for a key is a dict ``{window: value}``; the views below read and write the entry of the
current key (the backend's) and the current window (their ``window`` callable's). So they are
in every snapshot, move with their key group, and follow the backend's copy-on-write rules:
a view reads the key's dict through ``ValueState.value()`` (which records the old dict for a
pending snapshot first), changes it in place and writes it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamlet.state.descriptors import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    ValueStateDescriptor,
)
from streamlet.state.errors import StateError
from streamlet.state.heap_backend import HeapKeyedStateBackend

__all__ = ["WindowStates"]

_Window = Any


class _View:
    """The part every namespaced view shares: the per-key dict and the current window."""

    __slots__ = ("_per_key", "_window", "descriptor")

    def __init__(self, per_key: Any, window: Callable[[], _Window], descriptor: Any) -> None:
        self._per_key = per_key
        self._window = window
        self.descriptor = descriptor

    def _get(self, default: Any = None) -> Any:
        windows = self._per_key.value()
        if not windows:
            return default
        return windows.get(self._window(), default)

    def _set(self, value: Any) -> None:
        windows = self._per_key.value()
        if value is None:
            if windows and windows.pop(self._window(), None) is not None and not windows:
                self._per_key.clear()
            return
        if windows is None:
            self._per_key.update({self._window(): value})
        else:
            windows[self._window()] = value
            self._per_key.update(windows)

    def clear(self) -> None:
        """Remove the current (key, window)'s value."""
        self._set(None)

    def merge_namespaces(self, target: _Window, sources: Iterable[_Window]) -> None:
        """Fold the values of windows ``sources`` into window ``target`` (merging windows)."""
        windows = self._per_key.value()
        if not windows:
            return
        merged = windows.get(target)
        for source in sources:
            if source == target:
                continue
            value = windows.pop(source, None)
            if value is not None:
                merged = value if merged is None else self._merge(merged, value)
        if merged is not None:
            windows[target] = merged
        if windows:
            self._per_key.update(windows)
        else:
            self._per_key.clear()

    def _merge(self, a: Any, b: Any) -> Any:
        raise StateError(
            f"state {self.descriptor.name!r} is value state, which cannot be merged when "
            f"windows merge; use reducing, aggregating or list state"
        )


class _Value(_View):
    __slots__ = ()

    def value(self) -> Any:
        return self._get(self.descriptor.default_value)

    def update(self, value: Any) -> None:
        self._set(value)


class _Reducing(_View):
    __slots__ = ()

    def get(self) -> Any:
        return self._get()

    def add(self, value: Any) -> None:
        old = self._get()
        self._set(value if old is None else self._merge(old, value))

    def _merge(self, a: Any, b: Any) -> Any:
        return self.descriptor.reduce(a, b)


class _Aggregating(_View):
    __slots__ = ()

    def get(self) -> Any:
        acc = self._get()
        return None if acc is None else self.descriptor.aggregate_function.get_result(acc)

    def add(self, value: Any) -> None:
        function = self.descriptor.aggregate_function
        acc = self._get()
        if acc is None:
            acc = function.create_accumulator()
        self._set(function.add(value, acc))

    def _merge(self, a: Any, b: Any) -> Any:
        return self.descriptor.aggregate_function.merge(a, b)


class _List(_View):
    __slots__ = ()

    def get(self) -> list[Any]:
        return list(self._get(()))

    def add(self, value: Any) -> None:
        if value is None:
            raise ValueError("None cannot be added to a list state")
        self._set([*self._get(()), value])

    def add_all(self, values: Iterable[Any]) -> None:
        self._set([*self._get(()), *values] or None)

    def update(self, values: Iterable[Any]) -> None:
        self._set(list(values) or None)

    def _merge(self, a: Any, b: Any) -> Any:
        return [*a, *b]


_VIEWS: dict[type[StateDescriptor], type[_View]] = {
    ValueStateDescriptor: _Value,
    ReducingStateDescriptor: _Reducing,
    AggregatingStateDescriptor: _Aggregating,
    ListStateDescriptor: _List,
}


class WindowStates:
    """The namespaced states of one window operator subtask, made on first use.

    :param backend: the operator's keyed state backend
    :param prefix: the backend state names' prefix (trigger and user window state apart)
    :param window: returns the window the views are scoped to now
    """

    def __init__(
        self, backend: HeapKeyedStateBackend, prefix: str, window: Callable[[], _Window]
    ) -> None:
        self._backend = backend
        self._prefix = prefix
        self._window = window
        self._views: dict[str, _View] = {}

    def get(self, descriptor: StateDescriptor) -> Any:
        """The view of ``descriptor``'s state for the current key and window.

        :raises TypeError: for a descriptor kind windows do not support (map state)
        :raises StateError: if the name is used with another kind of descriptor
        """
        view = self._views.get(descriptor.name)
        if view is not None:
            if type(view.descriptor) is not type(descriptor):
                raise StateError(
                    f"window state {descriptor.name!r} is registered as "
                    f"{type(view.descriptor).__name__}; it cannot also be "
                    f"{type(descriptor).__name__}"
                )
            return view
        kind = _VIEWS.get(type(descriptor))
        if kind is None:
            raise TypeError(
                f"window state supports value, reducing, aggregating and list state, got "
                f"{descriptor!r}"
            )
        per_key = self._backend.get_state(ValueStateDescriptor(self._prefix + descriptor.name))
        view = self._views[descriptor.name] = kind(per_key, self._window, descriptor)
        return view

    def merge(self, descriptor: StateDescriptor, target: _Window, sources: list[_Window]) -> None:
        """Merge ``descriptor``'s values of ``sources`` into ``target``."""
        self.get(descriptor).merge_namespaces(target, sources)

    def clear_window(self, window: _Window) -> None:
        """Remove every state's value of ``window`` for the current key."""
        for view in self._views.values():
            windows = view._per_key.value()
            if windows and windows.pop(window, None) is not None:
                if windows:
                    view._per_key.update(windows)
                else:
                    view._per_key.clear()
