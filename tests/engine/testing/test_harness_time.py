"""The harness's time verbs (issue 13): ``process_element(value, timestamp)``,
``process_watermark``, ``set_processing_time``, ``get_output`` / ``get_side_output``, and
timers across ``snapshot()`` and a restore at the same or another parallelism (asyncio and
trio)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from streamlet import (
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    StreamRecord,
    TimeDomain,
    Watermark,
)
from streamlet.testing import HarnessSnapshot, KeyedOperatorTestHarness, OperatorTestHarness

pytestmark = pytest.mark.anyio

MAX = 2**63 - 1
KEYS = [f"k{i}" for i in range(40)]
ALARM = OutputTag("alarm")


class Timers(KeyedProcessFunction):
    """Does what each record says, for the record's key (``record[0]``):

    ``(key, "event", ts)`` / ``(key, "proc", ts)`` registers a timer, ``(key, "del-event", ts)``
    / ``(key, "del-proc", ts)`` deletes one, ``(key, "stamp", _)`` emits the record's timestamp.
    ``on_timer`` emits ``(key, timestamp, domain)``, and to the side output ``ALARM`` the
    same for timers at a multiple of 1000.
    """

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        key, action, ts = value
        timers = ctx.timer_service()
        if action == "event":
            timers.register_event_time_timer(ts)
        elif action == "proc":
            timers.register_processing_time_timer(ts)
        elif action == "del-event":
            timers.delete_event_time_timer(ts)
        elif action == "del-proc":
            timers.delete_processing_time_timer(ts)
        elif action == "stamp":
            yield ("stamp", key, ctx.timestamp())
        elif action == "side":
            yield ALARM, ("side", key, ctx.timestamp())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        domain = ctx.time_domain()
        assert domain in (TimeDomain.EVENT_TIME, TimeDomain.PROCESSING_TIME)
        assert ctx.timestamp() == timestamp
        fired = (ctx.get_current_key(), timestamp, domain.name)
        if timestamp % 1000 == 0:
            yield ALARM, fired
        yield fired


def harness(**options: Any) -> KeyedOperatorTestHarness:
    return KeyedOperatorTestHarness(Timers(), key_selector=lambda r: r[0], **options)


def fired(items: list[Any]) -> list[tuple[str, int, str]]:
    return [r.value if isinstance(r, StreamRecord) else r for r in items]


# --- event time ---


async def test_event_time_timers_fire_in_timestamp_order_before_the_watermark() -> None:
    async with harness() as h:
        for key, ts in [("a", 30), ("b", 10), ("c", 20), ("a", 40), ("c", 25)]:
            await h.process_element((key, "event", ts), timestamp=1)
        assert h.get_output() == []
        emitted = await h.process_watermark(25)  # a timer at the watermark is due (<=)
        assert emitted == [
            ("b", 10, "EVENT_TIME"),
            ("c", 20, "EVENT_TIME"),
            ("c", 25, "EVENT_TIME"),
        ]
        # Each firing's output carries the timer's timestamp; the watermark comes after.
        assert h.get_output() == [
            StreamRecord(("b", 10, "EVENT_TIME"), 10),
            StreamRecord(("c", 20, "EVENT_TIME"), 20),
            StreamRecord(("c", 25, "EVENT_TIME"), 25),
            Watermark(25),
        ]
        h.clear_output()
        assert await h.process_watermark(25) == []  # not above the current one: ignored
        assert await h.process_watermark(20) == []
        assert h.get_output() == []
        assert await h.process_watermark(39) == [("a", 30, "EVENT_TIME")]
        assert await h.process_watermark(MAX) == [("a", 40, "EVENT_TIME")]
        assert h.get_output() == [
            StreamRecord(("a", 30, "EVENT_TIME"), 30),
            Watermark(39),
            StreamRecord(("a", 40, "EVENT_TIME"), 40),
            Watermark(MAX),
        ]


async def test_a_timer_registered_at_or_behind_the_watermark_fires_at_the_next_one() -> None:
    async with harness() as h:
        await h.process_watermark(100)
        await h.process_element(("a", "event", 50))  # already late: fires at the next advance
        assert h.extract_output_values() == []
        assert await h.process_watermark(101) == [("a", 50, "EVENT_TIME")]


async def test_event_time_timers_are_deduplicated_per_key_and_timestamp() -> None:
    async with harness() as h:
        await h.process_elements([("a", "event", 10), ("a", "event", 10), ("b", "event", 10)])
        await h.process_element(("a", "event", 10), timestamp=3)
        assert Counter(await h.process_watermark(MAX)) == Counter(
            {("a", 10, "EVENT_TIME"): 1, ("b", 10, "EVENT_TIME"): 1}
        )


async def test_delete_affects_only_the_current_keys_timer() -> None:
    async with harness() as h:
        await h.process_elements(
            [
                ("a", "event", 10),
                ("b", "event", 10),
                ("c", "event", 10),
                ("a", "event", 20),
                ("b", "del-event", 10),
                ("c", "del-event", 99),  # no such timer: nothing happens
                ("c", "del-proc", 10),  # the other domain's: nothing happens
            ]
        )
        assert await h.process_watermark(MAX) == [
            ("a", 10, "EVENT_TIME"),
            ("c", 10, "EVENT_TIME"),
            ("a", 20, "EVENT_TIME"),
        ]


async def test_a_deleted_then_registered_timer_fires_once() -> None:
    async with harness() as h:
        await h.process_elements([("a", "event", 10), ("a", "del-event", 10), ("a", "event", 10)])
        assert await h.process_watermark(MAX) == [("a", 10, "EVENT_TIME")]


# --- processing time ---


async def test_processing_time_timers_fire_when_set_processing_time_passes_them() -> None:
    async with harness() as h:
        await h.set_processing_time(1_000)
        await h.process_elements(
            [("a", "proc", 1_500), ("b", "proc", 1_200), ("b", "proc", 1_200), ("c", "proc", 1_300)]
        )
        await h.process_element(("c", "del-proc", 1_300))
        await h.process_element(("a", "del-event", 1_500))  # the other domain's: stays
        assert await h.set_processing_time(1_199) == []
        assert await h.set_processing_time(1_200) == [("b", 1_200, "PROCESSING_TIME")]
        assert await h.process_watermark(MAX) == []  # event time does not fire them
        assert await h.set_processing_time(5_000) == [("a", 1_500, "PROCESSING_TIME")]
        assert await h.set_processing_time(6_000) == []
        # Processing-time firings carry no timestamp.
        assert [r for r in h.get_output() if isinstance(r, StreamRecord)] == [
            StreamRecord(("b", 1_200, "PROCESSING_TIME")),
            StreamRecord(("a", 1_500, "PROCESSING_TIME")),
        ]
        with pytest.raises(ValueError, match="never goes back"):
            await h.set_processing_time(10)


class Clocked(KeyedProcessFunction):
    """Registers a processing-time timer 100 ms after the current processing time."""

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Any:
        now = ctx.timer_service().current_processing_time()
        ctx.timer_service().register_processing_time_timer(now + 100)
        yield ("registered", value, now)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        now = ctx.timer_service().current_processing_time()
        yield ("fired", ctx.get_current_key(), timestamp, now)


async def test_current_processing_time_is_the_harness_clock() -> None:
    async with KeyedOperatorTestHarness(Clocked(), key_selector=lambda v: v) as h:
        await h.set_processing_time(40)
        assert await h.process_element("a") == [("registered", "a", 40)]
        assert await h.set_processing_time(170) == [("fired", "a", 140, 170)]


# --- timestamps and side outputs ---


async def test_ctx_timestamp_is_the_records_timestamp_and_output_carries_it() -> None:
    async with harness() as h:
        await h.process_element(("a", "stamp", 0), timestamp=17)
        await h.process_element(("a", "stamp", 0))
        await h.process_element(("b", "stamp", 0), timestamp=-5)
        assert h.get_output() == [
            StreamRecord(("stamp", "a", 17), 17),
            StreamRecord(("stamp", "a", None), None),
            StreamRecord(("stamp", "b", -5), -5),
        ]
        with pytest.raises(TypeError, match="timestamp must be an int"):
            await h.process_element(("a", "stamp", 0), timestamp=1.5)  # type: ignore[arg-type]


async def test_side_outputs_from_records_and_timers_with_their_timestamps() -> None:
    async with harness() as h:
        await h.process_element(("a", "side", 0), timestamp=7)
        await h.process_element(("a", "event", 2_000), timestamp=8)
        await h.process_element(("b", "event", 2_001), timestamp=8)
        await h.set_processing_time(10)
        await h.process_element(("c", "proc", 3_000))
        await h.process_watermark(MAX)
        await h.set_processing_time(3_000)
        assert h.get_side_output(ALARM) == [
            StreamRecord(("side", "a", 7), 7),
            StreamRecord(("a", 2_000, "EVENT_TIME"), 2_000),
            StreamRecord(("c", 3_000, "PROCESSING_TIME"), None),
        ]
        # The main output has the firings, not the side records.
        assert h.extract_output_values() == [
            ("a", 2_000, "EVENT_TIME"),
            ("b", 2_001, "EVENT_TIME"),
            ("c", 3_000, "PROCESSING_TIME"),
        ]
        assert h.get_side_output(OutputTag("other")) == []
        assert h.get_side_output(OutputTag("alarm")) == h.get_side_output(ALARM)  # same id
        with pytest.raises(TypeError, match="OutputTag"):
            h.get_side_output("alarm")  # type: ignore[arg-type]


# --- timers across snapshot and restore ---


async def test_timers_survive_snapshot_and_restore_and_fire_once() -> None:
    async with harness() as h:
        await h.process_elements([(k, "event", 100 + i) for i, k in enumerate(KEYS)])
        await h.process_elements([(k, "event", 500) for k in KEYS[:10]])
        assert len(await h.process_watermark(109)) == 10  # k0..k9 fired before the snapshot
        snapshot = await h.snapshot()
        await h.process_element(("late", "event", 120))  # after the snapshot: not in it
        await h.process_element(("k20", "del-event", 120))  # nor is this deletion
    async with harness(restore=snapshot) as restored:
        # Watermarks are not state: the restored operator starts from the beginning of time.
        assert await restored.process_watermark(0) == []
        out = await restored.process_watermark(MAX)
    expected = [(k, 100 + i, "EVENT_TIME") for i, k in enumerate(KEYS) if i >= 10]
    expected += [(k, 500, "EVENT_TIME") for k in KEYS[:10]]
    # Each once, in timestamp order (ties of restored timers go by key group, not by key).
    assert sorted(out) == sorted(expected)
    assert [ts for _, ts, _ in out] == sorted(ts for _, ts, _ in expected)


async def _timers_at_parallelism(parallelism: int) -> tuple[list[HarnessSnapshot], list[Any]]:
    """Register two event-time and one processing-time timer per key, each key on the
    harness of ``parallelism`` that owns it; return the snapshots and the timers."""
    snapshots: list[HarnessSnapshot] = []
    timers: list[Any] = []
    for index in range(parallelism):
        async with harness(parallelism=parallelism, subtask_index=index) as h:
            mine = [k for k in KEYS if h.owns_key(k)]
            for i, key in enumerate(KEYS):
                if key in mine:
                    await h.process_elements(
                        [(key, "event", 10 + i), (key, "event", 70), (key, "proc", 200 + i)]
                    )
                    timers += [(key, 10 + i, "EVENT_TIME"), (key, 70, "EVENT_TIME")]
                    timers.append((key, 200 + i, "PROCESSING_TIME"))
            snapshots.append(await h.snapshot())
    return snapshots, timers


@pytest.mark.parametrize(("old", "new"), [(1, 1), (1, 3), (2, 1), (2, 3), (3, 2), (4, 4)])
async def test_timers_restore_at_any_parallelism_each_firing_once_on_its_owner(
    old: int, new: int
) -> None:
    snapshots, timers = await _timers_at_parallelism(old)
    assert len(timers) == 3 * len(KEYS)
    seen: list[Any] = []
    for index in range(new):
        async with harness(parallelism=new, subtask_index=index, restore=snapshots) as h:
            out = await h.process_watermark(MAX) + await h.set_processing_time(10_000)
            assert all(h.owns_key(key) for key, _, _ in out), (index, out)
            event = [ts for _, ts, domain in out if domain == "EVENT_TIME"]
            assert event == sorted(event)
            seen += out
    assert Counter(seen) == Counter(timers)  # every timer once, none lost, none twice


async def test_an_overdue_processing_time_timer_fires_at_the_first_set_processing_time() -> None:
    async with harness() as h:
        await h.set_processing_time(100)
        await h.process_elements([("a", "proc", 500), ("b", "proc", 900), ("c", "proc", 5_000)])
        snapshot = await h.snapshot()
    for parallelism in (1, 2):
        seen: list[Any] = []
        for index in range(parallelism):
            async with harness(
                parallelism=parallelism, subtask_index=index, restore=snapshot
            ) as restored:
                # The restored clock is already past 500 and 900: both fire at once, in order.
                out = await restored.set_processing_time(1_000)
                assert out == sorted(out, key=lambda r: r[1])
                seen += out
                seen += await restored.set_processing_time(5_000)
        assert sorted(seen) == [
            ("a", 500, "PROCESSING_TIME"),
            ("b", 900, "PROCESSING_TIME"),
            ("c", 5_000, "PROCESSING_TIME"),
        ]


async def test_snapshot_bytes_of_timers_round_trip() -> None:
    async with harness() as h:
        await h.process_elements([("a", "event", 5), ("b", "proc", 7)])
        snapshot = HarnessSnapshot.from_bytes((await h.snapshot()).to_bytes())
    async with harness(restore=snapshot) as restored:
        assert await restored.process_watermark(MAX) == [("a", 5, "EVENT_TIME")]
        assert await restored.set_processing_time(7) == [("b", 7, "PROCESSING_TIME")]


# --- timers need a keyed stream ---


class NonKeyedTimer(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        ctx.timer_service().register_event_time_timer(10)
        return [value]


class NonKeyedDelete(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        ctx.timer_service().delete_processing_time_timer(10)
        return [value]


@pytest.mark.parametrize("function", [NonKeyedTimer, NonKeyedDelete])
async def test_a_non_keyed_process_function_using_timers_gets_a_clear_error(
    function: type[ProcessFunction],
) -> None:
    async with OperatorTestHarness(function()) as h:
        with pytest.raises(TypeError, match=r"timers are only available on a keyed stream.*key_by"):
            await h.process_element(1, timestamp=3)
        assert h.get_output() == []


class NonKeyedStamps(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        service = ctx.timer_service()
        yield (value, ctx.timestamp(), service.current_watermark())
        if value % 2:
            yield ALARM, value


async def test_a_non_keyed_process_function_sees_timestamps_watermarks_and_side_outputs() -> None:
    async with OperatorTestHarness(NonKeyedStamps()) as h:
        await h.process_element(1, timestamp=11)
        assert await h.process_watermark(20) == []  # no timers: just forwarded
        await h.process_element(2, timestamp=12)
        assert h.get_output() == [
            StreamRecord((1, 11, -(2**63)), 11),
            Watermark(20),
            StreamRecord((2, 12, 20), 12),
        ]
        assert h.get_side_output(ALARM) == [StreamRecord(1, 11)]
