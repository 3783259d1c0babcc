"""Windows through real failovers, savepoints and rescaling (issue 14).

Window contents, trigger state and window timers are keyed state: (a) an exactly-once
tumbling event-time window job and (b) an exactly-once session-window job (allowed lateness,
a late element bridging two sessions) into a ``FileSink`` under seeded faults commit what a
failure-free run does; (c) a savepoint taken mid-window at parallelism 4 and restored at 2
and 3 fires every window once, with exactly its elements, on the owner of its key; (d) a
processing-time window open at a savepoint fires after the restore when the clock passes
its end.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    AggregateFunction,
    EventTimeSessionWindows,
    FileSink,
    ManualClock,
    ProcessWindowFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WatermarkStrategy,
    WindowFunction,
    read_committed,
)
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sources.base import Source, SourceReader
from streamlet.testing import FaultInjector, inject_faults
from tests.integration.test_event_time_recovery import (
    KEYS,
    SPLITS,
    Punctuated,
    Ranges,
    _until_paused_then_stop,
    env_for,
    key_of,
    owner,
    wait_until,
)

pytestmark = pytest.mark.anyio

SEEDS = range(4)


def faulty_env(tmp_path: Path, seed: int | None, operators: list[str], max_record: int) -> Any:
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(1000)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 0))
    injector = None
    if seed is not None:
        injector = inject_faults(
            env,
            FaultInjector.random(
                seed, operators=operators, parallelism=2, max_record=max_record, count=3
            ),
        )
    return env, injector


async def run_to_file(env: Any, injector: Any, tmp_path: Path, name: str) -> list[str]:
    with anyio.fail_after(30):
        result = await env.execute(name)
    if injector is None:
        assert result.restart_count == 0
    else:
        assert len(injector.fired) >= 1
        assert result.restart_count >= 1
    lines = read_committed(tmp_path / "out")
    assert len(lines) == len(set(lines))  # every line names a different window: none twice
    return sorted(lines)


# --- (a) an exactly-once tumbling event-time window job ----------------------------------

SIZE = 100


def event(i: int, per_split: int) -> tuple[str, int]:
    """Record ``i``: its key (4 per split, so each key's records come from one split, in
    timestamp order: none is ever late) and its timestamp, 7 ms apart in its split."""
    split, j = divmod(i, per_split)
    return (f"s{split}k{j % 4}", j * 7)


class CountSum(AggregateFunction):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: tuple[str, int], accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + 1, accumulator[1] + value[1])

    def get_result(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator


class Line(WindowFunction):
    def apply(self, key: str, window: TimeWindow, inputs: Any) -> Any:
        ((count, total),) = inputs
        yield f"{key},{window.start},{window.end},{count},{total}"


def expected_tumbling(n: int) -> list[str]:
    windows: dict[tuple[str, int], list[int]] = {}
    for i in range(n):
        key, ts = event(i, n // SPLITS)
        windows.setdefault((key, ts // SIZE * SIZE), []).append(ts)
    return sorted(
        f"{key},{start},{start + SIZE},{len(tss)},{sum(tss)}"
        for (key, start), tss in windows.items()
    )


async def _tumbling_run(tmp_path: Path, n: int, seed: int | None) -> list[str]:
    per_split = n // SPLITS
    env, injector = faulty_env(tmp_path, seed, ["windows", "sink"], n // 4)
    strategy = WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(
        lambda i, _ts: event(i, per_split)[1]
    )
    (
        # One split per source subtask, one punctuated generator each: a window fires once
        # the slowest split passed it, and its split had all its records by then.
        env.from_source(Ranges(n, delay_s=0.001), strategy, "events")
        .set_parallelism(SPLITS)
        .uid("source")
        .map(lambda i: event(i, per_split))
        .set_parallelism(SPLITS)
        .uid("events")
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(SIZE))
        .aggregate(CountSum(), Line())
        .uid("windows")
        .sink_to(FileSink(str(tmp_path / "out")))
        .uid("sink")
    )
    return await run_to_file(env, injector, tmp_path, "tumbling")


async def test_tumbling_windows_failure_free_run_is_the_reference(
    anyio_backend: str, tmp_path: Path
) -> None:
    assert await _tumbling_run(tmp_path, 1600, None) == expected_tumbling(1600)


@pytest.mark.parametrize("seed", SEEDS)
async def test_exactly_once_tumbling_windows_under_seeded_faults(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    assert await _tumbling_run(tmp_path, 1600, seed) == expected_tumbling(1600)


# --- (b) an exactly-once session-window job with a late element bridging two sessions ----

GAP = 10
LATENESS = 500
ROUNDS = 6
SESSION_KEYS = [f"u{k}" for k in range(6)]


def session_events() -> list[tuple[str, int]]:
    """Per round (base ``b``) and key: sessions [b, b+15) (b, b+5) and [b+25, b+35); then
    b+200 moves the watermark past both, so they fire; then b+15, late but within the
    lateness, bridges them into [b, b+35), which fires again at once."""
    events: list[tuple[str, int]] = []
    for r in range(ROUNDS):
        b = r * 1_000
        for offset in (0, 5, 25, 200, 15):
            events.extend((key, b + offset) for key in SESSION_KEYS)
    return events


def expected_sessions() -> list[str]:
    lines = []
    for r in range(ROUNDS):
        b = r * 1_000
        for key in SESSION_KEYS:
            for start, end, stamps in (
                (b, b + 15, [b, b + 5]),
                (b + 25, b + 35, [b + 25]),
                (b, b + 35, [b, b + 5, b + 15, b + 25]),
                (b + 200, b + 210, [b + 200]),
            ):
                lines.append(f"{key},{start},{end},{';'.join(map(str, stamps))}")
    return sorted(lines)


class Events(Source[tuple[str, int]]):
    """``records`` in one split, 4 per batch, replayable (the position is the next index):
    one source subtask, one punctuated watermark generator, so every window subtask sees
    the records and watermarks in one order in every run."""

    name = "Events"

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    def create_splits(self, parallelism: int) -> list[Any]:
        return [0]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Any]:
        records = self.records
        start = 0 if position is None else int(position)

        class Reader(SourceReader[Any]):
            next = start

            async def read_batch(self, max_records: int) -> list[Any] | None:
                if self.next >= len(records):
                    return None
                batch = records[self.next : self.next + 4]
                self.next += len(batch)
                await anyio.sleep(0.001)
                return batch

            def position(self) -> int:
                return self.next

        return Reader()


class SessionLine(ProcessWindowFunction):
    def process(self, key: str, context: Any, elements: Any) -> Any:
        window = context.window()
        stamps = ";".join(str(ts) for ts in sorted(e[1] for e in elements))
        yield f"{key},{window.start},{window.end},{stamps}"


async def _sessions_run(tmp_path: Path, seed: int | None) -> list[str]:
    records = session_events()
    env, injector = faulty_env(tmp_path, seed, ["sessions", "sink"], len(records) // 4)
    strategy = WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(
        lambda e, _ts: e[1]
    )
    (
        env.from_source(Events(records), strategy, "events")
        .set_parallelism(1)
        .uid("source")
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(GAP))
        .allowed_lateness(LATENESS)
        .process(SessionLine())
        .uid("sessions")
        .sink_to(FileSink(str(tmp_path / "out")))
        .uid("sink")
    )
    return await run_to_file(env, injector, tmp_path, "sessions")


async def test_session_windows_failure_free_run_is_the_reference(
    anyio_backend: str, tmp_path: Path
) -> None:
    assert await _sessions_run(tmp_path, None) == expected_sessions()


@pytest.mark.parametrize("seed", SEEDS)
async def test_exactly_once_session_windows_under_seeded_faults(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    assert await _sessions_run(tmp_path, seed) == expected_sessions()


# --- (c) a mid-window savepoint restored at another parallelism --------------------------


class Contents(ProcessWindowFunction):
    """(key, window start, its elements, the subtask that fired it)."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.index = runtime_context.get_index_of_this_subtask()

    def process(self, key: str, context: Any, elements: Any) -> Any:
        yield (key, context.window().start, tuple(sorted(elements)), self.index)


