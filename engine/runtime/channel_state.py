"""The engine's half of channel state: buffers to JSON and back, and restoring channels.

The format (and its shape check) is :mod:`streamlet.checkpoints.channel_state`; this module
knows the buffer types of the data plane (record lists, :class:`KeyedBatch`,
:class:`TimestampedBatch`), which the checkpoints layer must not import.

A buffer read from an input channel before its barrier is encoded when it is read (before
the operators see it); the buffers an unaligned barrier overtook in output channels are
encoded by the asynchronous part of the snapshot, in steps, so the synchronous part stays
short however much is in flight. Those records are still queued meanwhile (no operator has
them yet); like every record in streamlet, a function must not change them in place once
they were emitted (Flink's rule with object reuse).

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
from itertools import chain
from typing import Any

import orjson

from streamlet.checkpoints.channel_state import ChannelStateEntry
from streamlet.checkpoints.errors import CorruptCheckpointError
from streamlet.operators.records import TimestampedBatch
from streamlet.state.json_codec import from_json, is_plain_list, to_json
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


_TUPLE = {tuple}
_SCALARS = frozenset({str, int, float, bool, type(None)})


class ChannelStateRestoreError(ValueError):
    """Channel state of a checkpoint cannot be put back into this job's channels."""


def is_data_buffer(buffer: Any) -> bool:
    kind = type(buffer)
    return kind is list or kind is KeyedBatch or kind is TimestampedBatch


def _encode_list(items: list[Any]) -> tuple[str, list[Any]]:
    """``("plain", items)`` for JSON scalars, ``("tuples", items)`` for tuples of them (orjson
    writes a tuple as an array), else ``("tagged", [to_json(x) ...])``: the common shapes
    skip the per-record tagging, which costs a microsecond a record."""
    types = set(map(type, items))
    if types == _TUPLE:
        if is_plain_list(list(chain.from_iterable(items))):
            return "tuples", items
    elif types <= _SCALARS and is_plain_list(items):
        return "plain", items
    return "tagged", [to_json(x) for x in items]


def _decode_list(mode: str, items: list[Any]) -> list[Any]:
    if mode == "plain":
        return list(items)
    if mode == "tuples":
        return [tuple(x) for x in items]
    return [from_json(x) for x in items]


def encode_buffer(buffer: Any) -> dict[str, Any]:
    """The JSON form of one data buffer.

    :raises UnserializableValueError: if a record (or key) has no faithful JSON form
    """
    kind = type(buffer)
    records = buffer.records if kind is KeyedBatch or kind is TimestampedBatch else buffer
    mode, encoded = _encode_list(records)
    data: dict[str, Any] = {"records": encoded}
    if mode != "tagged":
        data["encoding"] = mode
    if kind is KeyedBatch:
        key_mode, keys = _encode_list(buffer.keys)
        data["keys"] = keys
        data["key_groups"] = list(buffer.indexes)
        if key_mode != "tagged":
            data["key_encoding"] = key_mode
    elif kind is TimestampedBatch:
        data["timestamps"] = list(buffer.timestamps)
    return data


def decode_buffer(data: dict[str, Any]) -> Any:
    """The buffer :func:`encode_buffer` encoded (``data`` passed the shape check).

    :raises ValueError: if the records cannot be decoded (damage)
    """
    records = _decode_list(data.get("encoding", "tagged"), data["records"])
    if "key_groups" in data:
        keys = _decode_list(data.get("key_encoding", "tagged"), data["keys"])
        return KeyedBatch(records, keys, data["key_groups"])
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
