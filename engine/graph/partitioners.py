"""Partitioners: which consumer subtask gets each record of an edge.

Each partitioner answers two questions. :meth:`Partitioner.targets` says which consumer
subtasks a producer subtask is connected to (all of them, or a pointwise subset for forward
and rescale); the plan makes one channel per connection. :meth:`Partitioner.router` builds a
per-producer :class:`Router` that splits a batch into one list per connected channel, with
the per-record work done in comprehensions and slices, not in awaits.
"""

from __future__ import annotations

import random
import reprlib
from collections.abc import Callable
from typing import Any

from streamlet.operators.records import TimestampedBatch
from streamlet.state.key_group_memo import KeyGroupMemo
from streamlet.state.key_groups import UnusableKeyError, key_group_range_for_subtask
from streamlet.state.keyed_batch import KeyedBatch

__all__ = [
    "BroadcastPartitioner",
    "CustomPartitioner",
    "ForwardPartitioner",
    "GlobalPartitioner",
    "KeyGroupPartitioner",
    "KeySelectorError",
    "Partitioner",
    "RebalancePartitioner",
    "RescalePartitioner",
    "Router",
    "ShufflePartitioner",
    "key_error",
]

#: The router sends KeyedBatches when more than one record in this many missed the memo.
_CARRY_ABOVE = 32


