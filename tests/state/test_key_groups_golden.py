"""Golden values of ``stable_hash``: the key group of every key is part of the checkpoint format.

Keyed state is written per key group, and a restore hands each subtask the key groups it
owns now; if ``stable_hash`` changed, restored state would sit in key groups its keys no
longer map to, and every lookup would miss. These literals were computed once and are
checked in, so a change to the hash fails here and has to be a decision (with a migration
story), not an accident of a refactoring.

History: the integral floats of magnitude 2**63 and beyond (``2.0**63``, ``1e300``, ...) and
tuples holding them changed once, on purpose: they hashed apart from the ints they equal
(``2.0**63 == 2**63``), so one key had two key groups. Every other value is the original.
(Keys that are now refused, such as NaN, enum members or strs with lone surrogates, had
values before and have none now; see test_key_groups.py.)
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest

from streamlet.state.key_groups import assign_to_key_group, stable_hash, subtask_for_key_group

Point = namedtuple("Point", "x y")

# (key, stable_hash(key), key group at max_parallelism 128)
GOLDEN: list[tuple[Any, int, int]] = [
    ("", 642952553, 105),
    ("a", 1364000041, 41),
    ("user-42", 2443315299, 99),
    ("\u00e9t\u00e9 \u2603", 1643375742, 126),
    ("\u65e5\u672c\u8a9e", 1639654030, 14),
    ("\U0001f600", 2445667100, 28),
    (0, 3617179760, 112),
    (1, 2666184603, 27),
    (-1, 818027443, 51),
    (42, 3065032130, 66),
    (2**40, 1192842261, 21),
    (2**63 - 1, 1737535757, 13),
    (-(2**63), 3223360396, 12),
    (2**63, 1730462142, 62),
    (-(2**63) - 1, 3557999065, 89),
    (-(2**70), 2850935772, 92),
    (10**30, 964003185, 113),
    (3.5, 1631533007, 79),
    (-0.25, 4160098879, 63),
    (1.0, 2666184603, 27),
    (-0.0, 3617179760, 112),
    (1e300, 71494272, 0),
    (2.0**63, 1730462142, 62),
    (-(2.0**64), 3325990340, 68),
    (float("inf"), 1405285858, 98),
    (float("-inf"), 2927196742, 70),
    (b"", 1263139360, 32),
    (b"\x00\xff", 656419075, 3),
    (None, 1020716019, 115),
    (True, 2666184603, 27),
    (False, 3617179760, 112),
    ((), 4034400641, 1),
    ((1, "a"), 4279878825, 41),
    (Point(1, "a"), 4279878825, 41),
    (((1, 2), (b"x", None)), 2727905364, 84),
    (("x", 2.5, -3), 3314535500, 76),
    ((2**63,), 1181100836, 36),
    ((2.0**63,), 1181100836, 36),
]


@pytest.mark.parametrize(("key", "hash_value", "key_group"), GOLDEN, ids=repr)
def test_stable_hash_and_key_group_are_the_checked_in_values(
    key: Any, hash_value: int, key_group: int
) -> None:
    assert stable_hash(key) == hash_value
    assert assign_to_key_group(key, 128) == key_group == hash_value % 128


def test_golden_keys_cover_every_accepted_type() -> None:
    kinds = {type(key) for key, _, _ in GOLDEN}
    assert kinds == {str, int, float, bytes, type(None), bool, tuple, Point}


def test_golden_subtasks_at_parallelism_4() -> None:
    # The whole route of a record: key -> key group -> owning subtask.
    owners = [subtask_for_key_group(kg, 4, 128) for _, _, kg in GOLDEN]
    assert owners == [3, 1, 3, 3, 0, 0, 3, 0, 1, 2, 0, 0, 0, 1, 2, 2, 3, 2, 1, 0, 3, 0, 1, 2,
                      3, 2, 1, 0, 3, 0, 3, 0, 1, 1, 2, 2, 1, 1]  # fmt: skip
