"""Key group math: ownership, bounds, and a hash that is stable across processes."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
from collections import namedtuple
from typing import Any, NamedTuple

import pytest

from streamlet.state.key_groups import (
    DEFAULT_MAX_PARALLELISM,
    KeyGroupRange,
    UnusableKeyError,
    assign_to_key_group,
    check_parallelism,
    key_group_range_for_subtask,
    stable_hash,
    subtask_for_key_group,
)

MAX_PARALLELISMS = [DEFAULT_MAX_PARALLELISM, 13, 1, 7, 20, 1000]


@pytest.mark.parametrize("max_parallelism", MAX_PARALLELISMS)
def test_every_key_group_owned_by_exactly_one_subtask(max_parallelism: int) -> None:
    for parallelism in range(1, min(20, max_parallelism) + 1):
        owners: dict[int, int] = {}
        previous_end = -1
        for subtask in range(parallelism):
            kg_range = key_group_range_for_subtask(subtask, parallelism, max_parallelism)
            # Contiguous, in order, never empty when parallelism <= max_parallelism.
            assert kg_range.start == previous_end + 1
            assert len(kg_range) >= 1
            previous_end = kg_range.end
            for kg in kg_range:
                assert kg not in owners
                owners[kg] = subtask
                assert subtask_for_key_group(kg, parallelism, max_parallelism) == subtask
        assert sorted(owners) == list(range(max_parallelism))


@pytest.mark.parametrize("max_parallelism", MAX_PARALLELISMS)
def test_ranges_are_near_equal(max_parallelism: int) -> None:
    for parallelism in range(1, min(20, max_parallelism) + 1):
        sizes = {
            len(key_group_range_for_subtask(i, parallelism, max_parallelism))
            for i in range(parallelism)
        }
        assert max(sizes) - min(sizes) <= 1


def test_key_group_range_membership_and_iteration() -> None:
    kg_range = KeyGroupRange(3, 6)
    assert list(kg_range) == [3, 4, 5, 6]
    assert len(kg_range) == 4
    assert 3 in kg_range and 6 in kg_range
    assert 2 not in kg_range and 7 not in kg_range and "3" not in kg_range
    assert len(KeyGroupRange(5, 4)) == 0
    assert list(KeyGroupRange(5, 4)) == []


@pytest.mark.parametrize(
    ("subtask", "parallelism", "max_parallelism", "error", "message"),
    [
        (-1, 4, 128, ValueError, r"^subtask_index must be in \[0, 4\), got -1$"),
        (4, 4, 128, ValueError, r"^subtask_index must be in \[0, 4\), got 4$"),
        (0, 0, 128, ValueError, r"^parallelism must be >= 1, got 0$"),
        (0, 129, 128, ValueError, r"^parallelism 129 exceeds max_parallelism 128$"),
        (0, 1, 0, ValueError, r"^max_parallelism must be in \[1, 32768\], got 0$"),
        (0, 1, 32769, ValueError, r"^max_parallelism must be in \[1, 32768\], got 32769$"),
        (0, 2.0, 128, TypeError, r"^parallelism must be an int, got 2.0$"),
        (0, True, 128, TypeError, r"^parallelism must be an int, got True$"),
        (0, 1, "128", TypeError, r"^max_parallelism must be an int, got '128'$"),
    ],
)
def test_key_group_range_bounds_errors(
    subtask: int, parallelism: int, max_parallelism: int, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        key_group_range_for_subtask(subtask, parallelism, max_parallelism)


def test_check_parallelism_accepts_equal_parallelism() -> None:
    check_parallelism(128, 128)
    check_parallelism(1, 1)


def test_equal_keys_hash_alike() -> None:
    assert stable_hash(1) == stable_hash(1.0) == stable_hash(True)
    assert stable_hash(0) == stable_hash(0.0) == stable_hash(-0.0) == stable_hash(False)
    assert stable_hash((1, "a")) == stable_hash((1.0, "a")) == stable_hash((True, "a"))
    assert assign_to_key_group(1, 128) == assign_to_key_group(1.0, 128)


Point = namedtuple("Point", "x y")


class Typed(NamedTuple):
    name: str
    n: int


class Color(enum.IntEnum):
    RED = 1


class Shape(str, enum.Enum):  # noqa: UP042 - the pre-3.11 spelling users still write
    ROUND = "round"


class Size(enum.StrEnum):
    BIG = "big"


class Plain(enum.Enum):
    A = "a"


class UserId(str):
    pass


@pytest.mark.parametrize(
    "equal",
    [
        (2**63, 2.0**63),
        (-(2**63) - 2048, -(2.0**63) - 2048),
        (2**64, 2.0**64),
        (int(1e300), 1e300),
        ((2**63, "a"), (2.0**63, "a")),
        (Point(1, "a"), (1, "a"), (1.0, "a")),
        (Typed("k", 2), ("k", 2), Point("k", 2.0)),
        ((Point(1, 2), 3), ((1, 2), 3)),
    ],
)
def test_equal_keys_share_a_key_group_beyond_64_bits_and_for_namedtuples(
    equal: tuple[Any, ...],
) -> None:
    # State tables are dicts: keys that are == are one key, so they must hash alike.
    assert all(k == equal[0] for k in equal)
    assert len({stable_hash(k) for k in equal}) == 1
    assert len({assign_to_key_group(k, 128) for k in equal}) == 1


def test_ints_beyond_the_str_digit_limit_hash_as_if_there_were_none() -> None:
    big = 7**6000  # 5071 digits: str() refuses it under the default limit of 4300
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        h = stable_hash(big)
        expected = [stable_hash(k) for k in (10**700 + 1, -(10**700) - 1)]
    finally:
        sys.set_int_max_str_digits(limit)
    assert stable_hash(big) == h
    sys.set_int_max_str_digits(640)  # the lowest limit Python allows
    try:
        assert [stable_hash(k) for k in (10**700 + 1, -(10**700) - 1)] == expected
        assert stable_hash(float(10**300)) == stable_hash(int(float(10**300)))
    finally:
        sys.set_int_max_str_digits(limit)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (float("nan"), r"^key nan of type float cannot be used: NaN is not equal to itself"),
        (("a", float("nan")), r"^key \('a', nan\) of type tuple .*: its item nan of type float"),
        (Point(float("nan"), 1), r"^key Point\(x=nan, y=1\) .*: its item nan"),
        (Color.RED, r"^key <Color.RED: 1> of type Color .*\.value \(1\) or name \('RED'\)"),
        (Shape.ROUND, r"^key <Shape.ROUND: 'round'> of type Shape .*\.value \('round'\)"),
        (Plain.A, r"^key <Plain.A: 'a'> of type Plain cannot be used: enum members"),
        (Size.BIG, r"^key <Size.BIG: 'big'> of type Size cannot be used: enum members"),
        ((1, Color.RED), r"^key \(1, <Color.RED: 1>\) of type tuple .*its item <Color.RED"),
        (UserId("u"), r"^key 'u' of type UserId .*subclass of str .*str\(key\), instead"),
        ([1, 2], r"^key \[1, 2\] of type list .*return a tuple instead, e.g. tuple\(key\)"),
        ("a\udcff", r"^key 'a\\udcff' of type str cannot be used: it holds lone surrogates"),
        ({1}, r"^key \{1\} of type set .*tuple\(sorted\(key\)\)"),
        ({"a": 1}, r"^key \{'a': 1\} of type dict cannot be used: return a tuple"),
    ],
)
def test_unusable_keys_are_refused_saying_why_and_what_to_return(key: Any, message: str) -> None:
    for check in (stable_hash, lambda k: assign_to_key_group(k, 128)):
        with pytest.raises(UnusableKeyError, match=message) as info:
            check(key)
        assert info.value.key is key
        assert isinstance(info.value, TypeError)


def test_namedtuple_that_cannot_be_restored_is_refused() -> None:
    Local = namedtuple("Local", "x")  # this module has no attribute Local to find it by
    with pytest.raises(
        UnusableKeyError,
        match=r"^key Local\(x=1\) .*cannot be found by its module and qualified name.*"
        r"define the namedtuple at module level, or return tuple\(key\)",
    ):
        stable_hash(Local(1))


def test_different_keys_spread_over_key_groups() -> None:
    groups = {assign_to_key_group(i, 128) for i in range(1000)}
    assert len(groups) == 128
    groups = {assign_to_key_group(f"user-{i}", 128) for i in range(1000)}
    assert len(groups) == 128


@pytest.mark.parametrize("key", [[1], {"a": 1}, {1}, object(), 1j])
def test_keys_without_stable_hash_raise_type_error(key: object) -> None:
    with pytest.raises(UnusableKeyError, match=r"^key .* cannot be used: "):
        stable_hash(key)


_KEYS_EXPR = r"""[
    "", "a", "user-42", "\u00e9t\u00e9 \u2603", 0, 1, -1, 2**40, -(2**70), 3.5, -0.25, 1e300,
    float("inf"), b"", b"\x00\xff", None, True, False, (), (1, "a"), ((1, 2), (b"x", None)),
    ("x", 2.5, -3),
]"""
_KEYS_SCRIPT = f"""
import json
from streamlet.state.key_groups import stable_hash, assign_to_key_group
keys = {_KEYS_EXPR}
print(json.dumps([[stable_hash(k), assign_to_key_group(k, 128)] for k in keys]))
"""
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _hashes_with_seed(seed: str) -> list[list[int]]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, "-c", _KEYS_SCRIPT],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=_REPO,
    )
    return json.loads(out.stdout)


def test_stable_hash_is_identical_across_processes_and_hash_seeds() -> None:
    results = [_hashes_with_seed(seed) for seed in ("0", "1", "random", "12345")]
    assert all(r == results[0] for r in results)
    here = [[stable_hash(k), assign_to_key_group(k, 128)] for k in eval(_KEYS_EXPR)]
    assert here == results[0]
    assert all(0 <= h < 2**32 and 0 <= kg < 128 for h, kg in here)
