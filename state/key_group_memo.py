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

from .key_groups import assign_to_key_group, assign_to_key_groups, check_parallelism

__all__ = ["DEFAULT_KEY_MEMO_SIZE", "KeyGroupMemo"]

#: Entries a memo holds at most (about 20 MB with int keys).
DEFAULT_KEY_MEMO_SIZE = 250_000
#: A bypassed memo stays bypassed for this many times ``limit`` keys.
_BYPASS_ROUNDS = 8

# A miss reads as -1, so that min() over a batch's key groups finds misses at C speed
# (None in a list of ints compares each int with None, several times slower).
_MISS = -1


class KeyGroupMemo:
    """key -> key group for one ``max_parallelism``, bounded, for whole batches of keys.

    Only keys that :func:`~streamlet.state.key_groups.assign_to_key_groups` accepted get
    in, so a hit needs no check.

    :param max_parallelism: the number of key groups
    :param limit: the most entries held
    :raises ValueError: if either is out of range
    """

    __slots__ = (
        "_bypass_left",
        "_groups",
        "_limit",
        "_lookups",
        "_misses",
        "get",
        "max_parallelism",
    )

    def __init__(self, max_parallelism: int, limit: int = DEFAULT_KEY_MEMO_SIZE) -> None:
        check_parallelism(1, max_parallelism)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        self.max_parallelism = max_parallelism
        self._limit = limit
        self._groups: dict[Any, int] = {}
        #: ``get(key, -1)``: the memo's dict lookup itself, for loops that try a hit per
        #: record before they fall back to :meth:`key_groups` (a miss is -1; the dict is
        #: only ever cleared, never replaced, so the bound method stays valid).
        self.get = self._groups.get
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
        """Return the key group of each of ``keys``, in order.

        :raises UnusableKeyError: (a TypeError) for the first key that cannot be a key
        """
        if self._bypass_left > 0:
            self._bypass_left -= len(keys)
            if self._bypass_left <= 0:
                self._bypass_left = 0
                self._groups.clear()  # start afresh: refilled by the keys that come now
            return assign_to_key_groups(keys, self.max_parallelism)
        get = self._groups.get
        try:
            groups = [get(key, _MISS) for key in keys]
        except TypeError:  # an unhashable key: assign_to_key_groups names it
            groups = [_MISS] * len(keys)
        if len(self._groups) >= self._limit:
            self._lookups += len(keys)
        if groups and min(groups) < 0:
            self._fill(keys, groups)
        return groups

    def note_hits(self, hits: int) -> None:
        """Count ``hits`` lookups that a caller made itself through :attr:`get` and that hit
        (they weigh in when the memo judges whether it pays)."""
        if len(self._groups) >= self._limit:
            self._lookups += hits

    def key_group(self, key: Any) -> int:
        """Return the key group of one key (the memo's per-key form).

        :raises UnusableKeyError: (a TypeError) if ``key`` cannot be a key
        """
        try:
            group = self._groups.get(key, _MISS)
        except TypeError:  # unhashable: assign_to_key_group names it
            group = _MISS
        if group < 0:
            group = assign_to_key_group(key, self.max_parallelism)
            if len(self._groups) < self._limit:
                self._groups[key] = group
        return group

    def _fill(self, keys: list[Any], groups: list[int]) -> None:
        if max(groups) < 0:  # all missed (many keys, each new): no positions to track
            missing = keys
            groups[:] = computed = assign_to_key_groups(keys, self.max_parallelism)
        else:
            positions = [i for i, group in enumerate(groups) if group < 0]
            missing = [keys[i] for i in positions]
            computed = assign_to_key_groups(missing, self.max_parallelism)
            for i, group in zip(positions, computed, strict=True):
                groups[i] = group
        table = self._groups
        room = self._limit - len(table)
        if room > 0:
            if room >= len(missing):
                table.update(zip(missing, computed, strict=True))
            else:
                table.update(zip(missing[:room], computed[:room], strict=True))
            return
        self._misses += len(missing)
        if self._lookups >= self._limit:
            if self._misses * 2 > self._lookups:
                self._bypass_left = _BYPASS_ROUNDS * self._limit  # it does not pay
            self._lookups = self._misses = 0

    def __len__(self) -> int:
        return len(self._groups)
