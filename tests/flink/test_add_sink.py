"""``add_sink(fn)`` on Flink: ``fn`` runs in the calling process on the records Flink
collects, so a sink that fills a list works unchanged on either runner."""

from __future__ import annotations

from collections import Counter

import pytest

from streamlet import JobExecutionError, SinkFunction, StreamExecutionEnvironment

pytestmark = pytest.mark.slow


#: What _Upper writes: a sink object is copied for each subtask (on Flink: for the one
#: caller), so it writes to a list it does not own.
UPPER: list = []


class _Upper(SinkFunction):
    def __init__(self) -> None:
        self.seen = 0  # the copy's own: never visible to the test

    def invoke(self, value) -> None:
        self.seen += 1
        UPPER.append(value.upper())


def test_sinks_and_collects_of_one_job_all_get_their_records() -> None:
    # Three consumers at once (two sinks, one collect): each read by its own thread, so
    # no unread collect can hold the job back, and every record reaches each of them once.
    results = {}
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
        words = env.from_collection(["to be or not to be", "that is"] * 50).flat_map(str.split)
        plain: list = []
        UPPER.clear()
        upper = _Upper()
        words.add_sink(plain.append)
        words.add_sink(upper)
        counted = words.key_by(lambda w: w).map(lambda w: (w, 1)).key_by(lambda t: t[0]).sum(1)
        if runner == "local":
            with counted.execute_and_collect() as records:
                collected = list(records)
        else:
            collected = counted.execute_and_collect(runner="flink")
        assert upper.seen == 0  # each runner called a copy
        results[runner] = (Counter(plain), Counter(UPPER), Counter(collected))
    assert results["flink"] == results["local"]
    assert results["flink"][0]["to"] == 100 and results["flink"][1]["BE"] == 100


def test_a_raising_sink_fails_the_job_naming_it() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)

    def refuse_three(x: int) -> None:
        if x == 3:
            raise ValueError("no threes")

    env.from_sequence(1, 100_000).add_sink(refuse_three).name("picky").uid("picky-sink")
    with pytest.raises(JobExecutionError) as info:
        env.execute("raising sink", runner="flink")
    message = str(info.value)
    assert "'picky'" in message and "'picky-sink'" in message
    assert "ValueError: no threes" in message
    assert isinstance(info.value.__cause__, ValueError)
