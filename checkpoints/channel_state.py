"""Channel state: the in-flight records an unaligned checkpoint keeps, and their format.

An unaligned barrier overtakes records. Those a subtask had queued for output when it
forwarded the barrier are *output* channel state (Flink's ``ResultSubpartitionStateHandle``);
those it read from a channel after its snapshot and before that channel's barrier are
*input* channel state (``InputChannelStateHandle``). Together with the operator state they
are the consistent cut; on restore they are put back into the channels, input state before
output state of the same channel, ahead of any new record.

Channel state is stored in the state file of the chain's head operator (its ``extra``
section, under :data:`CHANNEL_STATE_KEY`, so it shares that section's CRC and the file's
checksum)::

    {"version": 1, "entries": [
        {"kind": "input" | "output", "edge": "<edge id>", "producer": i, "consumer": j,
         "producers": <producer parallelism>, "consumers": <consumer parallelism>,
         "buffers": [{"records": [...], "encoding": "plain" | "tuples" | "tagged",
                      "keys": [...], "key_encoding": ..., "key_groups": [...],
                      "timestamps": [...]}, ...]}, ...]}

An edge id names the producing and consuming operator uids, the side output tag and the
input of the consumer (:func:`edge_id`). Records are in the type-faithful JSON form of
:mod:`streamlet.state.json_codec`; ``keys`` / ``key_groups`` (a key_by edge) and
``timestamps`` are optional and parallel to ``records``. This module only checks the shape
(a checkpoint directory is untrusted); the engine decodes the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import CorruptCheckpointError

__all__ = [
    "CHANNEL_STATE_KEY",
    "CHANNEL_STATE_VERSION",
    "ChannelStateEntry",
    "edge_id",
    "parse_channel_state",
]

CHANNEL_STATE_KEY = "channel_state"
CHANNEL_STATE_VERSION = 1
_KINDS = ("input", "output")
#: How a buffer's records (or keys) are written: as they are (JSON scalars), as arrays of
#: scalars (tuples), or each in the tagged form of :mod:`streamlet.state.json_codec`.
_ENCODINGS = frozenset({"plain", "tuples", "tagged"})
#: No real job has this many subtasks; a bigger number in a file is damage.
_MAX_PARALLELISM = 1 << 15


def edge_id(producer_uid: str, output_tag: str | None, consumer_uid: str, input_index: int) -> str:
    """The id of an edge in channel state: stable across runs of the same job."""
    return f"{producer_uid}|{output_tag or ''}|{consumer_uid}|{input_index}"


@dataclass(slots=True)
class ChannelStateEntry:
    """The buffers of one channel (``producer`` -> ``consumer`` of ``edge``) one subtask kept.

    :param kind: ``"input"`` (kept by the consumer) or ``"output"`` (kept by the producer)
    :param buffers: JSON form of each buffer, in channel order
    """

    kind: str
    edge: str
    producer: int
    consumer: int
    producers: int
    consumers: int
    buffers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_records(self) -> int:
        return sum(len(buffer["records"]) for buffer in self.buffers)


def parse_channel_state(raw: Any, where: str) -> list[ChannelStateEntry]:
    """Check the JSON form of a state file's channel state and return its entries.

    :param where: the file, for the error
    :raises CorruptCheckpointError: naming the file and what is wrong
    """

    def bad(detail: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(where, f"channel state: {detail}")

    if not isinstance(raw, dict) or raw.get("version") != CHANNEL_STATE_VERSION:
        raise bad(f"expected a version {CHANNEL_STATE_VERSION} object")
    entries = raw.get("entries")
    if not isinstance(entries, list):
        raise bad("'entries' must be a list")
    parsed = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"entry {n} is not an object")
        kind, edge, buffers = entry.get("kind"), entry.get("edge"), entry.get("buffers")
        if kind not in _KINDS or not isinstance(edge, str) or not isinstance(buffers, list):
            raise bad(f"entry {n} needs kind input/output, a str edge and a list of buffers")
        numbers = []
        for name in ("producer", "consumer", "producers", "consumers"):
            value = entry.get(name)
            if type(value) is not int or not 0 <= value <= _MAX_PARALLELISM:
                raise bad(f"entry {n}: {name!r} must be an int in [0, {_MAX_PARALLELISM}]")
            numbers.append(value)
        producer, consumer, producers, consumers = numbers
        if not (producer < producers and consumer < consumers):
            raise bad(f"entry {n}: subtask index out of range of its parallelism")
        for b, buffer in enumerate(buffers):
            _check_buffer(buffer, f"entry {n} buffer {b}", bad)
        parsed.append(
            ChannelStateEntry(kind, edge, producer, consumer, producers, consumers, buffers)
        )
    return parsed


def _check_buffer(buffer: Any, what: str, bad: Any) -> None:
    if not isinstance(buffer, dict) or not isinstance(buffer.get("records"), list):
        raise bad(f"{what} needs a list of records")
    n = len(buffer["records"])
    for name in ("keys", "key_groups", "timestamps"):
        if name in buffer:
            value = buffer[name]
            if not isinstance(value, list) or len(value) != n:
                raise bad(f"{what}: {name!r} must be a list as long as its records")
    for name in ("encoding", "key_encoding"):
        if buffer.get(name, "tagged") not in _ENCODINGS:
            raise bad(f"{what}: {name!r} must be one of {sorted(_ENCODINGS)}")
    groups = buffer.get("key_groups")
    if groups is not None and ("keys" not in buffer or any(type(g) is not int for g in groups)):
        raise bad(f"{what}: 'key_groups' must be ints, with 'keys'")
    stamps = buffer.get("timestamps")
    if stamps is not None and any(t is not None and type(t) is not int for t in stamps):
        raise bad(f"{what}: 'timestamps' must be ints or null")
