"""A plain-dict model of keyed state, and random operations applied to both (test helper)."""

from __future__ import annotations

import copy
import random
from typing import Any

from streamlet.state import (
    AggregateFunction,
    AggregatingStateDescriptor,
    HeapKeyedStateBackend,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    ValueStateDescriptor,
)

NAMES = ("v", "l", "m", "r", "a")


class Average(AggregateFunction):
    """Accumulator is a mutable [sum, count] list, updated in place."""

    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: int, accumulator: list[int]) -> list[int]:
        accumulator[0] += value
        accumulator[1] += 1
        return accumulator

    def get_result(self, accumulator: list[int]) -> tuple[int, int]:
        return (accumulator[0], accumulator[1])


def _add(a: int, b: int) -> int:
    return a + b


def register(backend: HeapKeyedStateBackend) -> dict[str, Any]:
    """Register the five model states on ``backend`` and return their views by name."""
    return {
        "v": backend.get_state(ValueStateDescriptor("v")),
        "l": backend.get_list_state(ListStateDescriptor("l")),
        "m": backend.get_map_state(MapStateDescriptor("m")),
        "r": backend.get_reducing_state(ReducingStateDescriptor("r", _add)),
        "a": backend.get_aggregating_state(AggregatingStateDescriptor("a", Average())),
    }


def dump(backend: HeapKeyedStateBackend, views: dict[str, Any]) -> dict[str, dict[Any, Any]]:
    """Read every key of every model state through the views (deep-copied)."""
    out: dict[str, dict[Any, Any]] = {}
    for name in NAMES:
        view = views[name]
        entries = {}
        for key in backend.keys(name):
            backend.set_current_key(key)
            if name == "v":
                entries[key] = view.value()
            elif name == "l":
                entries[key] = list(view.get())
            elif name == "m":
                entries[key] = dict(view.items())
            else:
                entries[key] = view.get()
        out[name] = copy.deepcopy(entries)
    return out


def apply(
    backend: HeapKeyedStateBackend,
    views: dict[str, Any],
    model: dict[str, dict[Any, Any]],
    op: tuple[Any, ...],
) -> None:
    """Apply ``op`` to the backend (through the views) and to the model."""
    kind, key, *args = op
    backend.set_current_key(key)
    if kind == "value_update":
        (value,) = args
        views["v"].update(copy.deepcopy(value))
        if value is None:
            model["v"].pop(key, None)
        else:
            model["v"][key] = copy.deepcopy(value)
    elif kind == "value_append":
        # An in-place change of a value read from state, without update(): the heap
        # backend keeps it (as Flink's does), and no snapshot may see it.
        (value,) = args
        current = views["v"].value()
        if isinstance(current, list):
            current.append(value)
            model["v"][key].append(value)
    elif kind == "value_clear":
        views["v"].clear()
        model["v"].pop(key, None)
    elif kind == "list_add":
        (value,) = args
        views["l"].add(copy.deepcopy(value))
        model["l"].setdefault(key, []).append(value)
    elif kind == "list_update":
        (values,) = args
        views["l"].update(values)
        if values:
            model["l"][key] = list(values)
        else:
            model["l"].pop(key, None)
    elif kind == "list_clear":
        views["l"].clear()
        model["l"].pop(key, None)
    elif kind == "map_put":
        map_key, value = args
        views["m"].put(map_key, copy.deepcopy(value))
        model["m"].setdefault(key, {})[map_key] = value
    elif kind == "map_remove":
        (map_key,) = args
        views["m"].remove(map_key)
        entries = model["m"].get(key)
        if entries is not None:
            entries.pop(map_key, None)
            if not entries:
                del model["m"][key]
    elif kind == "map_clear":
        views["m"].clear()
        model["m"].pop(key, None)
    elif kind == "reduce_add":
        (value,) = args
        views["r"].add(value)
        model["r"][key] = model["r"].get(key, 0) + value
    elif kind == "agg_add":
        (value,) = args
        views["a"].add(value)
        total, count = model["a"].get(key, (0, 0))
        model["a"][key] = (total + value, count + 1)
    else:  # pragma: no cover - a bug in the test
        raise AssertionError(kind)


def assert_same(actual: Any, expected: Any, path: str = "") -> None:
    """Assert equality with identical types all the way down (``1 == 1.0 == True`` is not)."""
    assert type(actual) is type(expected), f"{path}: {actual!r} is not {expected!r}"
    if isinstance(expected, dict):
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        actual_keys = {k: k for k in actual}
        for key, value in expected.items():
            assert key in actual_keys, f"{path}: key {key!r} missing"
            assert_same(actual_keys[key], key, f"{path}.key({key!r})")
            assert_same(actual[key], value, f"{path}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, set | frozenset):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
        assert sorted(map(repr, actual)) == sorted(map(repr, expected)), path
    else:
        assert actual == expected or (actual != actual and expected != expected), (
            f"{path}: {actual!r} != {expected!r}"
        )


KEYS: list[Any] = [0, 1, 2, 17, -5, "a", "b", "user-7", (1, "x"), (2, (3, 4)), 2.5, None, b"k"]
VALUES: list[Any] = [0, 1, -1, 2**70, 1.5, "s", "", True, None, (1, 2), [1, [2, 3]], {"k": 1}]


def random_op(rng: random.Random, keys: list[Any] = KEYS) -> tuple[Any, ...]:
    """Return one random operation over ``keys``."""
    key = rng.choice(keys)
    kind = rng.choice(
        [
            "value_update",
            "value_update",
            "value_append",
            "value_clear",
            "list_add",
            "list_update",
            "list_clear",
            "map_put",
            "map_remove",
            "map_clear",
            "reduce_add",
            "agg_add",
        ]
    )
    if kind == "value_update":
        value = rng.choice(VALUES)
        return (kind, key, [rng.randrange(10)] if value is None and rng.random() < 0.5 else value)
    if kind == "value_append":
        return (kind, key, rng.randrange(100))
    if kind == "list_add":
        return (kind, key, rng.choice([v for v in VALUES if v is not None]))
    if kind == "list_update":
        return (kind, key, [rng.randrange(5) for _ in range(rng.randrange(3))])
    if kind == "map_put":
        return (kind, key, rng.choice([1, "one", (1, 1), None, 2.0]), rng.choice(VALUES))
    if kind == "map_remove":
        return (kind, key, rng.choice([1, "one", (1, 1), None, 2.0]))
    if kind in ("reduce_add", "agg_add"):
        return (kind, key, rng.randrange(-10, 10))
    return (kind, key)
