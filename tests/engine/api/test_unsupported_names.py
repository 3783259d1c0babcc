"""A PyFlink name streamlet lacks fails at import, naming the feature (issue 16)."""

from __future__ import annotations

import pytest

import streamlet
from streamlet.api.unsupported import UNSUPPORTED


def test_importing_a_missing_pyflink_name_says_which_feature_is_missing() -> None:
    with pytest.raises(NotImplementedError, match=r"^TableEnvironment: SQL and the relational"):
        from streamlet import TableEnvironment  # noqa: F401
    with pytest.raises(NotImplementedError, match=r"KafkaSource: the Kafka connector.*README"):
        from streamlet import KafkaSource  # noqa: F401


def test_a_name_nobody_has_is_still_an_import_error() -> None:
    with pytest.raises(ImportError, match="NoSuchName"):
        from streamlet import NoSuchName  # noqa: F401


def test_no_supported_name_is_listed_as_missing() -> None:
    assert not set(UNSUPPORTED) & set(streamlet.__all__)
    for name in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=f"^{name}: "):
            getattr(streamlet, name)


def test_pyflinks_number_sequence_source_is_the_sequence_source() -> None:
    env = streamlet.StreamExecutionEnvironment.get_execution_environment()
    numbers = env.from_source(streamlet.NumberSequenceSource(1, 5)).execute_and_collect(limit=5)
    assert sorted(numbers) == [1, 2, 3, 4, 5]
