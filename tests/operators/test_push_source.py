"""Tests of the push source: backpressure, end, failover, and the write-ahead log."""

from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet.operators.sources.base import DeliveryGuarantee, SourceReader, SourceSessionContext
from streamlet.operators.sources.push import PushSource
from streamlet.operators.sources.wal import WriteAheadLogError
from streamlet.state.errors import StreamletInternalError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _ctx(wal_dir: Path | None = None) -> SourceSessionContext:
    return SourceSessionContext(job_name="job", source_uid="push-1", wal_dir=wal_dir)


async def _open_reader(source: PushSource, position: Any = None) -> SourceReader[Any]:
    [split] = source.create_splits(1)
    reader = source.create_reader(split, position)
    await reader.open()
    return reader


async def _drain(reader: SourceReader[Any]) -> list[Any]:
    out: list[Any] = []
    with anyio.fail_after(5):
        while (batch := await reader.read_batch(100)) is not None:
            out.extend(batch)
    return out


async def test_source_attributes() -> None:
    plain = PushSource()
    assert plain.name == "Push Source"
    assert (plain.bounded, plain.max_parallelism) == (False, 1)
    assert plain.delivery is DeliveryGuarantee.AT_MOST_ONCE
    assert PushSource(write_ahead_log=True).delivery is DeliveryGuarantee.EXACTLY_ONCE
    assert plain.create_splits(3) == ["push"]
    with pytest.raises(ValueError, match=r"^max_buffered must be >= 1, got 0$"):
        PushSource(max_buffered=0)


async def test_push_before_the_job_starts_then_end() -> None:
    source = PushSource(max_buffered=10)
    await source.push(1)
    source.push_nowait({"a": (1, 2)})
    await source.push_many(["x", "y"])
    source.end()
    async with source.session(_ctx()):
        reader = await _open_reader(source)
        try:
            assert await _drain(reader) == [1, {"a": (1, 2)}, "x", "y"]
            assert reader.position() is None
        finally:
            await reader.close()
    with pytest.raises(anyio.ClosedResourceError):
        await source.push(3)


async def test_backpressure_into_the_application() -> None:
    source = PushSource(max_buffered=2)
    source.push_nowait("a")
    source.push_nowait("b")
    with pytest.raises(anyio.WouldBlock):
        source.push_nowait("c")
    pushed = anyio.Event()

    async def push_c() -> None:
        await source.push("c")
        pushed.set()

    async with source.session(_ctx()), anyio.create_task_group() as tg:
        reader = await _open_reader(source)
        try:
            tg.start_soon(push_c)
            await anyio.wait_all_tasks_blocked()
            assert not pushed.is_set()
            assert source.buffered == 2
            with anyio.fail_after(5):
                assert await reader.read_batch(1) == ["a"]
                await pushed.wait()
                assert await reader.read_batch(10) == ["b", "c"]
        finally:
            await reader.close()


async def test_push_many_waits_for_room_record_by_record() -> None:
    source = PushSource(max_buffered=3)
    async with source.session(_ctx()), anyio.create_task_group() as tg:
        reader = await _open_reader(source)
        try:

            async def feed() -> None:
                await source.push_many(range(10))
                await source.close()

            tg.start_soon(feed)
            got: list[int] = []
            with anyio.fail_after(5):
                while (batch := await reader.read_batch(2)) is not None:
                    assert source.buffered <= 3
                    got.extend(batch)
            assert got == list(range(10))
        finally:
            await reader.close()


async def test_reader_waits_for_a_push() -> None:
    source = PushSource()
    async with source.session(_ctx()), anyio.create_task_group() as tg:
        reader = await _open_reader(source)
        try:
            tg.start_soon(source.push, "late")
            with anyio.fail_after(5):
                assert await reader.read_batch(10) == ["late"]
        finally:
            await reader.close()


