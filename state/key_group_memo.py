"""A bounded memo of key -> key group that does not thrash, and steps aside when it does
not pay.

Computing a key group costs about 180 ns per key when a whole batch is hashed at once
(:func:`~streamlet.state.key_groups.assign_to_key_groups`), a dict lookup 30 ns while the
dict fits in the CPU's caches. So the key_by partitioner and the keyed state backend look a
batch's keys up here and hash only the misses, in one call.

What the memo must not do is what it once did: hold 100,000 keys and clear itself when
full. With more distinct keys than that, seen in turn, every key was evicted before it came
back, so every record paid for its hash *and* for the lookup and insert (a keyed count fell
from 953 to 2,722 ns per record between 100,000 and 150,000 keys). Now:

- a full memo keeps what it holds and stops adding, so with ``k`` keys seen evenly,
  ``limit / k`` of the lookups still hit and the cost grows smoothly with ``k``;
- over every ``limit`` lookups of a full memo, if fewer than half hit, the memo costs more
  than it saves (a lookup in a dict larger than the caches costs as much as the hash, and
  misses pay both), so it is *bypassed*: batches are hashed whole for the next
  ``8 * limit`` keys. Then it starts afresh: cleared, refilled by the keys that come now,
  and judged again. The probe costs about one lookup and insert per key for one key in
  nine, and it is how a memo whose keys went stale (keys that are timestamps or session
  ids) comes back to life.

The bound (250,000 keys, about 20 MB) is about what a lookup still pays for: measured with
shuffled keys, a larger memo was no faster at 300,000 keys and slower at 1,000,000.
"""

from __future__ import annotations

from typing import Any

from .key_groups import (
    KeyGroupRange,
    assign_to_key_group,
    assign_to_key_groups,
    check_parallelism,
)

__all__ = ["DEFAULT_KEY_MEMO_SIZE", "KeyGroupMemo", "KeyOutOfRangeError"]

#: Entries a memo holds at most (about 20 MB with int keys).
DEFAULT_KEY_MEMO_SIZE = 250_000
#: A bypassed memo stays bypassed for this many times ``limit`` keys.
_BYPASS_ROUNDS = 8

# A miss reads as -1, so that min() over a batch's key groups finds misses at C speed
# (None in a list of ints compares each int with None, several times slower).
_MISS = -1


class KeyOutOfRangeError(ValueError):
    """A key whose key group is outside the memo's range (the caller names its operator)."""

    def __init__(self, key: Any, key_group: int) -> None:
        self.key = key
        self.key_group = key_group
        super().__init__(f"key {key!r} belongs to key group {key_group}")


