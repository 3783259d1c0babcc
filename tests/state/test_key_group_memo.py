"""``KeyGroupMemo``: right values always, and a bound that does not thrash.

The memo once cleared itself when full, so with more distinct keys than its bound, seen in
turn, every key was hashed again on every sighting. These tests count the keys hashed
(``assign_to_key_groups`` calls, patched) to pin the policy: a full memo keeps its keys,
steps aside when it does not pay, and comes back when the keys it holds went stale.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.state import key_group_memo
from streamlet.state.key_group_memo import KeyGroupMemo
from streamlet.state.key_groups import UnusableKeyError, assign_to_key_group

LIMIT = 1000


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the keys hashed through the memo's batch path (one number per call)."""
    counts: list[int] = []
    real = key_group_memo.assign_to_key_groups

    def counting(keys: list[Any], max_parallelism: int) -> list[int]:
        counts.append(len(keys))
        return real(keys, max_parallelism)

    monkeypatch.setattr(key_group_memo, "assign_to_key_groups", counting)
    return counts


def _feed(memo: KeyGroupMemo, keys: list[Any], batch: int = 100) -> None:
    for start in range(0, len(keys), batch):
        part = keys[start : start + batch]
        assert memo.key_groups(part) == [assign_to_key_group(k, 128) for k in part]


def test_values_are_right_on_hits_and_misses(hashed: list[int]) -> None:
    memo = KeyGroupMemo(128, LIMIT)
    keys = ["a", 1, (2, "b"), 1.5, None, "a", 1]
    assert memo.key_groups(keys) == [assign_to_key_group(k, 128) for k in keys]
    assert memo.key_groups(keys) == [assign_to_key_group(k, 128) for k in keys]
    assert sum(hashed) == len(keys)  # the misses of the first batch; the second one hit
    assert memo.key_group("a") == assign_to_key_group("a", 128)


def test_a_full_memo_keeps_its_keys_instead_of_starting_over(hashed: list[int]) -> None:
    memo = KeyGroupMemo(128, LIMIT)
    keys = list(range(LIMIT * 3 // 2))  # more keys than the memo holds, seen in turn
    _feed(memo, keys)
    first = sum(hashed)
    for _ in range(3):
        _feed(memo, keys)
    assert len(memo) == LIMIT
    # Each later round hashes only the keys beyond the bound: clear-when-full hashed all.
    assert (sum(hashed) - first) == 3 * (len(keys) - LIMIT)
    assert not memo.bypassed


def test_a_memo_that_does_not_pay_is_bypassed_then_tried_afresh(hashed: list[int]) -> None:
    memo = KeyGroupMemo(128, LIMIT)
    _feed(memo, list(range(LIMIT)))  # full
    # Then only new keys: nothing hits, so after one window the memo steps aside.
    _feed(memo, list(range(LIMIT, 2 * LIMIT)))
    assert memo.bypassed
    # While bypassed, values stay right and nothing is looked up or added.
    _feed(memo, list(range(2 * LIMIT, 9 * LIMIT)))
    assert memo.bypassed
    _feed(memo, list(range(9 * LIMIT, 10 * LIMIT)))
    assert not memo.bypassed
    # Tried afresh: it was cleared and now holds the keys that come now.
    hot = list(range(100))
    _feed(memo, hot)
    before = sum(hashed)
    _feed(memo, hot * 5)
    assert sum(hashed) == before


def test_a_full_memo_that_still_hits_stays_in_use() -> None:
    memo = KeyGroupMemo(128, LIMIT)
    keys = list(range(LIMIT * 3 // 2))  # two thirds of the lookups hit
    for _ in range(10):
        _feed(memo, keys)
    assert not memo.bypassed


def test_unusable_keys_are_refused_and_never_memoised() -> None:
    memo = KeyGroupMemo(128, LIMIT)
    with pytest.raises(UnusableKeyError, match="lists are mutable"):
        memo.key_groups([1, [2], 3])
    with pytest.raises(UnusableKeyError, match="NaN"):
        memo.key_groups([float("nan")])
    with pytest.raises(UnusableKeyError, match="NaN"):
        memo.key_group(float("nan"))
    assert len(memo) == 0


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_the_limit_must_be_a_positive_int(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        KeyGroupMemo(128, limit)
