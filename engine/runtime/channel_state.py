"""The engine's half of channel state: buffers to JSON and back, and restoring channels.

The format (and its shape check) is :mod:`streamlet.checkpoints.channel_state`; this module
knows the buffer types of the data plane (record lists, :class:`KeyedBatch`,
:class:`TimestampedBatch`), which the checkpoints layer must not import.

A buffer is encoded when it is *taken* (overtaken in an output channel, or read from an
input channel before its barrier), not when the checkpoint is written: the records are
shared with the operators that process them next, and a function that changes its input
in place must not change what the checkpoint keeps.

Restore (:func:`restore_channels`) follows Flink's rescaling rules for in-flight data:

- at the same parallelism on both sides, every channel gets back exactly its buffers;
- otherwise the buffers of a channel go through the router of the new producer subtask
  (old index modulo the new parallelism), which is Flink's outcome for its partitioners:
  a key_by edge sends each record to the subtask that now owns its key group (Flink's
  ``RANGE`` mapping), rebalance and shuffle spread them (``ROUND_ROBIN``), global sends
  them to subtask 0 (``FIRST``), a custom partitioner decides again (``FULL``);
- pointwise (forward, rescale) and broadcast edges cannot be rescaled with channel state
  (Flink's ``UNSUPPORTED`` mapping): the restore is refused with Flink's advice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streamlet.checkpoints.channel_state import ChannelStateEntry
from streamlet.checkpoints.errors import CorruptCheckpointError
from streamlet.operators.records import TimestampedBatch
from streamlet.state.json_codec import from_json, to_json
from streamlet.state.keyed_batch import KeyedBatch

__all__ = [
    "ChannelStateRestoreError",
    "decode_buffer",
    "encode_buffer",
    "encoded_size",
    "is_data_buffer",
]

#: Partitioners whose channel state cannot move to another parallelism (Flink's
#: ``SubtaskStateMapper.UNSUPPORTED`` and broadcast).
NOT_RESCALABLE = frozenset({"forward", "rescale", "broadcast"})


class ChannelStateRestoreError(ValueError):
    """Channel state of a checkpoint cannot be put back into this job's channels."""


def is_data_buffer(buffer: Any) -> bool:
    kind = type(buffer)
    return kind is list or kind is KeyedBatch or kind is TimestampedBatch


def encode_buffer(buffer: Any) -> dict[str, Any]:
    """The JSON form of one data buffer.

    :raises UnserializableValueError: if a record (or key) has no faithful JSON form
    """
    kind = type(buffer)
    if kind is KeyedBatch:
        return {
            "records": [to_json(r) for r in buffer.records],
            "keys": [to_json(k) for k in buffer.keys],
            "key_groups": list(buffer.indexes),
        }
    if kind is TimestampedBatch:
        return {
            "records": [to_json(r) for r in buffer.records],
            "timestamps": list(buffer.timestamps),
        }
    return {"records": [to_json(r) for r in buffer]}


def decode_buffer(data: dict[str, Any]) -> Any:
    """The buffer :func:`encode_buffer` encoded (``data`` passed the shape check)."""
    records = [from_json(r) for r in data["records"]]
    if "key_groups" in data:
        return KeyedBatch(records, [from_json(k) for k in data["keys"]], data["key_groups"])
    if "timestamps" in data:
        return TimestampedBatch(records, data["timestamps"])
    return records


def encoded_size(buffers: Iterable[dict[str, Any]]) -> int:
    """Bytes the buffers take in the checkpoint (Flink's "persisted in-flight data")."""
    return sum(len(orjson.dumps(b)) for b in buffers)


def check_decodable(entries: list[ChannelStateEntry], where: str) -> None:
    """Decode every record once, so damage is reported before the job starts.

    :raises CorruptCheckpointError: naming ``where``
    """
    for entry in entries:
        for buffer in entry.buffers:
            try:
                decode_buffer(buffer)
            except Exception as exc:
                raise CorruptCheckpointError(
                    where, f"channel state of edge {entry.edge!r}: {exc}"
                ) from exc
