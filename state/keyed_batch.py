"""A batch of records on its way to a keyed operator, with each record's key and key group.

At parallelism > 1 the key_by partitioner must compute every record's key and key group to
pick the subtask it goes to; it sends them along with the records, so the keyed operator
neither calls the key selector again nor hashes the key a second time (the hash is the
costliest step of a keyed record: see :mod:`.key_group_memo`). The key groups travel as
*indexes* into the receiving subtask's key group range, the form the state tables use
(``key_group - range.start``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

__all__ = ["KeyedBatch"]


class KeyedBatch:
    """``records`` with, position by position, their ``keys`` and key group ``indexes``.

    Immutable by convention, like every buffer in a channel: nobody changes the lists once
    the batch is sent (the output writer fills and cuts its own buffers with
    :meth:`extend` and ``del``). As a sequence it is its records (``len``, iteration,
    indexing); a slice is a KeyedBatch of the records in it, with their keys and indexes.
    """

    __slots__ = ("indexes", "keys", "records")

    def __init__(self, records: list[Any], keys: list[Any], indexes: list[int]) -> None:
        self.records = records
        self.keys = keys
        self.indexes = indexes

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.records)

    @overload
    def __getitem__(self, item: int) -> Any: ...
    @overload
    def __getitem__(self, item: slice) -> KeyedBatch: ...
    def __getitem__(self, item: int | slice) -> Any:
        if isinstance(item, slice):
            return KeyedBatch(self.records[item], self.keys[item], self.indexes[item])
        return self.records[item]

    def __delitem__(self, item: slice) -> None:
        del self.records[item]
        del self.keys[item]
        del self.indexes[item]

    def extend(self, other: KeyedBatch) -> None:
        """Append ``other``'s records, keys and indexes (for the writer's buffers only)."""
        self.records.extend(other.records)
        self.keys.extend(other.keys)
        self.indexes.extend(other.indexes)

    def __repr__(self) -> str:
        return f"KeyedBatch({len(self.records)} records)"
