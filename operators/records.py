"""Records with timestamps, and side outputs.

A record carries an optional timestamp (Flink's ``StreamRecord``). The engine does not wrap
records one by one: a batch whose records have timestamps is a :class:`TimestampedBatch`, two
lists position by position, and a batch without timestamps stays a plain ``list``. So a job
without event time pays nothing, and a job with it pays one list per batch, not an object per
record. Every operator takes both kinds of batch; what a record emits carries its timestamp
(Flink's ``TimestampedCollector``), and a sink sees the records only.

Side outputs: a process function emits ``(tag, value)`` with an :class:`OutputTag` (PyFlink's
form: ``yield tag, value``); the value goes to the streams made with
``ds.get_side_output(tag)``, with the timestamp the main output would have had. A side output
nobody reads is dropped, as in Flink.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, overload

__all__ = ["OutputTag", "SideOutputs", "StreamRecord", "TimestampedBatch"]


class TimestampedBatch:
    """``records`` with, position by position, their ``timestamps`` (an int, or ``None`` for
    a record without one).

    Immutable by convention, like every buffer in a channel (an output writer fills and cuts
    only its own buffers, with :meth:`extend` and ``del``). As a sequence it is its records;
    a slice is a TimestampedBatch.
    """

    __slots__ = ("records", "timestamps")

    def __init__(self, records: list[Any], timestamps: list[int | None]) -> None:
        self.records = records
        self.timestamps = timestamps

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.records)

    @overload
    def __getitem__(self, item: int) -> Any: ...
    @overload
    def __getitem__(self, item: slice) -> TimestampedBatch: ...
    def __getitem__(self, item: int | slice) -> Any:
        if isinstance(item, slice):
            return TimestampedBatch(self.records[item], self.timestamps[item])
        return self.records[item]

    def __delitem__(self, item: slice) -> None:
        del self.records[item]
        del self.timestamps[item]

    def extend(self, other: TimestampedBatch) -> None:
        """Append ``other``'s records and timestamps (for an output writer's buffers only)."""
        self.records.extend(other.records)
        self.timestamps.extend(other.timestamps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimestampedBatch):
            return NotImplemented
        return self.records == other.records and self.timestamps == other.timestamps

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TimestampedBatch({len(self.records)} records)"


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record as the test harnesses report it: the value and its timestamp (or None)."""

    value: Any
    timestamp: int | None = None


class OutputTag:
    """Names a side output (PyFlink's ``OutputTag(tag_id, type_info=None)``).

    Two tags with the same id are the same side output.

    :param tag_id: the side output's name, a non-empty str
    :param type_info: PyFlink's type information; accepted and ignored
    :raises ValueError: if ``tag_id`` is not a non-empty str
    """

    __slots__ = ("tag_id", "type_info")

    #: Whether any OutputTag was ever made in this process. Until one is, no output can be a
    #: side output, so process operators skip looking for ``(tag, value)`` pairs (a scan of
    #: every output record, a few percent of a keyed process job).
    any_created: bool = False

    def __init__(self, tag_id: str, type_info: Any = None) -> None:
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError(f"OutputTag needs a non-empty str tag_id, got {tag_id!r}")
        self.tag_id = tag_id
        self.type_info = type_info
        OutputTag.any_created = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(("OutputTag", self.tag_id))

    def __repr__(self) -> str:
        return f"OutputTag({self.tag_id!r})"


#: tag id -> the side output records of one batch (a list, or a TimestampedBatch).
SideOutputs = dict[str, Any]
