"""Channel state: buffer encoding, the shape check of untrusted files, restore into channels."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamlet.checkpoints.channel_state import ChannelStateEntry, edge_id, parse_channel_state
from streamlet.checkpoints.errors import CorruptCheckpointError
from streamlet.graph.partitioners import RebalancePartitioner
from streamlet.operators.records import TimestampedBatch
from streamlet.runtime.channel_state import (
    ChannelStateRestoreError,
    check_decodable,
    decode_buffer,
    encode_buffer,
)
from streamlet.runtime.channels import Channel, EdgeInfo, InputGate, Notifier
from streamlet.runtime.deploy import restore_channels
from streamlet.runtime.subtask import OutputWriter
from streamlet.state.keyed_batch import KeyedBatch

EDGE = edge_id("map", None, "sink", 0)


@pytest.mark.parametrize(
    ("records", "encoding"),
    [([1, "a", None], "plain"), ([("a", 1), ("b", 2)], "tuples"), ([("a", 1), {"k": (1,)}], None)],
)
def test_buffers_round_trip_with_their_types(records: list[Any], encoding: str | None) -> None:
    data = encode_buffer(records)
    assert data.get("encoding") == encoding
    decoded = decode_buffer(orjson.loads(orjson.dumps(data)))
    assert decoded == records and [type(r) for r in decoded] == [type(r) for r in records]


def test_keyed_and_timestamped_buffers_round_trip() -> None:
    keyed = decode_buffer(encode_buffer(KeyedBatch([("a", 1)], ["a"], [7])))
    assert (keyed.records, keyed.keys, keyed.indexes) == ([("a", 1)], ["a"], [7])
    stamped = decode_buffer(encode_buffer(TimestampedBatch(["x", "y"], [5, None])))
    assert (stamped.records, stamped.timestamps) == (["x", "y"], [5, None])


def test_overtaking_event_goes_first_and_returns_the_queued_data() -> None:
    channel = Channel(2, Notifier())
    channel.send_nowait([1, 2])
    channel.send_nowait("watermark-like event")
    assert channel.overtake("barrier") == [[1, 2]]
    assert len(channel) == 3  # one over capacity: an overtaking event never waits
    assert channel.receive_nowait() == "barrier"
    assert channel.receive_nowait() == [1, 2]  # still delivered, after the barrier


def test_gate_records_data_read_from_a_recorded_channel_only() -> None:
    notifier = Notifier()
    channels = [Channel(4, notifier), Channel(4, notifier)]
    gate = InputGate(channels, notifier)
    gate.record(1, encode_buffer)
    channels[0].send_nowait([1])
    channels[1].send_nowait([2])
    channels[1].send_nowait("event")
    while gate.poll() is not None:
        pass
    assert gate.take_recorded(1) == [{"records": [2], "encoding": "plain"}]
    assert gate.take_recorded(0) == [] and not gate.recording


def entry(kind: str = "input", **kw: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": kind,
        "edge": EDGE,
        "producer": 0,
        "consumer": 1,
        "producers": 1,
        "consumers": 2,
        "buffers": [{"records": [1, 2]}],
    }
    raw.update(kw)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a version 1 object"),
        ({"version": 2, "entries": []}, "expected a version 1 object"),
        ({"version": 1, "entries": {}}, "'entries' must be a list"),
        ({"version": 1, "entries": [entry(kind="both")]}, "needs kind input/output"),
        ({"version": 1, "entries": [entry(producer=-1)]}, "'producer' must be an int"),
        ({"version": 1, "entries": [entry(consumer=2)]}, "index out of range"),
        ({"version": 1, "entries": [entry(buffers=[{"r": []}])]}, "needs a list of records"),
        (
            {"version": 1, "entries": [entry(buffers=[{"records": [], "encoding": "pickle"}])]},
            "'encoding' must be one of",
        ),
        (
            {"version": 1, "entries": [entry(buffers=[{"records": [1], "timestamps": []}])]},
            "'timestamps' must be a list as long as its records",
        ),
        (
            {"version": 1, "entries": [entry(buffers=[{"records": [1], "key_groups": [1]}])]},
            "'key_groups' must be ints, with 'keys'",
        ),
    ],
)
def test_damaged_channel_state_is_reported_with_the_file(raw: Any, message: str) -> None:
    with pytest.raises(CorruptCheckpointError, match=message) as info:
        parse_channel_state(raw, "chk-3/check-0.state")
    assert info.value.path == "chk-3/check-0.state"


def test_undecodable_records_are_reported_before_the_job_starts() -> None:
    (parsed,) = parse_channel_state(
        {"version": 1, "entries": [entry(buffers=[{"records": [{"$nope": 1}]}])]}, "f"
    )
    with pytest.raises(CorruptCheckpointError, match="channel state of edge"):
        check_decodable([parsed], "f")


def _edge(partitioner: str, producers: int, consumers: int) -> tuple[EdgeInfo, dict[int, Any]]:
    info = EdgeInfo(EDGE, partitioner, producers, consumers)
    writers = {}
    for i in range(producers):
        channels = []
        for j in range(consumers):
            channel = Channel(2, Notifier())
            channel.edge, channel.producer_index, channel.consumer_index = info, i, j
            channels.append(channel)
        router = RebalancePartitioner().router(i, consumers, consumers, 128)
        writers[i] = OutputWriter(channels, router, 4)
    return info, writers


def _entry(kind: str, records: list[Any], producers: int = 1, consumers: int = 2) -> Any:
    return ChannelStateEntry(kind, EDGE, 0, 1, producers, consumers, [{"records": records}])


def test_same_parallelism_puts_input_state_before_output_state() -> None:
    edge = _edge("hash", 1, 2)
    restore_channels([_entry("output", [3]), _entry("input", [1, 2])], {EDGE: edge})
    channel = edge[1][0].channels[1]
    assert [channel.receive_nowait(), channel.receive_nowait()] == [[1, 2], [3]]
    assert len(edge[1][0].channels[0]) == 0


def test_rescaled_state_goes_through_the_new_router() -> None:
    edge = _edge("rebalance", 1, 3)
    restore_channels([_entry("input", [1, 2, 3])], {EDGE: edge})
    assert sorted(x for c in edge[1][0].channels for x in c.receive_nowait()) == [1, 2, 3]


@pytest.mark.parametrize("partitioner", ["forward", "rescale", "broadcast"])
def test_pointwise_and_broadcast_state_cannot_be_rescaled(partitioner: str) -> None:
    with pytest.raises(ChannelStateRestoreError, match=f"cannot rescale .* {partitioner} edge"):
        restore_channels([_entry("input", [1])], {EDGE: _edge(partitioner, 1, 3)})


def test_state_of_an_edge_the_job_lacks_is_refused() -> None:
    with pytest.raises(ChannelStateRestoreError, match="'map' -> 'sink' input 0 that this job"):
        restore_channels([_entry("input", [1])], {})
