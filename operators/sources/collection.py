"""Sources over data the program already holds: a collection and a number sequence.

Both rewind exactly: their position is the next index (collection) or the next number
(sequence), so a restore neither repeats nor skips a record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import Source, SourceReader

__all__ = ["CollectionSource", "SequenceSource"]


class _CollectionReader(SourceReader[Any]):
    def __init__(self, data: list[Any], position: int) -> None:
        self._data = data
        self._next = position

    async def read_batch(self, max_records: int) -> list[Any] | None:
        start = self._next
        if start >= len(self._data):
            return None
        self._next = end = min(start + max_records, len(self._data))
        return self._data[start:end]

    def position(self) -> int:
        return self._next


class CollectionSource(Source[Any]):
    """Emits the elements of a collection in order (Flink's ``fromCollection``).

    Non-parallel. Resume contract: the position is the index of the next element.
    """

    name = "Collection Source"
    max_parallelism = 1

    def __init__(self, collection: Iterable[Any]) -> None:
        if isinstance(collection, str | bytes | dict) or not isinstance(collection, Iterable):
            raise TypeError(
                f"from_collection() needs a list, tuple or other iterable of records, "
                f"got {type(collection).__name__}"
            )
        self._data = list(collection)

    def create_splits(self, parallelism: int) -> list[Any]:
        return [{"collection": 0}]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Any]:
        return _CollectionReader(self._data, 0 if position is None else int(position))


class _SequenceReader(SourceReader[int]):
    def __init__(self, end: int, position: int) -> None:
        self._end = end
        self._next = position

    async def read_batch(self, max_records: int) -> list[int] | None:
        start = self._next
        if start > self._end:
            return None
        self._next = stop = min(start + max_records, self._end + 1)
        return list(range(start, stop))

    def position(self) -> int:
        return self._next


class SequenceSource(Source[int]):
    """Emits the integers ``start..end`` inclusive, split over the subtasks (``fromSequence``).

    The range is cut into one contiguous split per subtask of the first run; a split's
    position is the next number it will emit, so restores (at any parallelism) rewind exactly.
    """

    name = "Sequence Source"

    def __init__(self, start: int, end: int) -> None:
        for label, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"from_sequence() {label} must be an int, got {value!r}")
        if end < start:
            raise ValueError(f"from_sequence() end must be >= start, got start={start}, end={end}")
        self.start = start
        self.end = end

    def create_splits(self, parallelism: int) -> list[Any]:
        total = self.end - self.start + 1
        parts = min(parallelism, total)
        splits = []
        for i in range(parts):
            lo = self.start + total * i // parts
            hi = self.start + total * (i + 1) // parts - 1
            splits.append([lo, hi])
        return splits

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[int]:
        lo, hi = split
        return _SequenceReader(hi, lo if position is None else int(position))
