"""Key groups: the unit in which keyed state is partitioned and redistributed.

Mirrors Flink's ``KeyGroupRangeAssignment``. A key maps to a key group
``stable_hash(key) % max_parallelism``; key group ``kg`` is owned by subtask
``kg * parallelism // max_parallelism``; subtask ``i`` owns one contiguous range. Because
state is stored per key group, a snapshot written at one parallelism restores at any other
with the same ``max_parallelism``.

``stable_hash`` must give the same value in every process, so it never uses Python's salted
``hash()``. It must also agree with ``==`` for the keys it accepts (``1 == 1.0 == True`` and
``2**63 == 2.0**63`` are one dict key, so they hash alike), or one key could land in two
key groups.

It is also where a key is accepted or refused, with :class:`UnusableKeyError` saying why and
what to return instead. Accepted are the keys that hash stably *and* that the state
serializer writes and restores as themselves: str, int, float, bool, bytes, None, and tuples
and namedtuples of those (a namedtuple whose class can be found by module and name). NaN is
refused (it is not equal to itself, so it would never find its state again), and so are enum
members and other subclasses of the accepted types, which cannot be restored as themselves,
and strs with lone surrogates, which a checkpoint cannot write.
The callers (the key_by partitioner, the keyed state backend) memoise key -> key group
(:class:`~streamlet.state.key_group_memo.KeyGroupMemo`), so these checks run about once per
distinct key, not per record, and compute the key groups a batch misses in one call of
:func:`assign_to_key_groups`, which does the hash's final mixing for the whole batch at once.

The hash values are part of the checkpoint format (state is stored per key group):
``tests/state/test_key_groups_golden.py`` pins them.
"""

from __future__ import annotations

import enum
import reprlib
import struct
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

from .json_codec import UnserializableValueError, is_namedtuple_class, namedtuple_info
from .row import Row

