"""Property test: random operations on every state kind behave like a plain dict model,
across snapshots and restores taken at random points."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlet.state import HeapKeyedStateBackend, KeyGroupRange
from tests.state._state_model import NAMES, apply, assert_same, dump, register

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=4)
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from([0, 1, -7, "a", "b", (1, "x"), b"k", None, 2.5]) | st.integers(0, 50)
non_none = values.filter(lambda v: v is not None)

operations = st.one_of(
    st.tuples(st.just("value_update"), keys, values),
    st.tuples(st.just("value_update"), keys, st.lists(st.integers(), max_size=2)),
    st.tuples(st.just("value_append"), keys, st.integers()),
    st.tuples(st.just("value_clear"), keys),
    st.tuples(st.just("list_add"), keys, non_none),
    st.tuples(st.just("list_update"), keys, st.lists(non_none, max_size=3)),
    st.tuples(st.just("list_clear"), keys),
    st.tuples(st.just("map_put"), keys, hashables, values),
    st.tuples(st.just("map_remove"), keys, hashables),
    st.tuples(st.just("map_clear"), keys),
    st.tuples(st.just("reduce_add"), keys, st.integers(-100, 100)),
    st.tuples(st.just("agg_add"), keys, st.integers(-100, 100)),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("restore"), st.booleans()),
)


def _fresh() -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend("prop", KeyGroupRange(0, 31), 32)


def _check_current(views: dict[str, Any], model: dict[str, dict[Any, Any]], key: Any) -> None:
    assert_same(views["v"].value(), model["v"].get(key))
    assert_same(list(views["l"].get()), model["l"].get(key, []))
    assert_same(dict(views["m"].items()), model["m"].get(key, {}))
    assert_same(views["r"].get(), model["r"].get(key))
    assert_same(views["a"].get(), model["a"].get(key))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.lists(operations, max_size=60))
def test_random_operations_match_dict_model(ops: list[tuple[Any, ...]]) -> None:
    backend = _fresh()
    views = register(backend)
    model: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}
    held: list[tuple[Any, dict[str, dict[Any, Any]]]] = []
    for op in ops:
        if op[0] == "snapshot":
            held.append((backend.snapshot_sync(), copy.deepcopy(model)))
        elif op[0] == "restore":
            if not held:
                continue
            snapshot, expected = held.pop(0)
            chunks = {kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()}
            backend = _fresh()
            register_first = op[1]
            if register_first:
                views = register(backend)
                backend.restore(chunks)
            else:
                backend.restore(chunks)
                views = register(backend)
            model = copy.deepcopy(expected)
            # Snapshots taken before the restore belong to the old backend's timeline.
            held.clear()
        else:
            apply(backend, views, model, op)
            _check_current(views, model, op[1])
    assert_same(dump(backend, views), model)
    # Finally, one more round trip of everything.
    snapshot = backend.snapshot_sync()
    restored = _fresh()
    restored.restore({kg: snapshot.serialize_key_group(kg) for kg in snapshot.key_groups()})
    assert_same(dump(restored, register(restored)), model)