def build_windows(env: StreamExecutionEnvironment, source: Source[int], out: list[Any]) -> None:
    strategy = WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(
        lambda value, _ts: value
    )
    (
        # The source keeps one subtask per split at every parallelism: a watermark
        # generator is per source subtask, and one reading two splits would make the
        # slower split's records late (only the window operator is rescaled).
        env.from_source(source, strategy)
        .set_parallelism(SPLITS)
        .uid("source")
        .key_by(key_of)
        .window(TumblingEventTimeWindows.of(SIZE))
        .process(Contents())
        .uid("windows")
        .add_sink(out.append)
    )


@pytest.mark.parametrize("phases", [(4, 2), (4, 3)])
async def test_a_mid_window_savepoint_restores_at_another_parallelism(
    anyio_backend: str, tmp_path: Path, phases: tuple[int, ...]
) -> None:
    n = 2400
    per_split = n // SPLITS
    expected: dict[tuple[str, int], list[int]] = {}
    for i in range(n):
        expected.setdefault((key_of(i), i // SIZE * SIZE), []).append(i)
    outs: list[list[Any]] = []
    path: str | None = None
    for number, parallelism in enumerate(phases):
        out: list[Any] = []
        last = number == len(phases) - 1
        # Each split pauses at 304 of its 600 records (19 batches of 16): its window
        # [lo + 300, lo + 400) of every key is open, part of it read, at the savepoint.
        source = Ranges(n, None if last else per_split // 2)
        env = env_for(tmp_path, parallelism)
        build_windows(env, source, out)
        if last:
            await env.execute("windows", restore=path)
        else:
            path = await _until_paused_then_stop(env, source, tmp_path / "savepoints", path)
            # The windows below the slowest split's watermark fired, the rest are saved.
            assert 0 < len(out) < len(expected)
        outs.append(out)
        for key, _, _, index in out:
            assert index == owner(key, parallelism), (key, index, parallelism)
    fired = Counter((key, start, elements) for out in outs for key, start, elements, _ in out)
    assert fired == Counter((key, start, tuple(v)) for (key, start), v in expected.items())


# --- (d) processing-time windows across a restore ------------------------------------------


def build_processing(env: StreamExecutionEnvironment, source: Source[int], out: list[Any]) -> None:
    (
        env.from_source(source)
        .uid("source")
        .key_by(key_of)
        .window(TumblingProcessingTimeWindows.of(500))
        .process(Contents())
        .uid("windows")
        .add_sink(out.append)
    )


async def test_a_processing_time_window_open_at_a_savepoint_fires_after_the_restore(
    anyio_backend: str, tmp_path: Path
) -> None:
    n = 1600
    clock = ManualClock(1_000)
    source = Ranges(n, pause_after=n // 8)
    out: list[Any] = []
    env = env_for(tmp_path, 4).set_processing_time_clock(clock)
    build_processing(env, source, out)
    path = await _until_paused_then_stop(env, source, tmp_path / "savepoints")
    assert out == []  # [1000, 1500) is open: the clock never moved
    read = {i for lo, start in source.starts.items() for i in range(start, source.read[lo])}

    source = Ranges(n, pause_after=n // 8)  # restored at the pause: reads nothing more
    env = env_for(tmp_path, 3).set_processing_time_clock(clock)
    build_processing(env, source, out)
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("processing", restore=path, task_group=tg)
        await wait_until(lambda: source.paused == SPLITS)
        assert source.records_read() == 0
        clock.set_time(1_499)  # the window's max_timestamp: it fires
        await wait_until(lambda: len(out) >= KEYS)
        clock.set_time(1_500)  # the records after the gate go to [1500, 2000): never fired
        source.gate.set()
        await client.wait()
    expected: dict[str, list[int]] = {}
    for i in sorted(read):
        expected.setdefault(key_of(i), []).append(i)
    assert sorted(out) == sorted(
        (key, 1_000, tuple(v), owner(key, 3)) for key, v in expected.items()
    )  # each window once, with the elements before the savepoint, on its key's owner
