"""Keys in the form Flink partitions on, with streamlet's key equality."""

from __future__ import annotations

from typing import Any

__all__ = ["normalise_key"]


def normalise_key(key: Any) -> Any:
    """A key in the form Flink hashes, with streamlet's key equality.

    Flink partitions on the serialized key, so ``1``, ``1.0`` and ``True`` (one key in
    streamlet, equal in Python) would be three keys. Booleans and integral floats become
    ints, recursively inside tuples, so equal keys stay one key.
    """
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, float) and key.is_integer():
        return int(key)
    if isinstance(key, tuple):
        return tuple(normalise_key(k) for k in key)
    return key