class KeyGroupMemo:
    """key -> index of its key group in ``key_groups``, bounded, for whole batches of keys.

    The values are what the state tables are indexed by (``key_group - key_groups.start``;
    the key group itself for the whole range). Only keys that
    :func:`~streamlet.state.key_groups.assign_to_key_groups` accepted and whose key group is
    in the range get in, so a hit needs no check.

    :param max_parallelism: the number of key groups
    :param limit: the most entries held
    :param key_groups: the range of key groups the caller owns (default: all)
    :raises ValueError: if an argument is out of range
    """

    __slots__ = (
        "_bypass_left",
        "_end",
        "_groups",
        "_limit",
        "_lookups",
        "_misses",
        "_start",
        "get",
        "last_misses",
        "max_parallelism",
    )

    def __init__(
        self,
        max_parallelism: int,
        limit: int = DEFAULT_KEY_MEMO_SIZE,
        key_groups: KeyGroupRange | None = None,
    ) -> None:
        check_parallelism(1, max_parallelism)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        if key_groups is None:
            key_groups = KeyGroupRange(0, max_parallelism - 1)
        self.max_parallelism = max_parallelism
        self._start = key_groups.start
        self._end = key_groups.end
        self._limit = limit
        self._groups: dict[Any, int] = {}
        #: ``get(key, -1)``: the memo's dict lookup itself, for loops that try a hit per
        #: record before they fall back to :meth:`key_groups` (a miss is -1; the dict is
        #: only ever cleared, never replaced, so the bound method stays valid).
        self.get = self._groups.get
        #: Keys the last :meth:`key_groups` call had to hash.
        self.last_misses = 0
        # Lookups and misses of the current window of a full memo (see the module docstring).
        self._lookups = 0
        self._misses = 0
        # Keys still to hash without the memo; 0 while it is in use.
        self._bypass_left = 0

    @property
    def bypassed(self) -> bool:
        """Whether the memo is bypassed now (it did not pay; see the module docstring)."""
        return self._bypass_left > 0

    def key_groups(self, keys: list[Any]) -> list[int]:
        """Return the key group index of each of ``keys``, in order.

        :raises UnusableKeyError: (a TypeError) for the first key that cannot be a key
        :raises KeyOutOfRangeError: for the first key whose key group is not in the range
        """
        if self._bypass_left > 0:
            self._bypass_left -= len(keys)
            if self._bypass_left <= 0:
                self._bypass_left = 0
                self._groups.clear()  # start afresh: refilled by the keys that come now
            self.last_misses = len(keys)
            return self._indexes(keys, assign_to_key_groups(keys, self.max_parallelism))
        get = self._groups.get
        try:
            groups = [get(key, _MISS) for key in keys]
        except TypeError:  # an unhashable key: assign_to_key_groups names it
            groups = [_MISS] * len(keys)
        if groups and min(groups) < 0:
            self._fill(keys, groups)
        else:
            self.last_misses = 0
            self._count(len(keys), 0)
        return groups

    def note_hits(self, hits: int) -> None:
        """Count ``hits`` lookups that a caller made itself through :attr:`get` and that hit
        (they weigh in when the memo judges whether it pays)."""
        self._count(hits, 0)

    def key_group(self, key: Any) -> int:
        """Return the key group index of one key (the memo's per-key form).

        :raises UnusableKeyError: (a TypeError) if ``key`` cannot be a key
        :raises KeyOutOfRangeError: if its key group is not in the range
        """
        try:
            index = self._groups.get(key, _MISS)
        except TypeError:  # unhashable: assign_to_key_group names it
            index = _MISS
        if index >= 0:
            return index
        group = assign_to_key_group(key, self.max_parallelism)
        if not self._start <= group <= self._end:
            raise KeyOutOfRangeError(key, group)
        index = group - self._start
        if len(self._groups) < self._limit:
            self._groups[key] = index
        else:
            self._count(1, 1)
        return index

    def _indexes(self, keys: list[Any], groups: list[int]) -> list[int]:
        """Check computed key groups against the range; return them as indexes."""
        start, end = self._start, self._end
        if groups and (min(groups) < start or max(groups) > end):
            bad = next(i for i, group in enumerate(groups) if not start <= group <= end)
            raise KeyOutOfRangeError(keys[bad], groups[bad])
        return [group - start for group in groups] if start else groups

    def _fill(self, keys: list[Any], groups: list[int]) -> None:
        # Repeated keys of a batch are hashed as often as they come: removing them first
        # cost more at millions of keys (each new) than hashing them saves while warming up.
        if max(groups) < 0:  # all missed (many keys, each new): no positions to track
            missing = keys
            groups[:] = computed = self._indexes(
                keys, assign_to_key_groups(keys, self.max_parallelism)
            )
        else:
            positions = [i for i, group in enumerate(groups) if group < 0]
            missing = [keys[i] for i in positions]
            computed = self._indexes(missing, assign_to_key_groups(missing, self.max_parallelism))
            for i, index in zip(positions, computed, strict=True):
                groups[i] = index
        self.last_misses = len(missing)
        table = self._groups
        room = self._limit - len(table)
        if room > 0:
            if room >= len(missing):
                table.update(zip(missing, computed, strict=True))
            else:
                table.update(zip(missing[:room], computed[:room], strict=True))
            return
        self._count(len(keys), len(missing))

    def _count(self, lookups: int, misses: int) -> None:
        """Judge a full memo over windows of ``limit`` lookups (see the module docstring)."""
        if len(self._groups) < self._limit:
            return
        self._lookups += lookups
        self._misses += misses
        if self._lookups >= self._limit:
            if self._misses * 2 > self._lookups:
                self._bypass_left = _BYPASS_ROUNDS * self._limit  # it does not pay
            self._lookups = self._misses = 0

    def __len__(self) -> int:
        return len(self._groups)
