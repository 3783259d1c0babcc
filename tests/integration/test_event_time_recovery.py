"""Timers and watermarks through real restores, failovers and idle inputs (issue 13).

Timers are keyed state: they survive savepoints and rescaling (each fires once, on the
subtask that owns its key group), an exactly-once checkpoint holds exactly the timers of the
records before its barrier, processing-time timers overdue after a restore fire at once, an
exactly-once sessionization job under seeded faults commits what a failure-free run does,
and an idle source split does not hold back the timers of another until it returns.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet import (
    Duration,
    FileSink,
    KeyedProcessFunction,
    ManualClock,
    RuntimeContext,
    StreamExecutionEnvironment,
    TimeDomain,
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
    read_committed,
)
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sources.base import Source, SourceReader
from streamlet.state import ValueStateDescriptor
from streamlet.state.key_groups import assign_to_key_group, subtask_for_key_group
from streamlet.testing import FaultInjector, inject_faults
from tests.helpers import SPLITS, Ranges

pytestmark = pytest.mark.anyio

KEYS = 40


def owner(key: str, parallelism: int) -> int:
    return subtask_for_key_group(assign_to_key_group(key, 128), parallelism, 128)


def key_of(i: int) -> str:
    return f"k{i % KEYS}"


class Punctuated(WatermarkGenerator):
    """A watermark right after every event (``ts - 1``), none periodically: every watermark
    travels right behind the record that made it, so none is made after a source paused."""

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(event_timestamp - 1))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


def env_for(tmp_path: Path, parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    return env


async def wait_until(condition: Any, seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.002)


# --- (a) event-time timers across savepoints and rescaling ---------------------------------


class TimerPerRecord(KeyedProcessFunction):
    """Registers an event-time timer at each record's timestamp + ``offset``; reports each
    firing as (key, timestamp, subtask index)."""

    def __init__(self, offset: int = 10) -> None:
        self.offset = offset

    def open(self, runtime_context: RuntimeContext) -> None:
        self.index = runtime_context.get_index_of_this_subtask()

    def process_element(self, value: int, ctx: KeyedProcessFunction.Context) -> Any:
        ctx.timer_service().register_event_time_timer(value + self.offset)
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        assert ctx.time_domain() is TimeDomain.EVENT_TIME
        assert ctx.timer_service().current_watermark() >= timestamp
        yield (ctx.get_current_key(), timestamp, self.index)


def build_timers(
    env: StreamExecutionEnvironment, source: Source[int], out: list[Any], offset: int = 10
) -> None:
    strategy = WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(
        lambda value, _ts: value
    )
    (
        env.from_source(source, strategy)
        .uid("source")
        .key_by(key_of)
        .process(TimerPerRecord(offset))
        .uid("timers")
        .add_sink(out.append)
    )


async def _until_paused_then_stop(
    env: StreamExecutionEnvironment, source: Ranges, savepoints: Path, restore: str | None = None
) -> str:
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("timers", restore=restore, task_group=tg)
        await wait_until(lambda: source.paused >= SPLITS)
        # Every record read went through the source subtasks and the keyed ones (each counts
        # it once): a barrier now comes after all of them. (Batches a fetcher read ahead
        # but its subtask did not forward yet would pass after the barrier, and their
        # effects on this non-transactional sink would be repeated by the restored job.)
        await wait_until(lambda: client.statistics()["records_in"] == 2 * source.records_read())
        path = await client.stop_with_savepoint(str(savepoints))
        result = await client.wait()
    assert result.savepoint_path == path
    return path


@pytest.mark.parametrize("phases", [(4, 2), (4, 3), (4, 2, 3)])
async def test_event_time_timers_survive_rescaling_and_fire_once_on_their_owner(
    anyio_backend: str, tmp_path: Path, phases: tuple[int, ...]
) -> None:
    n = 2400
    per_split = n // SPLITS
    outs: list[list[Any]] = []
    path: str | None = None
    for number, parallelism in enumerate(phases):
        out: list[Any] = []
        last = number == len(phases) - 1
        # Each phase but the last stops at a savepoint, further into every split.
        source = Ranges(n, None if last else per_split * (number + 1) // len(phases))
        env = env_for(tmp_path, parallelism)
        build_timers(env, source, out)
        if last:
            await env.execute("timers", restore=path)
        else:
            path = await _until_paused_then_stop(env, source, tmp_path / "savepoints", path)
            # Part of the timers fired before the savepoint, the rest are in it.
            assert 0 < len(out) < n
        outs.append(out)
        for key, _, index in out:
            assert index == owner(key, parallelism), (key, index, parallelism)
    fired = Counter((key, ts) for out in outs for key, ts, _ in out)
    assert fired == Counter((key_of(i), i + 10) for i in range(n))  # each once, none lost


# --- (c) an exactly-once checkpoint holds exactly the timers before its barrier ------------


async def test_a_checkpoint_holds_exactly_the_timers_of_the_records_before_its_barrier(
    anyio_backend: str, tmp_path: Path
) -> None:
    n = 1600
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_max_retained_checkpoints(1000)
    # No watermarks but the final one: no timer fires before the end of the input.
    (
        env.from_source(Ranges(n, pace_batches=5))
        .uid("source")
        .rebalance()
        .map(lambda i: i)
        .uid("shuffle")
        .key_by(key_of)
        .process(TimerPerRecord(0))
        .uid("timers")
        .add_sink(lambda _: None)
    )
    result = await env.execute("cut")
    assert result.checkpoints_completed >= 3
    job_dir = tmp_path / "checkpoints" / "cut"
    checkpoints = sorted(job_dir.glob("chk-*"), key=lambda p: int(p.name[4:]))

    cuts_checked = 0
    for checkpoint in checkpoints:
        # The restored job registers its timers 10**6 later: a timer of a record after the
        # cut that the checkpoint wrongly held would fire at the record's own timestamp.
        source = Ranges(n)
        out: list[Any] = []
        env = env_for(tmp_path, 3)
        (
            env.from_source(source)
            .uid("source")
            .rebalance()
            .map(lambda i: i)
            .uid("shuffle")
            .key_by(key_of)
            .process(TimerPerRecord(10**6))
            .uid("timers")
            .add_sink(out.append)
        )
        await env.execute("cut-restored", restore=str(checkpoint))
        cut = dict(source.starts)  # split start -> first number after the barrier
        if all(start == lo for lo, start in cut.items()) or all(
            start == lo + n // SPLITS for lo, start in cut.items()
        ):
            continue  # before the first record or after the last: nothing to tell
        before = {i for lo, start in cut.items() for i in range(lo, start)}
        expected = Counter((key_of(i), i if i in before else i + 10**6) for i in range(n))
        assert Counter((key, ts) for key, ts, _ in out) == expected, checkpoint.name
        cuts_checked += 1
        if cuts_checked == 3:
            break
    assert cuts_checked >= 1


# --- (d) processing-time timers overdue after a restore ------------------------------------


class Alarm(KeyedProcessFunction):
    """One processing-time timer per key, 500 ms after its first record."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.index = runtime_context.get_index_of_this_subtask()
        self.armed = runtime_context.get_state(ValueStateDescriptor("armed"))

    def process_element(self, value: int, ctx: KeyedProcessFunction.Context) -> Any:
        if self.armed.value() is None:
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + 500)
            self.armed.update(True)
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        assert ctx.time_domain() is TimeDomain.PROCESSING_TIME
        now = ctx.timer_service().current_processing_time()
        yield (ctx.get_current_key(), timestamp, now, self.index)