class Router:
    """Splits batches for one producer subtask over its ``n`` connected channels."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def split(self, records: list[Any]) -> list[Any]:
        """Return one part per connected channel (the same list may appear for several): a
        list, or for a key_by router a :class:`KeyedBatch` (all parts of one kind)."""
        raise NotImplementedError

    def set_consumer(self, name: str, uid: str, keyed: bool) -> None:
        """Tell the router which operator it feeds (the deployment calls it): key_by
        routers name it in errors, and send keys and key groups along when it is keyed."""

    def split_timestamped(self, batch: TimestampedBatch) -> list[TimestampedBatch]:
        """:meth:`split` for records with timestamps: each part a TimestampedBatch."""
        return _distribute(self.n, self.targets_of(batch.records), batch)

    def targets_of(self, records: list[Any]) -> list[int]:
        """The channel of each record (routers whose choice depends on the record)."""
        raise NotImplementedError


def _distribute(n: int, targets: list[int], batch: TimestampedBatch) -> list[TimestampedBatch]:
    parts = [TimestampedBatch([], []) for _ in range(n)]
    add_record = [part.records.append for part in parts]
    add_stamp = [part.timestamps.append for part in parts]
    for record, timestamp, target in zip(batch.records, batch.timestamps, targets, strict=True):
        add_record[target](record)
        add_stamp[target](timestamp)
    return parts


class Partitioner:
    """Decides the consumer subtask(s) of every record on one edge."""

    name = "partitioner"
    #: True for forward and rescale: a producer reaches only some consumers.
    pointwise = False

    def targets(self, producer: int, producers: int, consumers: int) -> list[int]:
        """Return the consumer indices producer subtask ``producer`` sends to."""
        return list(range(consumers))

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name.upper()


class _Single(Router):
    __slots__ = ()

    def split(self, records: list[Any]) -> list[list[Any]]:
        return [records]

    def split_timestamped(self, batch: TimestampedBatch) -> list[TimestampedBatch]:
        return [batch]


class _RoundRobin(Router):
    __slots__ = ("_start",)

    def __init__(self, n: int, start: int) -> None:
        super().__init__(n)
        self._start = start % n

    def split(self, records: list[Any]) -> list[list[Any]]:
        n = self.n
        start = self._start
        # Record r goes to channel (start + r) % n, so channel j takes r = (j - start) % n,
        # then every n-th record: one C-level slice per channel.
        parts = [records[(j - start) % n :: n] for j in range(n)]
        self._start = (start + len(records)) % n
        return parts

    def split_timestamped(self, batch: TimestampedBatch) -> list[TimestampedBatch]:
        n = self.n
        start = self._start
        records, stamps = batch.records, batch.timestamps
        parts = [
            TimestampedBatch(records[(j - start) % n :: n], stamps[(j - start) % n :: n])
            for j in range(n)
        ]
        self._start = (start + len(records)) % n
        return parts


class ForwardPartitioner(Partitioner):
    """Producer subtask i sends everything to consumer subtask i (equal parallelism)."""

    name = "forward"
    pointwise = True

    def targets(self, producer: int, producers: int, consumers: int) -> list[int]:
        if producers != consumers:
            raise ValueError(
                "forward partitioning needs equal parallelism on both sides, "
                f"got {producers} upstream and {consumers} downstream"
            )
        return [producer]

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Single(1)


class RebalancePartitioner(Partitioner):
    """Round-robin over every consumer subtask, record by record."""

    name = "rebalance"

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Single(1) if n_targets == 1 else _RoundRobin(n_targets, producer)


class RescalePartitioner(Partitioner):
    """Round-robin over a local subset of consumers (Flink's pointwise rescale)."""

    name = "rescale"
    pointwise = True

    def targets(self, producer: int, producers: int, consumers: int) -> list[int]:
        if consumers >= producers:
            return [c for c in range(consumers) if c * producers // consumers == producer]
        return [producer * consumers // producers]

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Single(1) if n_targets == 1 else _RoundRobin(n_targets, 0)


class _Shuffle(Router):
    __slots__ = ("_rng",)

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(n)
        self._rng = random.Random(seed)

    def split(self, records: list[Any]) -> list[list[Any]]:
        n = self.n
        parts: list[list[Any]] = [[] for _ in range(n)]
        appends = [part.append for part in parts]
        choices = self._rng.choices(range(n), k=len(records))
        for record, target in zip(records, choices, strict=True):
            appends[target](record)
        return parts

    def targets_of(self, records: list[Any]) -> list[int]:
        return self._rng.choices(range(self.n), k=len(records))


class ShufflePartitioner(Partitioner):
    """Uniformly random consumer per record, from a seeded generator (reproducible runs)."""

    name = "shuffle"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Shuffle(n_targets, self.seed * 1_000_003 + producer)


class _Broadcast(Router):
    __slots__ = ()

    def split(self, records: list[Any]) -> list[list[Any]]:
        return [records] * self.n

    def split_timestamped(self, batch: TimestampedBatch) -> list[TimestampedBatch]:
        return [batch] * self.n


class BroadcastPartitioner(Partitioner):
    """Every record to every consumer subtask."""

    name = "broadcast"

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Broadcast(n_targets)


class GlobalPartitioner(Partitioner):
    """Every record to consumer subtask 0."""

    name = "global"
    pointwise = True

    def targets(self, producer: int, producers: int, consumers: int) -> list[int]:
        return [0]

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Single(1)


class _Custom(Router):
    __slots__ = ("_key", "_partition")

    def __init__(self, n: int, partition: Callable[[Any, int], int], key: Callable[[Any], Any]):
        super().__init__(n)
        self._partition = partition
        self._key = key

    def split(self, records: list[Any]) -> list[list[Any]]:
        n = self.n
        parts: list[list[Any]] = [[] for _ in range(n)]
        appends = [part.append for part in parts]
        for record, target in zip(records, self.targets_of(records), strict=True):
            appends[target](record)
        return parts

    def targets_of(self, records: list[Any]) -> list[int]:
        n = self.n
        partition = self._partition
        key = self._key
        targets = []
        for record in records:
            target = partition(key(record), n)
            if type(target) is not int or not 0 <= target < n:
                raise ValueError(
                    f"custom partitioner returned {target!r} for record {record!r}; "
                    f"it must be an int in [0, {n})"
                )
            targets.append(target)
        return targets


class CustomPartitioner(Partitioner):
    """A user function ``partition(key, num_partitions) -> index`` picks the consumer."""

    name = "custom"

    def __init__(self, partitioner: Any, key_selector: Callable[[Any], Any]) -> None:
        fn = getattr(partitioner, "partition", partitioner)
        if not callable(fn):
            raise TypeError(
                "partition_custom needs a callable partition(key, num_partitions) or an object "
                f"with a partition method, got {partitioner!r}"
            )
        if not callable(key_selector):
            raise TypeError(f"key_selector must be callable, got {key_selector!r}")
        self.partition = fn
        self.key_selector = getattr(key_selector, "get_key", key_selector)

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        return _Custom(n_targets, self.partition, self.key_selector)


class KeySelectorError(TypeError):
    """A ``key_by`` key selector failed or returned a key that cannot be used.

    Raised where records are partitioned, which at parallelism > 1 is the upstream
    operator's subtask; the message names the keyed operator the key_by feeds, because
    the mistake is in its key selector, not in the upstream operator.
    """


def key_error(key: Any, exc: Exception, consumer: str = "") -> KeySelectorError:
    """Build the error for a key selector that returned a key that cannot be used."""
    if not isinstance(exc, UnusableKeyError):
        exc = UnusableKeyError(key, str(exc))
    return KeySelectorError(f"key_by{consumer}: {exc}")


class _KeyGroups(Router):
    """key_by to several consumers: each record goes to the subtask owning its key group.

    The router must find every record's key group, so it computes it once for the whole
    way: when keys repeat, from the memo, and the parts are plain lists (the keyed operator
    finds the key groups in its own memo just as fast); when the memo misses (many keys,
    new keys), each key group is hashed here once and travels with its record and key in a
    :class:`KeyedBatch`, so the keyed operator neither calls the key selector again nor
    hashes a second time. The router switches to KeyedBatches when more than one record in
    :data:`_CARRY_ABOVE` missed, and back after a batch without misses; it starts with
    KeyedBatches, as the first keys are all new. (So the key selector runs twice for a
    record sent in a list, as in Flink, and once for one in a KeyedBatch; a key is hashed
    twice only for the few misses of a list batch.)
    """

    __slots__ = ("_carry", "_index_of", "_key", "_keyed", "_memo", "_target_of", "consumer")

    def __init__(self, n: int, key: Callable[[Any], Any], memo: KeyGroupMemo) -> None:
        super().__init__(n)
        self._key = key
        self._memo = memo
        max_parallelism = memo.max_parallelism
        # key group -> (consumer, index of the group in that consumer's range), as lists.
        self._target_of = [0] * max_parallelism
        self._index_of = [0] * max_parallelism
        for consumer in range(n):
            groups = key_group_range_for_subtask(consumer, n, max_parallelism)
            for group in groups:
                self._target_of[group] = consumer
                self._index_of[group] = group - groups.start
        #: " in front of operator 'name' (uid 'uid')": the keyed consumer, for error messages.
        self.consumer = ""
        # Whether the consumer is a keyed operator (it takes KeyedBatches; a sink on a keyed
        # stream takes lists), and whether parts are KeyedBatches now.
        self._keyed = True
        self._carry = True  # the first keys are all new

    def set_consumer(self, name: str, uid: str, keyed: bool) -> None:
        self.consumer = f" in front of operator {name!r} (uid {uid!r})"
        self._keyed = keyed

    def split(self, records: list[Any]) -> list[Any]:
        if self._carry or self._memo.bypassed:
            parts, misses = self._split_carrying(records)
            if misses == 0:
                self._carry = False
            if not self._keyed:
                return [part.records for part in parts]
            return parts
        return self._split_plain(records)

    def _split_plain(self, records: list[Any]) -> list[Any]:
        parts: list[list[Any]] = [[] for _ in range(self.n)]
        appends = [part.append for part in parts]
        target_of = self._target_of
        key_of = self._key
        memo = self._memo
        get = memo.get
        misses = 0
        for record in records:
            try:
                key = key_of(record)
            except Exception:
                self._raise_selector_error(records)
                raise
            try:
                group = get(key, -1)
            except TypeError:  # unhashable: key_group() raises the error naming it
                group = -1
            if group < 0:
                try:
                    group = memo.key_group(key)
                except TypeError as exc:  # an UnusableKeyError, which names the key
                    raise key_error(key, exc, self.consumer) from None
                misses += 1
            appends[target_of[group]](record)
        memo.note_hits(len(records) - misses)
        if misses * _CARRY_ABOVE > len(records) and self._keyed:
            self._carry = True
        return parts

    def _split_carrying(self, records: list[Any]) -> tuple[list[KeyedBatch], int]:
        """Split into KeyedBatches; return them and the number of keys hashed.

        Carrying is for batches with misses, so the keys are looked up all at once (no
        per-record hit loop as in :meth:`_split_plain`), the misses hashed together."""
        keys, groups = self._keys_and_groups(records)
        parts = [KeyedBatch([], [], []) for _ in range(self.n)]
        add_record = [part.records.append for part in parts]
        add_key = [part.keys.append for part in parts]
        add_index = [part.indexes.append for part in parts]
        target_of = self._target_of
        index_of = self._index_of
        for record, key, group in zip(records, keys, groups, strict=True):
            target = target_of[group]
            add_record[target](record)
            add_key[target](key)
            add_index[target](index_of[group])
        return parts, self._memo.last_misses

    def targets_of(self, records: list[Any]) -> list[int]:
        """The consumer of each record: records with timestamps go as TimestampedBatches,
        whose keyed operator finds the key groups in its own memo."""
        target_of = self._target_of
        return [target_of[group] for group in self._keys_and_groups(records)[1]]

    def _keys_and_groups(self, records: list[Any]) -> tuple[list[Any], list[int]]:
        """Every record's key and key group, the misses hashed at once; a failing key
        selector or an unusable key raises the error naming the keyed operator."""
        key_of = self._key
        try:
            keys = [key_of(record) for record in records]
        except Exception:
            self._raise_selector_error(records)
            raise
        try:
            return keys, self._memo.key_groups(keys)
        except TypeError as exc:  # an UnusableKeyError, which names the key
            raise key_error(getattr(exc, "key", None), exc, self.consumer) from None

    def _raise_selector_error(self, records: list[Any]) -> None:
        """Find the record the key selector fails on and raise the error naming it."""
        key_of = self._key
        for record in records:
            try:
                key_of(record)
            except Exception as exc:
                raise KeySelectorError(
                    f"key_by{self.consumer}: the key selector raised {type(exc).__name__}: "
                    f"{exc} on record {reprlib.repr(record)}"
                ) from exc


class KeyGroupPartitioner(Partitioner):
    """``key_by``: record -> key -> key group -> the consumer subtask owning that group."""

    name = "hash"

    def __init__(self, key_selector: Callable[[Any], Any]) -> None:
        self.key_selector = key_selector
        # One memo per max parallelism, shared by the routers of every producer subtask of
        # the edge (key -> key group is a pure function; they run on one event loop).
        self._memos: dict[int, KeyGroupMemo] = {}

    def router(self, producer: int, n_targets: int, consumers: int, max_parallelism: int) -> Router:
        if n_targets == 1:
            # One consumer owns every key group; the keyed operator checks keys itself.
            return _Single(1)
        memo = self._memos.get(max_parallelism)
        if memo is None:
            memo = self._memos[max_parallelism] = KeyGroupMemo(max_parallelism)
        return _KeyGroups(n_targets, self.key_selector, memo)
