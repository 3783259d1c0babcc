"""Serialize-ahead: the synchronous part serializes what fits in its budget, a large key group
in steps, and leaves the rest (a key group half done included) to the asynchronous part."""

from __future__ import annotations

import itertools

import pytest

import streamlet.runtime.checkpointing as checkpointing
from streamlet.checkpoints.snapshotter import OperatorSnapshot
from streamlet.state import HeapKeyedStateBackend, KeyGroupRange, ValueStateDescriptor


def _backend() -> HeapKeyedStateBackend:
    backend = HeapKeyedStateBackend("op", KeyGroupRange(0, 127), 128)
    state = backend.get_state(ValueStateDescriptor("count"))
    for key in range(20_000):
        backend.set_current_key(key)
        state.update(key)
    return backend


def test_serialize_ahead_stops_inside_a_key_group_and_the_rest_gives_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _backend()
    ahead, whole = backend.snapshot_sync(), backend.snapshot_sync()
    ahead.step_entries = 16  # about 156 entries per key group: ten steps each
    ticks = itertools.count()
    # A clock that moves one second per reading: the budget allows a few steps.
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: float(next(ticks)))
    checkpointing._serialize_ahead([OperatorSnapshot("op", keyed=ahead)], 4.0)
    (started,) = ahead._in_progress  # stopped in the middle of the first key group
    assert started == ahead.key_groups()[0]
    monkeypatch.undo()
    assert {kg: ahead.serialize_key_group(kg) for kg in ahead.key_groups()} == {
        kg: whole.serialize_key_group(kg) for kg in whole.key_groups()
    }
    assert ahead._in_progress == {}
