"""``assign_to_key_groups``: the batch form of ``assign_to_key_group``, value for value.

The values are part of the checkpoint format (state is stored per key group), so the batch
form must agree with the per-key one for every accepted key and every max parallelism, on
the fast paths (a batch of only ints or only strs) and the general one alike, and refuse the
same keys with the same errors.
"""

from __future__ import annotations

import enum
import random
from collections import namedtuple
from typing import Any

import pytest

from streamlet.state.key_groups import UnusableKeyError, assign_to_key_group, assign_to_key_groups

Point = namedtuple("Point", "x y")

MAX_PARALLELISMS = [1, 2, 7, 13, 100, 128, 256, 257, 512, 1000, 32768]


def _ints() -> list[int]:
    rng = random.Random(7)
    edges = [0, 1, -1, 2**31, 2**32, 2**63 - 1, -(2**63)]
    return edges + [rng.randrange(-(2**63), 2**63) for _ in range(3000)] + list(range(2000))


def _strs() -> list[str]:
    rng = random.Random(8)
    return ["", "a", "é", "日本", "\U0001f600"] + [f"user-{rng.random()}" for _ in range(2000)]


def _mixed() -> list[Any]:
    return [
        *range(-50, 50),
        2**63,
        -(2**63) - 1,
        2**200,
        1.5,
        2.0,
        -0.0,
        2.0**63,
        True,
        False,
        None,
        b"",
        b"\x00\xff",
        (),
        (1, "a"),
        ((1,), (None, 2.5)),
        Point(1, 2),
        "x",
    ]


@pytest.mark.parametrize("max_parallelism", MAX_PARALLELISMS)
@pytest.mark.parametrize("keys", [_ints(), _strs(), _mixed()], ids=["ints", "strs", "mixed"])
def test_batch_and_single_agree(keys: list[Any], max_parallelism: int) -> None:
    expected = [assign_to_key_group(key, max_parallelism) for key in keys]
    assert assign_to_key_groups(keys, max_parallelism) == expected


def test_ints_beyond_64_bits_in_an_int_batch_take_the_general_path() -> None:
    keys = [5, 2**64, -(2**64), 7]
    assert assign_to_key_groups(keys, 128) == [assign_to_key_group(k, 128) for k in keys]


def test_equal_keys_of_different_types_share_a_key_group() -> None:
    assert len(set(assign_to_key_groups([1, 1.0, True], 128))) == 1
    assert len(set(assign_to_key_groups([(1, 2), Point(1, 2)], 1000))) == 1


def test_long_batches_and_the_empty_batch() -> None:
    keys = list(range(20_000))
    assert assign_to_key_groups(keys, 128) == [assign_to_key_group(k, 128) for k in keys]
    assert assign_to_key_groups([], 128) == []


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "bad",
    [float("nan"), Colour.RED, [1, 2], "lone \udcff surrogate", (1, float("nan")), {"a": 1}],
    ids=["nan", "enum", "list", "surrogate", "nan-in-tuple", "dict"],
)
def test_unusable_keys_are_refused_as_by_the_single_form(bad: Any) -> None:
    with pytest.raises(UnusableKeyError) as single:
        assign_to_key_group(bad, 128)
    batch = ["ok", bad, "fine"] if isinstance(bad, str) else [1, bad, 2]
    with pytest.raises(UnusableKeyError) as batched:
        assign_to_key_groups(batch, 128)
    assert str(batched.value) == str(single.value)
    assert batched.value.key is bad