__all__ = [
    "DEFAULT_MAX_PARALLELISM",
    "UPPER_BOUND_MAX_PARALLELISM",
    "KeyGroupRange",
    "UnusableKeyError",
    "assign_to_key_group",
    "assign_to_key_groups",
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


_CHUNK = 10**600  # 600 digits: str() of a chunk stays under every digit limit (>= 640)


def _decimal(n: int) -> str:
    """``str(n)``, also beyond ``sys.get_int_max_str_digits()`` (a per-process setting that
    must not make a key hashable in one process and not in another)."""
    if n.bit_length() <= 2000:  # at most 603 digits: under every limit Python allows
        return str(n)
    sign, n = ("-", -n) if n < 0 else ("", n)
    chunks: list[int] = []
    while n:
        n, chunk = divmod(n, _CHUNK)
        chunks.append(chunk)
    head = str(chunks.pop())
    return sign + head + "".join(f"{c:0600d}" for c in reversed(chunks))


def _raw_hash(key: Any) -> int:
    t = type(key)
    if t is str:
        try:
            return zlib.crc32(key.encode("utf-8"), 0x5F3759DF)
        except UnicodeEncodeError:
            raise UnusableKeyError(
                key,
                "it holds lone surrogates (as decoding with errors='surrogateescape' "
                "leaves), which a checkpoint cannot write; return the bytes, "
                "key.encode('utf-8', 'surrogateescape'), or a cleaned str instead",
            ) from None
    if t is int or t is bool:
        if -(1 << 63) <= key < (1 << 63):
            return zlib.crc32(_pack_q(key), 0x1B873593)
        return zlib.crc32(_decimal(int(key)).encode(), 0x1B873593)
    if t is float:
        if key.is_integer():
            # An integral float hashes as the int it equals (2.0**63 == 2**63).
            if -(2.0**63) <= key < 2.0**63:
                return zlib.crc32(_pack_q(int(key)), 0x1B873593)
            return zlib.crc32(_decimal(int(key)).encode(), 0x1B873593)
        if key != key:
            raise UnusableKeyError(
                key,
                "NaN is not equal to itself, so every record with a NaN key would start a "
                "state of its own; map NaN to None or a string in the key selector",
            )
        return zlib.crc32(_pack_d(key), 0x2545F491)
    if t is bytes:
        return zlib.crc32(key, 0x68E31DA4)
    if key is None:
        return 0x3C6EF372
    if t is tuple or (isinstance(key, tuple) and _checkpointable_namedtuple(key)):
        # A namedtuple equals the plain tuple of its fields and hashes like it.
        h = 0x345678
        for item in key:
            h = (h * 1000003) ^ _raw_hash(item)
            h &= _MASK64
        return zlib.crc32(_pack_q(h - (1 << 63)), len(key))
    if t is Row:
        # Named rows equal in any field order: hash the (name, value) pairs sorted by name.
        return _raw_hash(key._comparable()) ^ 0x52_4F_57
    raise UnusableKeyError(key, _why_unusable(key))


def _checkpointable_namedtuple(key: tuple[Any, ...]) -> bool:
    t = type(key)
    if not is_namedtuple_class(t):
        return False
    try:
        namedtuple_info(t)
    except UnserializableValueError as exc:
        raise UnusableKeyError(
            key, f"{exc}; define the namedtuple at module level, or return tuple(key)"
        ) from None
    return True


def _why_unusable(key: Any) -> str:
    """Say why ``key`` cannot be a key and what to return instead."""
    if isinstance(key, enum.Enum):
        return (
            "enum members are not supported as keys (the state serializer cannot restore "
            f"them); return its .value ({reprlib.repr(key.value)}) or name "
            f"({key.name!r}) instead"
        )
    for base in (bool, int, float, str, bytes, tuple):
        if isinstance(key, base):
            return (
                f"a subclass of {base.__name__} cannot be restored from a checkpoint as "
                f"itself; return the plain value, {base.__name__}(key), instead"
            )
    if isinstance(key, list):
        return "lists are mutable and unhashable; return a tuple instead, e.g. tuple(key)"
    if isinstance(key, set | frozenset):
        return "return a sorted tuple of the elements instead, e.g. tuple(sorted(key))"
    if isinstance(key, dict):
        return "return a tuple of the values that identify the key instead"
    return "return a str, int, float, bool, bytes, None or a tuple of those instead"


class UnusableKeyError(TypeError):
    """A key that has no stable hash or cannot be checkpointed; ``key`` is the key itself."""

    def __init__(self, key: Any, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"key {reprlib.repr(key)} of type {type(key).__qualname__} cannot be used: "
            f"{reason} (keys must be str, int, float other than NaN, bool, bytes, None, or "
            f"tuples, namedtuples or Rows of those)"
        )


def _whole(key: Any, exc: UnusableKeyError) -> UnusableKeyError:
    """Name the whole key when one of its items was refused."""
    if exc.key is key:
        return exc
    item = exc.key
    return UnusableKeyError(
        key, f"its item {reprlib.repr(item)} of type {type(item).__qualname__}: {exc.reason}"
    )


def stable_hash(key: Any) -> int:
    """Return a 32-bit hash of ``key`` that is identical in every process.

    Equal keys hash alike (``1 == 1.0 == True``, ``2**63 == 2.0**63``, a namedtuple and the
    plain tuple it equals), because state tables are dicts: two equal keys are one key.

    :raises UnusableKeyError: (a TypeError) if ``key`` is not a str, int, float, bool, bytes,
        None or a (named)tuple of those, is NaN, or is an enum member or another subclass
        of those types, which the state serializer cannot restore as itself
    """
    try:
        return _mix(_raw_hash(key))
    except UnusableKeyError as exc:
        raise _whole(key, exc) from None


def assign_to_key_group(key: Any, max_parallelism: int) -> int:
    """Return the key group of ``key``.

    :raises UnusableKeyError: if ``key`` cannot be a key (see :func:`stable_hash`)
    """
    try:
        return _mix(_raw_hash(key)) % max_parallelism
    except UnusableKeyError as exc:
        raise _whole(key, exc) from None


def assign_to_key_groups(keys: list[Any], max_parallelism: int) -> list[int]:
    """Return the key group of every key in ``keys``, in order: ``assign_to_key_group`` for a
    batch, with the same values, at about a third of its cost per key.

    The CRC of each key is taken per key (C calls; a batch of only ints or only strs takes
    a comprehension, other batches the general per-key path), and the hash's final mixing,
    ten integer operations per key in Python, runs once over the whole batch: the 32-bit
    values sit in 64-bit lanes of one big integer, where a product with a 32-bit constant
    cannot carry into the next lane and a mask after each step drops what a shift moved
    across lanes.

    :raises UnusableKeyError: for the first key that cannot be a key (see :func:`stable_hash`)
    """
    if not keys:
        return []
    types = set(map(type, keys))
    raw: list[int] | None = None
    if len(types) == 1:
        only = types.pop()
        try:
            if only is int:
                raw = [_crc32(_pack_q(key), _INT_SEED) for key in keys]
            elif only is str:
                raw = [_crc32(key.encode(), _STR_SEED) for key in keys]
        except (struct.error, UnicodeEncodeError):
            raw = None  # an int beyond 64 bits or a str that cannot be written: per key
    if raw is None:
        raw = [_raw_hash_of_whole(key) for key in keys]
    return _mix_all(raw, max_parallelism)


_crc32 = zlib.crc32
_INT_SEED = 0x1B873593
_STR_SEED = 0x5F3759DF
#: The masks cover this many 64-bit lanes; a longer batch grows them (see _lane_masks).
_lanes = 0
_LOW32 = 0
_LOW8 = 0


#: For each power of two p up to 256, the byte table b -> b % p.
_LOW_BITS = {1 << k: bytes(b & ((1 << k) - 1) for b in range(256)) for k in range(9)}


def _lane_masks(n: int) -> tuple[int, int]:
    """Masks of the low 32 and low 8 bits of each of at least ``n`` 64-bit lanes (``&`` of
    two non-negative ints is as long as the shorter one, so a longer mask costs nothing)."""
    global _lanes, _LOW32, _LOW8
    if n > _lanes:
        _lanes = max(n, 2 * _lanes, 4096)
        _LOW32 = int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * _lanes, "little")
        _LOW8 = int.from_bytes(b"\xff\0\0\0\0\0\0\0" * _lanes, "little")
    return _LOW32, _LOW8


def _mix_all(raw: list[int], max_parallelism: int) -> list[int]:
    """``[_mix(h) % max_parallelism for h in raw]``, computed lane-parallel (see above)."""
    n = len(raw)
    low32, low8 = _lane_masks(n)
    h = int.from_bytes(array("Q", raw).tobytes(), "little")
    h = (h ^ (h >> 16)) & low32
    h = (h * 0x85EBCA6B) & low32
    h = (h ^ (h >> 13)) & low32
    h = (h * 0xC2B2AE35) & low32
    h = (h ^ (h >> 16)) & low32
    if max_parallelism <= 256 and max_parallelism & (max_parallelism - 1) == 0:
        # A power of two up to 256 (128 is the default): the key group is the low bits of
        # each lane's low byte.
        low_bytes = (h & low8).to_bytes(8 * n, "little")[::8]
        return list(low_bytes.translate(_LOW_BITS[max_parallelism]))
    lanes = array("Q")
    lanes.frombytes(h.to_bytes(8 * n, "little"))
    return [value % max_parallelism for value in lanes.tolist()]


def _raw_hash_of_whole(key: Any) -> int:
    try:
        return _raw_hash(key)
    except UnusableKeyError as exc:
        raise _whole(key, exc) from None


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
