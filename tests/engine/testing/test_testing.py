"""streamlet.testing: TestingSource markers (EOF, ABORT, PAUSE, AWAIT_CHECKPOINT), TestingSink,
run_and_collect.

Runs under pytest-asyncio (and uses the plugin's fixtures, which are synchronous).
"""

from __future__ import annotations

import inspect
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import streamlet.testing
import streamlet.testing.harness
import streamlet.testing.pytest_plugin
from streamlet import (
    JobExecutionError,
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from streamlet.checkpoints.storage import MemoryCheckpointStorage
from streamlet.job.restart import RestartStrategies
from streamlet.state import ValueStateDescriptor
from streamlet.testing import (
    InjectedFault,
    TestingSink,
    TestingSource,
    run_and_collect,
    run_and_collect_result,
)

pytestmark = pytest.mark.asyncio

EOF = TestingSource.EOF
ABORT = TestingSource.ABORT
PAUSE = TestingSource.PAUSE
AWAIT_CHECKPOINT = TestingSource.AWAIT_CHECKPOINT

EnvFactory = Callable[..., StreamExecutionEnvironment]


class CountPerKey(KeyedProcessFunction):
    """Emits (key, running count) per record."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield (ctx.get_current_key(), n)


def checkpointing(env: StreamExecutionEnvironment, restarts: int = 3) -> StreamExecutionEnvironment:
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(restarts, 0))
    return env


async def read_all(source: TestingSource, position: int | None = None) -> list[list[Any]]:
    reader = source.create_reader(source.create_splits(1)[0], position)
    batches = []
    while (batch := await reader.read_batch(100)) is not None:
        batches.append(batch)
    return batches


# --- TestingSource: order, batching, markers ---


async def test_source_emits_records_in_order(streamlet_env: StreamExecutionEnvironment) -> None:
    stream = streamlet_env.from_source(TestingSource(range(50), batch_size=7))
    assert await run_and_collect(stream) == list(range(50))


async def test_source_reads_at_most_batch_size_records() -> None:
    assert await read_all(TestingSource([1, 2, 3, 4, 5], batch_size=2)) == [[1, 2], [3, 4], [5]]
    assert await read_all(TestingSource([1, 2, 3])) == [[1], [2], [3]]


async def test_source_reader_resumes_at_position() -> None:
    assert await read_all(TestingSource(["a", "b", "c"], batch_size=5), 1) == [["b", "c"]]


async def test_marker_cuts_a_batch_and_position_counts_markers() -> None:
    source = TestingSource([1, 2, EOF(), 3], batch_size=10)
    reader = source.create_reader("testing", None)
    assert await reader.read_batch(100) == [1, 2]
    assert reader.position() == 2
    assert await reader.read_batch(100) is None
    assert reader.position() == 3  # after the EOF marker
    assert await reader.read_batch(100) is None


async def test_eof_ends_the_job_without_checkpointing(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    stream = streamlet_env.from_source(TestingSource([1, EOF(), 2]))
    assert await run_and_collect(stream) == [1]


@pytest.mark.parametrize(
    ("records", "runs"),
    [
        ([1, 2, EOF(), 3, 4, EOF(), 5], [[1, 2], [3, 4], [5], []]),
        ([EOF(), 1], [[], [1], []]),
        ([1, EOF(), EOF(), 2], [[1], [], [2]]),
        ([1, 2, 3, EOF()], [[1, 2, 3], []]),
    ],
    ids=["two-eofs", "eof-first", "eofs-in-a-row", "eof-last"],
)
async def test_eof_then_restore_latest_continues_after_it(
    streamlet_env_factory: EnvFactory, records: list[Any], runs: list[list[Any]]
) -> None:
    source = TestingSource(records)
    for expected in runs:
        env = checkpointing(streamlet_env_factory())
        stream = env.from_source(source).uid("source")
        assert await run_and_collect(stream, job_name="continuation", restore="latest") == expected


async def test_continuation_with_a_batch_ending_right_before_eof(
    streamlet_env_factory: EnvFactory,
) -> None:
    source = TestingSource([1, 2, EOF(), 3], batch_size=2)
    outputs = []
    for _ in range(2):
        env = checkpointing(streamlet_env_factory())
        stream = env.from_source(source).uid("source")
        outputs.append(await run_and_collect(stream, restore="latest"))
    assert outputs == [[1, 2], [3]]


async def test_continuation_keeps_keyed_state(streamlet_env_factory: EnvFactory) -> None:
    source = TestingSource(["a", "b", "a", EOF(), "a", "b"])
    outputs = []
    for _ in range(2):
        env = checkpointing(streamlet_env_factory())
        stream = (
            env.from_source(source).uid("source").key_by(lambda r: r).process(CountPerKey())
        ).uid("counter")
        outputs.append(await run_and_collect(stream, restore="latest"))
    assert outputs == [[("a", 1), ("b", 1), ("a", 2)], [("a", 3), ("b", 2)]]


async def _abort_job(
    env: StreamExecutionEnvironment,
    records: list[Any],
    parallelism: int,
    source: TestingSource | None = None,
) -> tuple[list[tuple[str, int]], Any]:
    out: list[tuple[str, int]] = []
    (
        env.from_source(source or TestingSource(records))
        .uid("source")
        .key_by(lambda r: r[0])
        .process(CountPerKey())
        .uid("counter")
        .set_parallelism(parallelism)
        .sink_to(TestingSink(out))
    )
    result = await env.execute("abort")
    return out, result


def _expected_counts(records: list[Any]) -> dict[str, int]:
    return dict(Counter(r[0] for r in records if isinstance(r, tuple)))


def _assert_exact_state_at_least_once_output(
    out: list[tuple[str, int]], expected: dict[str, int]
) -> None:
    finals: dict[str, int] = defaultdict(int)
    for key, n in out:
        finals[key] = max(finals[key], n)
    assert dict(finals) == expected  # no record lost, none counted twice in state
    assert set(out) == {(k, n) for k, total in expected.items() for n in range(1, total + 1)}
    assert len(out) >= sum(expected.values())  # replays may repeat outputs (at-least-once)


class CheckpointBefore(TestingSource):
    """A TestingSource that stops reading at ``index`` until a checkpoint covering every
    record before it completed: the ABORT after it then has a checkpoint to restore."""

    def __init__(self, records: list[Any], index: int) -> None:
        super().__init__(records)
        self.index = index
        self.covered = anyio.Event()

    def create_reader(self, split: Any, position: Any | None) -> Any:
        reader = super().create_reader(split, position)
        source = self
        read_batch = reader.read_batch

        async def wait_then_read(max_records: int) -> list[Any] | None:
            if reader.position() == source.index:
                await source.covered.wait()
            return await read_batch(max_records)

        async def notify_checkpoint_complete(checkpoint_id: int, position: Any) -> None:
            if position is not None and int(position) >= source.index:
                source.covered.set()

        reader.read_batch = wait_then_read  # type: ignore[method-assign]
        reader.notify_checkpoint_complete = notify_checkpoint_complete  # type: ignore[method-assign]
        return reader


@pytest.mark.parametrize("parallelism", [1, 2])
async def test_abort_restores_the_last_checkpoint_and_counts_stay_exact(
    streamlet_env_factory: EnvFactory, parallelism: int
) -> None:
    records: list[Any] = [(f"k{i % 7}", i) for i in range(400)]
    records.insert(300, ABORT())
    env = checkpointing(streamlet_env_factory(parallelism))
    out, result = await _abort_job(env, records, parallelism, CheckpointBefore(records, 300))
    assert result.restart_count == 1
    _assert_exact_state_at_least_once_output(out, _expected_counts(records))
    # The same holds after a restart from scratch; only a restore skips what the
    # checkpoint covered: none of the 300 outputs before the abort is repeated.
    assert result.restored_from is not None
    assert len(out) == 400


async def test_abort_after_a_completed_checkpoint_replays_nothing_already_checkpointed(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    # AWAIT_CHECKPOINT holds the source until a checkpoint at its position completed, so the
    # restore replays nothing: exactly-once output here (a restart from scratch repeats 20).
    records: list[Any] = [(f"k{i % 3}", i) for i in range(30)]
    records[20:20] = [AWAIT_CHECKPOINT(), ABORT()]
    out, result = await _abort_job(checkpointing(streamlet_env), records, 1)
    assert result.restart_count == 1
    _assert_exact_state_at_least_once_output(out, _expected_counts(records))
    assert len(out) == 30


async def test_abort_fails_the_job_without_a_restart_strategy(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    stream = streamlet_env.from_source(TestingSource([1, ABORT(), 2]))
    with pytest.raises(JobExecutionError) as info:
        await run_and_collect(stream)
    assert isinstance(info.value.__cause__, InjectedFault)
    assert str(info.value.__cause__) == "TestingSource.ABORT() at index 1"


async def test_abort_fires_once_per_source_instance(streamlet_env_factory: EnvFactory) -> None:
    source = TestingSource([1, ABORT(), 2])
    with pytest.raises(JobExecutionError):
        await run_and_collect(streamlet_env_factory().from_source(source))
    assert await run_and_collect(streamlet_env_factory().from_source(source)) == [1, 2]


async def test_abort_without_checkpointing_restarts_from_scratch(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    streamlet_env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    stream = streamlet_env.from_source(TestingSource([1, 2, ABORT(), 3]))
    out, result = await run_and_collect_result(stream)
    assert result.restart_count == 1
    assert out[-3:] == [1, 2, 3] and Counter(out)[3] == 1


async def test_await_checkpoint_waits_for_a_checkpoint_covering_the_records_before_it(
    streamlet_env: StreamExecutionEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Positions of the completed checkpoints the reader was told of, in order.
    completed: list[int] = []
    original = streamlet.testing._TestingReader.notify_checkpoint_complete

    async def notify(self: Any, checkpoint_id: int, position: Any) -> None:
        completed.append(position)
        await original(self, checkpoint_id, position)

    monkeypatch.setattr(streamlet.testing._TestingReader, "notify_checkpoint_complete", notify)
    seen: dict[int, list[int]] = {}

    def note(x: int) -> int:
        seen[x] = list(completed)
        return x

    source = TestingSource([1, 2, AWAIT_CHECKPOINT(), 3], batch_size=10)
    stream = checkpointing(streamlet_env).from_source(source).map(note)
    assert await run_and_collect(stream) == [1, 2, 3]
    # 3 was read only after a checkpoint at the marker's index (2) or beyond completed.
    assert any(position >= 2 for position in seen[3]), seen


async def test_pause_delays_the_records_after_it(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    stream = streamlet_env.from_source(TestingSource([1, PAUSE(60), 2]))
    started = time.monotonic()
    assert await run_and_collect(stream) == [1, 2]
    assert time.monotonic() - started >= 0.05


def test_source_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"^TestingSource\(\) needs a list .*got str$"):
        TestingSource("abc")
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        TestingSource([1], batch_size=0)
    with pytest.raises(TypeError, match=r"^batch_size must be an int, got 1.5$"):
        TestingSource([1], batch_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^PAUSE duration_ms must be a number >= 0, got -1$"):
        PAUSE(-1)


def test_testing_classes_are_not_collected_by_pytest() -> None:
    assert TestingSource.__test__ is False
    assert TestingSink.__test__ is False
    assert TestingSource.max_parallelism == 1


# --- TestingSink and run_and_collect ---


async def test_sink_collects_every_subtask_into_one_list(
    streamlet_env_factory: EnvFactory,
) -> None:
    env = streamlet_env_factory(3)
    out: list[int] = []
    env.from_collection(range(100)).rebalance().map(lambda x: x + 1).sink_to(TestingSink(out))
    await env.execute("parallel sink")
    assert sorted(out) == list(range(1, 101))


def test_sink_needs_a_list() -> None:
    with pytest.raises(TypeError, match=r"^TestingSink\(\) needs a list to append to, got \(\)$"):
        TestingSink(())  # type: ignore[arg-type]


async def test_run_and_collect_result_returns_records_and_result(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    stream = streamlet_env.from_collection([3, 1, 2]).filter(lambda x: x > 1)
    records, result = await run_and_collect_result(stream, job_name="named")
    assert records == [3, 2]
    assert result.job_name == "named" and result.restart_count == 0


async def test_run_and_collect_passes_restore(
    streamlet_env_factory: EnvFactory, checkpoint_storage: MemoryCheckpointStorage
) -> None:
    source = TestingSource([1, EOF(), 2])
    first = checkpointing(streamlet_env_factory()).from_source(source).uid("source")
    assert await run_and_collect(first, job_name="j") == [1]
    assert checkpoint_storage.operations  # the final checkpoint went to the shared storage
    second = checkpointing(streamlet_env_factory()).from_source(source).uid("source")
    assert await run_and_collect(second, job_name="j", restore="latest") == [2]


async def test_run_and_collect_needs_a_stream(
    streamlet_env: StreamExecutionEnvironment,
) -> None:
    with pytest.raises(TypeError, match=r"^run_and_collect\(\) needs a DataStream, got "):
        await run_and_collect(streamlet_env)  # type: ignore[arg-type]


# --- the docstring examples run as written (they are quoted in the README) ---


def _examples(obj: Any) -> list[str]:
    lines = (inspect.getdoc(obj) or "").splitlines()
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and line.lstrip().startswith("Example"):
            indent = len(line) - len(line.lstrip())
            body, i = [], i + 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                body.append(lines[i])
                i += 1
            found.append(textwrap.dedent("\n".join(body)))
        else:
            i += 1
    return found


_DOCUMENTED = [
    streamlet.testing,
    TestingSource,
    TestingSink,
    run_and_collect,
    run_and_collect_result,
    streamlet.testing.harness.OperatorTestHarness,
    streamlet.testing.harness.KeyedOperatorTestHarness,
]


@pytest.mark.parametrize("obj", _DOCUMENTED, ids=lambda o: o.__name__)
def test_docstring_examples_run(obj: Any) -> None:
    examples = _examples(obj)
    assert examples, f"{obj.__name__} has no Example:: block"
    for code in examples:
        exec(compile(code, f"<example of {obj.__name__}>", "exec"), {"__name__": "example"})


def test_plugin_docstring_has_an_example() -> None:
    (code,) = _examples(streamlet.testing.pytest_plugin)
    compile(code, "<plugin example>", "exec")