def build_alarms(env: StreamExecutionEnvironment, source: Source[int], out: list[Any]) -> None:
    (
        env.from_source(source)
        .uid("source")
        .key_by(key_of)
        .process(Alarm())
        .uid("alarms")
        .add_sink(out.append)
    )


async def test_processing_time_timers_overdue_after_a_restore_fire_at_once(
    anyio_backend: str, tmp_path: Path
) -> None:
    n = 1600
    clock = ManualClock(1_000)
    source = Ranges(n, pause_after=n // 8)
    out: list[Any] = []
    env = env_for(tmp_path, 4).set_processing_time_clock(clock)
    build_alarms(env, source, out)
    path = await _until_paused_then_stop(env, source, tmp_path / "savepoints")
    assert out == []  # the clock never moved: nothing was due

    clock.set_time(10_000)  # while no job runs: every timer is overdue at the restore
    source = Ranges(n, pause_after=n // 8)  # restored at the pause: reads nothing more
    out = []
    env = env_for(tmp_path, 3).set_processing_time_clock(clock)
    build_alarms(env, source, out)
    async with anyio.create_task_group() as tg:
        client = await env.execute_async("alarms", restore=path, task_group=tg)
        # No record arrives and the clock does not move: the restore alone fires them.
        await wait_until(lambda: len(out) >= KEYS)
        await wait_until(lambda: source.paused == SPLITS)
        assert source.records_read() == 0
        source.gate.set()
        await client.wait()
    assert sorted(out) == sorted(
        (f"k{k}", 1_500, 10_000, owner(f"k{k}", 3)) for k in range(KEYS)
    )  # each once (the keys' later records found them armed), on the owner of its key


# --- (b) exactly-once sessionization under seeded faults -----------------------------------

GAP = 100


def event(i: int, per_split: int) -> tuple[str, int]:
    """Record ``i``: its key (4 per split, so every key's records come from one split, in
    order) and its timestamp: bursts of 20 records 10 ms apart, 1000 ms between bursts."""
    split, j = divmod(i, per_split)
    return (f"s{split}k{j % 4}", j * 10 + (j // 20) * 1_000)


class Sessions(KeyedProcessFunction):
    """A session per key closes ``GAP`` ms of event time after its last record: an
    event-time timer at ``last + GAP``, moved by each record. A record at or after the end
    closes the open session first (its timer may not have fired yet: watermarks of other
    inputs decide when it fires), so the sessions do not depend on watermark timing."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.session = runtime_context.get_state(ValueStateDescriptor("session"))

    def process_element(self, value: tuple[str, int], ctx: KeyedProcessFunction.Context) -> Any:
        timestamp = ctx.timestamp()
        assert timestamp == value[1]
        timers = ctx.timer_service()
        session = self.session.value()
        if session is not None:
            start, last, count = session
            timers.delete_event_time_timer(last + GAP)
            if timestamp >= last + GAP:
                yield self._line(ctx.get_current_key(), session)
                session = None
        start, count = (timestamp, 0) if session is None else (session[0], session[2])
        self.session.update((start, timestamp, count + 1))
        timers.register_event_time_timer(timestamp + GAP)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        session = self.session.value()
        assert session is not None and session[1] + GAP == timestamp
        self.session.clear()
        yield self._line(ctx.get_current_key(), session)

    @staticmethod
    def _line(key: str, session: tuple[int, int, int]) -> str:
        start, last, count = session
        return f"{key},{start},{last},{count}"


def expected_sessions(n: int) -> list[str]:
    per_split = n // SPLITS
    by_key: dict[str, list[int]] = {}
    for i in range(n):
        key, ts = event(i, per_split)
        by_key.setdefault(key, []).append(ts)
    lines = []
    for key, stamps in by_key.items():
        start = last = stamps[0]
        count = 0
        for ts in stamps:
            if ts >= last + GAP:
                lines.append(f"{key},{start},{last},{count}")
                start, count = ts, 0
            last, count = ts, count + 1
        lines.append(f"{key},{start},{last},{count}")
    return sorted(lines)


async def _sessions_run(tmp_path: Path, n: int, seed: int | None) -> tuple[list[str], int]:
    per_split = n // SPLITS
    env = env_for(tmp_path, 2)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(1000)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 0))
    injector = None
    if seed is not None:
        injector = inject_faults(
            env,
            FaultInjector.random(
                seed,
                operators=["sessions", "sink"],
                parallelism=2,
                max_record=n // 4,
                count=3,
            ),
        )
    strategy = WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(
        lambda i, _ts: event(i, per_split)[1]
    )
    (
        # One split per source subtask: each watermark follows one split's timestamps, so
        # no record is late and the sessions are the same in every run.
        env.from_source(Ranges(n, delay_s=0.001), strategy, "events")
        .set_parallelism(SPLITS)
        .uid("source")
        .map(lambda i: event(i, per_split))
        .set_parallelism(SPLITS)
        .uid("events")
        .key_by(lambda e: e[0])
        .process(Sessions())
        .uid("sessions")
        .sink_to(FileSink(str(tmp_path / "out")))
        .uid("sink")
    )
    with anyio.fail_after(30):
        result = await env.execute("sessions")
    if injector is not None:
        assert (result.restart_count >= 1) == (len(injector.fired) >= 1)
    return read_committed(tmp_path / "out"), result.restart_count


async def test_sessionization_failure_free_run_is_the_reference(
    anyio_backend: str, tmp_path: Path
) -> None:
    lines, restarts = await _sessions_run(tmp_path, 1600, None)
    assert restarts == 0
    assert sorted(lines) == expected_sessions(1600)
    assert len(lines) == len(set(lines))


@pytest.mark.parametrize("seed", range(5))
async def test_exactly_once_sessionization_under_seeded_faults_equals_the_failure_free_run(
    anyio_backend: str, tmp_path: Path, seed: int
) -> None:
    lines, restarts = await _sessions_run(tmp_path, 1600, seed)
    assert restarts >= 1 or seed is None
    assert sorted(lines) == expected_sessions(1600)  # nothing lost, nothing twice


# --- (e) watermark merging with idleness in a real job -------------------------------------


class Controlled(Source[tuple[str, int]]):
    """Two splits fed by the test: ``await source.push(split, record)``. Unbounded until
    :meth:`close`."""

    name = "Controlled"
    bounded = False

    def __init__(self) -> None:
        self.streams = [anyio.create_memory_object_stream[Any](100) for _ in range(2)]

    def create_splits(self, parallelism: int) -> list[Any]:
        return [0, 1]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Any]:
        receive = self.streams[split][1]

        class Reader(SourceReader[Any]):
            count = 0

            async def read_batch(self, max_records: int) -> list[Any] | None:
                try:
                    record = await receive.receive()
                except anyio.EndOfStream:
                    return None
                self.count += 1
                return [record]

            def position(self) -> int:
                return self.count

            async def close(self) -> None:
                receive.close()

        return Reader()

    async def push(self, split: int, record: Any) -> None:
        await self.streams[split][0].send(record)

    async def close(self) -> None:
        for send, _ in self.streams:
            await send.aclose()


class Watch(KeyedProcessFunction):
    """A timer at each record's timestamp; reports records and firings with the watermark
    and processing time they saw."""

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        timestamp = ctx.timestamp()
        assert timestamp is not None
        ctx.timer_service().register_event_time_timer(timestamp)
        yield ("seen", value[0], timestamp)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        service = ctx.timer_service()
        yield ("fired", ctx.get_current_key(), timestamp, service.current_processing_time())


async def test_an_idle_split_does_not_hold_back_timers_and_counts_again_when_it_returns(
    anyio_backend: str,
) -> None:
    clock = ManualClock(0)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.set_processing_time_clock(clock)
    env.get_config().set_auto_watermark_interval(10)
    strategy = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(lambda value, _ts: value[1])
        .with_idleness(Duration.of_millis(50))
    )
    source = Controlled()
    out: list[Any] = []
    (
        env.from_source(source, strategy)  # split 0 on source subtask 0, split 1 on 1
        .key_by(lambda r: r[0])
        .process(Watch())
        .add_sink(out.append)
    )

    def fired(key: str, timestamp: int) -> list[Any]:
        return [r for r in out if r[:3] == ("fired", key, timestamp)]

    def seen(key: str, timestamp: int) -> int:
        return sum(1 for r in out if r == ("seen", key, timestamp))

    async def push(split: int, key: str, timestamp: int) -> None:
        before = seen(key, timestamp)
        await source.push(split, (key, timestamp))
        await wait_until(lambda: seen(key, timestamp) > before)  # through the keyed operator

    async def tick() -> None:
        """Processing time moves 20 ms: one periodic watermark (and idleness check) per
        source subtask; then let the subtasks run."""
        clock.advance(20)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        client = await env.execute_async("idleness", task_group=tg)
        # Both splits at 100 at processing time 0; then split 1 falls silent.
        await push(0, "a", 100)
        await push(1, "b", 100)
        latest = 100
        with anyio.fail_after(10):
            while not fired("a", 200):
                await tick()
                latest += 100
                await push(0, "a", latest)  # split 0 stays active: a record per tick
        # Split 1 held the watermark at 99 until it was idle for more than 50 ms (two
        # idleness checks after its last record, at 20 ms and 40 ms): nothing fired before.
        assert all(r[3] >= 100 for r in out if r[0] == "fired"), out
        await wait_until(lambda: fired("b", 100))  # the idle split's own timer fires too
        assert not fired("a", latest)  # the watermark is split 0's: latest - 1

        # Split 1 returns, ahead of the watermark: it counts again and holds split 0 back.
        back = latest + 1_000
        await push(1, "b", back)
        for _ in range(3):
            await tick()
            await push(1, "b", back)  # keeps split 1 active at watermark back - 1
        while latest < back + 500:
            await tick()
            latest += 100
            await push(0, "a", latest)
            await push(1, "b", back)
        await tick()
        assert fired("a", back - 100)  # below split 1's watermark: fired
        assert not [r for r in out if r[0] == "fired" and r[2] >= back], out
        await push(1, "b", back + 2_000)
        with anyio.fail_after(10):
            while not fired("a", latest - 100):
                await tick()
                await push(0, "a", latest)
                await push(1, "b", back + 2_000)
        assert fired("b", back) and not fired("a", latest)
        await source.close()
        await client.wait()
    timers = [r[1:3] for r in out if r[0] == "fired"]
    assert len(timers) == len(set(timers))  # each timer once