async def test_pushes_in_a_row_reach_a_waiting_reader_as_one_batch() -> None:
    # push yields only when the buffer is full: a reader that the first push woke runs
    # after the producer's next wait, and reads everything pushed until then at once.
    source = PushSource(max_buffered=10)
    batches: list[list[Any] | None] = []
    async with source.session(_ctx()), anyio.create_task_group() as tg:
        reader = await _open_reader(source)
        try:

            async def read() -> None:
                batches.append(await reader.read_batch(100))

            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            for record in range(5):
                await source.push(record)
            with anyio.fail_after(5):
                await anyio.wait_all_tasks_blocked()
        finally:
            await reader.close()
    assert batches == [[0, 1, 2, 3, 4]]


async def test_push_is_a_cancellation_point() -> None:
    source = PushSource()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await source.push("never")
    assert scope.cancelled_caught
    assert source.buffered == 0


async def test_push_into_a_full_buffer_lets_the_reader_run() -> None:
    source = PushSource(max_buffered=2)
    async with source.session(_ctx()), anyio.create_task_group() as tg:
        reader = await _open_reader(source)
        try:

            async def feed() -> None:
                for record in range(6):
                    await source.push(record)
                await source.close()

            tg.start_soon(feed)
            got: list[int] = []
            with anyio.fail_after(5):
                while (batch := await reader.read_batch(10)) is not None:
                    assert len(batch) <= 2
                    got.extend(batch)
            assert got == list(range(6))
        finally:
            await reader.close()


async def test_failover_keeps_buffered_records() -> None:
    source = PushSource()
    await source.push_many(range(6))
    async with source.session(_ctx()):
        first = await _open_reader(source)
        try:
            assert await first.read_batch(2) == [0, 1]  # lost with the failed attempt
        finally:
            await first.close()
        second = await _open_reader(source, first.position())
        try:
            source.end()
            assert await _drain(second) == [2, 3, 4, 5]
        finally:
            await second.close()


async def test_a_replaced_reader_may_not_read() -> None:
    source = PushSource()
    async with source.session(_ctx()):
        old = await _open_reader(source)
        new = await _open_reader(source)
        try:
            with pytest.raises(anyio.BrokenResourceError, match=r"replaced by a newer one$"):
                await old.read_batch(1)
        finally:
            await old.close()
            await new.close()


async def test_waiting_pusher_is_told_when_the_job_finishes() -> None:
    source = PushSource(max_buffered=1)
    source.push_nowait(0)
    failures: list[BaseException] = []

    async def push_blocked() -> None:
        try:
            await source.push(1)
        except anyio.BrokenResourceError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        async with source.session(_ctx()):
            tg.start_soon(push_blocked)
            await anyio.wait_all_tasks_blocked()
    assert len(failures) == 1
    with pytest.raises(anyio.BrokenResourceError, match=r"has finished$"):
        source.push_nowait(2)
    with pytest.raises(RuntimeError, match=r"already served a job"):
        async with source.session(_ctx()):
            pass


async def test_reader_outside_session_is_an_internal_error() -> None:
    source = PushSource()
    reader = source.create_reader("push", None)
    with pytest.raises(StreamletInternalError, match=r"outside the source's session$"):
        await reader.open()
    await reader.close()


# --- Write-ahead log ---


async def test_wal_needs_a_checkpoint_directory() -> None:
    source = PushSource(write_ahead_log=True)
    with pytest.raises(ValueError, match=r"^write_ahead_log needs a checkpoint directory, "):
        async with source.session(_ctx(None)):
            pass


class _NotLoggable:
    pass


@dataclasses.dataclass
class Click:
    page: str
    at: datetime.datetime


async def test_wal_refuses_what_it_cannot_log_faithfully_at_push_time() -> None:
    source = PushSource(write_ahead_log=True)
    with pytest.raises(
        TypeError,
        match=r"^source 'Push Source' has a write-ahead log, which must give the job exactly "
        r"the records pushed, but cannot log <.*> of type _NotLoggable \(type "
        r"tests\.operators\.test_push_source\._NotLoggable is not supported by the default "
        r"JSON serializer \(it handles str, .*\)\)\. Convert such records to types it "
        r"restores faithfully \(those of keyed state's default serializer\), or turn "
        r"write_ahead_log off \(at-most-once\)$",
    ):
        await source.push(_NotLoggable())
    with pytest.raises(TypeError, match=r"cannot log '\\ud800' of type str.*surrogates"):
        source.push_nowait("\ud800")
    # In a batch, the culprit is named by its index; nothing of the batch is buffered.
    with pytest.raises(TypeError, match=r"cannot log record 1 of the batch, \{1: <"):
        await source.push_many(["fine", {1: _NotLoggable()}])
    assert source.buffered == 0


