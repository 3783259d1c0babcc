"""Key groups: the unit in which keyed state is partitioned and redistributed.

Mirrors Flink's ``KeyGroupRangeAssignment``. A key maps to a key group
``stable_hash(key) % max_parallelism``; key group ``kg`` is owned by subtask
``kg * parallelism // max_parallelism``; subtask ``i`` owns one contiguous range. Because
state is stored per key group, a snapshot written at one parallelism restores at any other
with the same ``max_parallelism``.

``stable_hash`` must give the same value in every process, so it never uses Python's salted
``hash()``. It must also agree with ``==`` for the keys it accepts (``1 == 1.0 == True`` are
one dict key, so they hash alike), or one key could land in two key groups.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_PARALLELISM",
    "UPPER_BOUND_MAX_PARALLELISM",
    "KeyGroupRange",
    "assign_to_key_group",
    "check_parallelism",
    "key_group_range_for_subtask",
    "stable_hash",
    "subtask_for_key_group",
]

DEFAULT_MAX_PARALLELISM = 128
UPPER_BOUND_MAX_PARALLELISM = 1 << 15

_pack_q = struct.Struct("<q").pack
_pack_d = struct.Struct("<d").pack
_MASK64 = (1 << 64) - 1


def _mix(h: int) -> int:
    # murmur3's 32-bit finalizer: spreads nearby inputs (0, 1, 2, ...) over all key groups.
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def _raw_hash(key: Any) -> int:
    t = type(key)
    if t is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"), 0x5F3759DF)
    if t is int or t is bool:
        if -(1 << 63) <= key < (1 << 63):
            return zlib.crc32(_pack_q(key), 0x1B873593)
        return zlib.crc32(str(int(key)).encode(), 0x1B873593)
    if t is float:
        if key.is_integer() and -(2.0**63) <= key < 2.0**63:
            return zlib.crc32(_pack_q(int(key)), 0x1B873593)
        return zlib.crc32(_pack_d(key), 0x2545F491)
    if t is bytes:
        return zlib.crc32(key, 0x68E31DA4)
    if key is None:
        return 0x3C6EF372
    if t is tuple:
        h = 0x345678
        for item in key:
            h = (h * 1000003) ^ _raw_hash(item)
            h &= _MASK64
        return zlib.crc32(_pack_q(h - (1 << 63)), len(key))
    if isinstance(key, str | int | float | bytes | tuple):
        # Subclasses (IntEnum, str enums, namedtuples): hash the plain value they equal.
        for base in (bool, int, float, str, bytes, tuple):
            if isinstance(key, base):
                return _raw_hash(base(key) if base is not tuple else tuple(key))
    raise TypeError(
        f"key of type {t.__name__} has no stable hash: keys must be str, int, float, bool, "
        f"bytes, None or tuples of those, got {key!r}"
    )


def stable_hash(key: Any) -> int:
    """Return a 32-bit hash of ``key`` that is identical in every process.

    :raises TypeError: if ``key`` is not a str, int, float, bool, bytes, None or a tuple of
        those (an unhashable or process-dependent key)
    """
    return _mix(_raw_hash(key))


def assign_to_key_group(key: Any, max_parallelism: int) -> int:
    """Return the key group of ``key``.

    :raises TypeError: if ``key`` has no stable hash (see :func:`stable_hash`)
    """
    return _mix(_raw_hash(key)) % max_parallelism


def subtask_for_key_group(key_group: int, parallelism: int, max_parallelism: int) -> int:
    """Return the index of the subtask that owns ``key_group``."""
    return key_group * parallelism // max_parallelism


@dataclass(frozen=True, slots=True)
class KeyGroupRange:
    """An inclusive range of key groups ``[start, end]``; empty when ``end < start``."""

    start: int
    end: int

    def __contains__(self, key_group: object) -> bool:
        return isinstance(key_group, int) and self.start <= key_group <= self.end

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return max(0, self.end - self.start + 1)


def key_group_range_for_subtask(
    subtask_index: int, parallelism: int, max_parallelism: int
) -> KeyGroupRange:
    """Return the key groups subtask ``subtask_index`` owns at ``parallelism``.

    The inverse of :func:`subtask_for_key_group`: every key group ``kg`` in the range has
    ``subtask_for_key_group(kg, parallelism, max_parallelism) == subtask_index``.
    """
    check_parallelism(parallelism, max_parallelism)
    if not 0 <= subtask_index < parallelism:
        raise ValueError(f"subtask_index must be in [0, {parallelism}), got {subtask_index}")
    start = (subtask_index * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask_index + 1) * max_parallelism - 1) // parallelism
    return KeyGroupRange(start, end)


def check_parallelism(parallelism: int, max_parallelism: int) -> None:
    """Validate a (parallelism, max_parallelism) pair.

    :raises TypeError: if either is not an int
    :raises ValueError: if ``parallelism < 1``, ``max_parallelism`` is outside
        ``[1, 32768]``, or ``parallelism > max_parallelism``
    """
    for name, value in (("parallelism", parallelism), ("max_parallelism", max_parallelism)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if not 1 <= max_parallelism <= UPPER_BOUND_MAX_PARALLELISM:
        raise ValueError(
            f"max_parallelism must be in [1, {UPPER_BOUND_MAX_PARALLELISM}], got {max_parallelism}"
        )
    if parallelism < 1:
        raise ValueError(f"parallelism must be >= 1, got {parallelism}")
    if parallelism > max_parallelism:
        raise ValueError(f"parallelism {parallelism} exceeds max_parallelism {max_parallelism}")