RECORDS: list[Any] = [
    Click("/docs", datetime.datetime(2024, 1, 1, 12)),
    (1, 2),
    {"k": (1, 2), 3: frozenset({4})},
    datetime.datetime(2024, 5, 6, 7, 8, 9),
    2**70,
    "plain",
]


def _same(got: list[Any], want: list[Any]) -> bool:
    return got == want and [type(r) for r in got] == [type(r) for r in want]


async def test_wal_records_keep_their_types_live_and_replayed(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    await source.push_many(RECORDS[:3])
    for record in [*RECORDS[3:], float("nan"), float("inf"), float("-inf")]:
        await source.push(record)
    source.end()
    async with source.session(_ctx(tmp_path)):
        reader = await _open_reader(source)
        try:
            live = await _drain(reader)
        finally:
            await reader.close()
        replayed_reader = await _open_reader(source, 0)
        try:
            replayed = await _drain(replayed_reader)
        finally:
            await replayed_reader.close()
    for got in (live, replayed):
        assert _same(got[:6], RECORDS)
        assert math.isnan(got[6]) and got[7:] == [math.inf, -math.inf]
    assert live[0] is RECORDS[0]  # live readers get the pushed objects themselves
    assert replayed[0] is not RECORDS[0]  # so the replay really decoded the log


async def test_wal_replay_after_restore(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    async with source.session(_ctx(tmp_path)):
        await source.push_many([f"r{i}" for i in range(5)])
        first = await _open_reader(source)
        try:
            got: list[Any] = []
            with anyio.fail_after(5):
                while len(got) < 3:
                    got += await first.read_batch(3 - len(got)) or []
            assert got == ["r0", "r1", "r2"]
            checkpoint = first.position()
            assert checkpoint == 3
            got = []
            with anyio.fail_after(5):
                while len(got) < 2:
                    got += await first.read_batch(10) or []
            assert got == ["r3", "r4"]  # then the attempt fails
        finally:
            await first.close()
        second = await _open_reader(source, checkpoint)
        try:
            await source.push("r5")
            source.end()
            assert await _drain(second) == ["r3", "r4", "r5"]
            assert second.position() == 6
        finally:
            await second.close()


async def test_wal_survives_the_process_and_a_fresh_start_ignores_it(tmp_path: Path) -> None:
    before = PushSource(write_ahead_log=True)
    async with before.session(_ctx(tmp_path)):
        await before.push_many(["a", "b", "c"])
        reader = await _open_reader(before)
        try:
            with anyio.fail_after(5):
                assert await reader.read_batch(1) == ["a"]
            checkpoint = reader.position()
        finally:
            await reader.close()
    # A new process restores from the checkpoint: b and c come back from the log.
    restored = PushSource(write_ahead_log=True)
    restored.push_nowait("d")
    restored.end()
    async with restored.session(_ctx(tmp_path)):
        reader = await _open_reader(restored, checkpoint)
        try:
            assert await _drain(reader) == ["b", "c", "d"]
        finally:
            await reader.close()
    # A fresh start (no restore): no checkpoint ever completed, so nothing the log holds
    # was safely processed and all of it is replayed (a crash before the first checkpoint).
    fresh = PushSource(write_ahead_log=True)
    fresh.push_nowait("e")
    fresh.end()
    async with fresh.session(_ctx(tmp_path)):
        reader = await _open_reader(fresh)
        try:
            assert await _drain(reader) == ["a", "b", "c", "d", "e"]
            assert reader.position() == 5
            await reader.notify_checkpoint_complete(1, 4)
        finally:
            await reader.close()
    # The next fresh start resumes after the last completed checkpoint's position.
    again = PushSource(write_ahead_log=True)
    again.end()
    async with again.session(_ctx(tmp_path)):
        reader = await _open_reader(again)
        try:
            assert await _drain(reader) == ["e"]
        finally:
            await reader.close()


async def test_wal_fresh_start_on_a_new_directory_replays_nothing(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    source.push_nowait("x")
    source.end()
    async with source.session(_ctx(tmp_path)):
        assert source._buffer.wal is not None
        assert source._buffer.wal.checkpointed_seq == 0
        reader = await _open_reader(source)
        try:
            assert await _drain(reader) == ["x"]
        finally:
            await reader.close()


async def test_wal_uids_that_differ_in_unsafe_characters_get_distinct_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "in_1").mkdir()  # what "in/1" used to be logged under: shared, never read
    uids = ["in/1", "in_1", ".", "..", "source", ""]
    paths = set()
    for uid in uids:
        source = PushSource(write_ahead_log=True)
        source.push_nowait(uid)
        source.end()
        ctx = SourceSessionContext(job_name="job", source_uid=uid, wal_dir=tmp_path)
        async with source.session(ctx):
            wal = source._buffer.wal
            assert wal is not None
            paths.add(wal.path)
            assert wal.path.parent == tmp_path
            reader = await _open_reader(source)
            try:
                assert await _drain(reader) == [uid]  # nobody else's records
            finally:
                await reader.close()
    assert len(paths) == len(uids)
    assert "found a write-ahead log under the old directory name" in caplog.text


async def test_wal_restart_without_checkpoint_replays_this_session(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    async with source.session(_ctx(tmp_path)):
        await source.push_many([1, 2])
        first = await _open_reader(source)
        try:
            with anyio.fail_after(5):
                assert await first.read_batch(10) == [1, 2]
        finally:
            await first.close()
        # No checkpoint completed: the restart starts from scratch, i.e. this session's log.
        source.end()
        second = await _open_reader(source)
        try:
            assert await _drain(second) == [1, 2]
        finally:
            await second.close()


async def test_wal_truncates_on_checkpoint_complete(tmp_path: Path) -> None:
    source = PushSource(max_buffered=10_000, write_ahead_log=True)
    async with source.session(_ctx(tmp_path)):
        wal = source._buffer.wal
        assert wal is not None
        wal.segment_bytes = 64
        reader = await _open_reader(source)
        try:
            for i in range(10):
                await source.push("x" * 100 + str(i))
                with anyio.fail_after(5):
                    assert await reader.read_batch(10) == ["x" * 100 + str(i)]
            assert len(list(wal.path.glob("*.wal"))) == 10
            await reader.notify_checkpoint_complete(1, reader.position())
            assert len(list(wal.path.glob("*.wal"))) == 1
            assert (wal.path / "checkpointed").read_bytes() == b"10\n"
        finally:
            await reader.close()
        with pytest.raises(WriteAheadLogError, match=r"^position 3 of source 'Push Source' needs"):
            await _open_reader(source, 3)


async def test_wal_position_past_the_log_is_an_error(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    async with source.session(_ctx(tmp_path)):
        with pytest.raises(WriteAheadLogError, match=r"is past the end of its write-ahead log"):
            await _open_reader(source, 7)
        with pytest.raises(ValueError, match=r"sequence number >= 0, got 'x'$"):
            await _open_reader(source, "x")


async def test_wal_failure_surfaces_from_read_batch(tmp_path: Path) -> None:
    source = PushSource(write_ahead_log=True)
    async with source.session(_ctx(tmp_path)):
        wal = source._buffer.wal
        assert wal is not None

        def broken_flush(queue: list[Any]) -> None:
            raise OSError(28, "No space left on device")

        wal._flush = broken_flush  # type: ignore[method-assign]
        reader = await _open_reader(source)
        try:
            await source.push("lost")
            with anyio.fail_after(5), pytest.raises(WriteAheadLogError, match="No space left"):
                await reader.read_batch(10)
            with pytest.raises(anyio.BrokenResourceError, match=r"failed: cannot write"):
                await source.push("more")
        finally:
            await reader.close()
