"""The coordinator's policy and lifecycle, driven by hand: manual clock, fake gateway."""

from __future__ import annotations

import errno
import logging
import time

import anyio
import pytest

import streamlet.checkpoints.file_blob_store as fileio_module
from streamlet.checkpoints import (
    AckResult,
    CheckpointConfig,
    CheckpointError,
    CheckpointFailureReason,
    CheckpointKind,
    CheckpointStatus,
    FileCheckpointStorage,
    MemoryCheckpointStorage,
    SubtaskCheckpointStats,
    TooManyFailedCheckpointsError,
)
from tests.checkpoints.ckpt_testing import (
    SOURCE,
    TASKS,
    FakeGateway,
    ack_all,
    make_coordinator,
    triggered,
    write_task_state,
)

pytestmark = pytest.mark.asyncio
R = CheckpointFailureReason


# --- triggering policy ---


async def test_trigger_sends_barrier_to_every_source():
    sources = [("src", 0), ("src", 1)]
    tasks = [*sources, ("sink", 0)]
    coordinator, gateway, _ = make_coordinator(tasks=tasks, sources=sources)
    cid = triggered(coordinator)
    assert cid == 1
    assert [task for task, _ in gateway.triggered] == sources
    barrier = gateway.triggered[0][1]
    assert barrier.checkpoint_id == 1 and barrier.kind is CheckpointKind.CHECKPOINT
    assert barrier.timestamp_ms > 0
    assert coordinator.pending_checkpoint_ids == [1]


async def test_never_more_than_max_concurrent_pending():
    coordinator, gateway, _ = make_coordinator(CheckpointConfig().set_max_concurrent_checkpoints(2))
    assert coordinator.trigger_checkpoint() == 1
    assert coordinator.trigger_checkpoint() == 2
    assert coordinator.trigger_checkpoint() is R.TOO_MANY_CONCURRENT_CHECKPOINTS
    assert coordinator.pending_checkpoint_ids == [1, 2]
    await ack_all(coordinator, 1)
    assert coordinator.trigger_checkpoint() == 3
    assert gateway.triggered_ids() == [1, 2, 3]


async def test_refused_trigger_consumes_no_id():
    coordinator, _, _ = make_coordinator()
    assert coordinator.trigger_checkpoint() == 1
    assert coordinator.trigger_checkpoint() is R.TOO_MANY_CONCURRENT_CHECKPOINTS
    await ack_all(coordinator, 1)
    assert coordinator.trigger_checkpoint() == 2


async def test_min_pause_after_completion_is_respected():
    config = CheckpointConfig().set_min_pause_between_checkpoints(500)
    coordinator, _, clock = make_coordinator(config)
    assert coordinator.trigger_checkpoint() == 1
    clock.advance(1.0)
    await ack_all(coordinator, 1)
    clock.advance(0.499)
    assert coordinator.trigger_checkpoint() is R.MINIMUM_TIME_BETWEEN_CHECKPOINTS
    clock.advance(0.001)
    assert coordinator.trigger_checkpoint() == 2


async def test_savepoint_bypasses_limits_and_blocks_periodic_checkpoints(tmp_path):
    config = CheckpointConfig().set_min_pause_between_checkpoints(1000)
    coordinator, gateway, _ = make_coordinator(config)
    assert coordinator.trigger_checkpoint() == 1
    sp = triggered(coordinator, CheckpointKind.SAVEPOINT, str(tmp_path))
    assert sp == 2
    assert gateway.triggered[-1][1].kind is CheckpointKind.SAVEPOINT
    await ack_all(coordinator, 1)
    # A savepoint is in flight: periodic checkpoints wait for it.
    assert coordinator.trigger_checkpoint() is R.TOO_MANY_CONCURRENT_CHECKPOINTS
    # Forced checkpoints (the final one of a bounded job) skip the checks.
    assert coordinator.trigger_checkpoint(force=True) == 3


async def test_savepoint_needs_a_directory():
    coordinator, _, _ = make_coordinator()
    with pytest.raises(ValueError, match=r"^a savepoint needs a target directory, got None$"):
        coordinator.trigger_checkpoint(CheckpointKind.SAVEPOINT)
    with pytest.raises(ValueError, match=r"^only savepoints take a target directory"):
        coordinator.trigger_checkpoint(savepoint_dir="/tmp/x")


async def test_gateway_failure_aborts_the_trigger():
    coordinator, gateway, _ = make_coordinator()
    gateway.fail_trigger = RuntimeError("mailbox closed")
    assert coordinator.trigger_checkpoint() is R.TRIGGER_CHECKPOINT_FAILURE
    assert coordinator.pending_checkpoint_ids == []
    assert coordinator.job_failure is None
    with pytest.raises(CheckpointError, match=r"mailbox closed"):
        await coordinator.wait_for_completion(1)


# --- completion ---


async def test_full_ack_completes_and_writes_metadata_last(caplog):
    storage = MemoryCheckpointStorage("job")
    coordinator, gateway, _ = make_coordinator(storage=storage)
    cid = triggered(coordinator)
    for task in TASKS[:-1]:
        handles = await write_task_state(storage, cid, task)
        assert await coordinator.receive_acknowledge(task, cid, handles) is AckResult.SUCCESS
    assert await storage.list_completed() == []
    assert gateway.completed == []
    last = TASKS[-1]
    handles = await write_task_state(storage, cid, last)
    with caplog.at_level(logging.INFO, logger="streamlet.checkpoints"):
        assert await coordinator.receive_acknowledge(last, cid, handles) is AckResult.SUCCESS
    assert [op for op, _, _ in storage.operations] == ["state", "state", "state", "metadata"]
    assert await storage.list_completed() == [1]
    assert gateway.completed == [1]
    completed = await coordinator.wait_for_completion(1)
    assert completed.checkpoint_id == 1
    assert coordinator.latest_completed() == completed
    assert {(h.operator_uid, h.subtask_index) for h in completed.metadata.states} == set(TASKS)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "checkpoint 1" in infos[0].getMessage() and "bytes" in infos[0].getMessage()
    stats = coordinator.statistics()
    assert stats.completed == 1 and stats.in_progress == 0
    assert stats.latest_completed.status is CheckpointStatus.COMPLETED
    assert stats.latest_completed.num_acknowledged_subtasks == 3
    assert stats.latest_completed.state_size == completed.state_size > 0


async def test_duplicate_unknown_and_late_acks():
    coordinator, _, _ = make_coordinator()
    cid = triggered(coordinator)
    handles = await write_task_state(coordinator.storage, cid, SOURCE)
    assert await coordinator.receive_acknowledge(SOURCE, cid, handles) is AckResult.SUCCESS
    assert await coordinator.receive_acknowledge(SOURCE, cid, handles) is AckResult.DUPLICATE
    assert await coordinator.receive_acknowledge(("nope", 0), cid) is AckResult.UNKNOWN
    assert await coordinator.receive_acknowledge(SOURCE, 99) is AckResult.UNKNOWN
    await ack_all(coordinator, cid, TASKS[1:])
    assert await coordinator.receive_acknowledge(SOURCE, cid) is AckResult.DISCARDED


async def test_retention_deletes_older_checkpoints():
    storage = MemoryCheckpointStorage("job")
    config = CheckpointConfig().set_max_retained_checkpoints(2)
    coordinator, _, _ = make_coordinator(config, storage)
    for _ in range(3):
        cid = triggered(coordinator)
        await ack_all(coordinator, cid)
    assert await storage.list_completed() == [2, 3]
    assert ("discard", 1, "") in storage.operations
    assert [c.checkpoint_id for c in coordinator.completed_store.all()] == [2, 3]


async def test_retained_checkpoint_survives_retention_until_released():
    storage = MemoryCheckpointStorage("job")
    coordinator, _, _ = make_coordinator(storage=storage)
    await ack_all(coordinator, triggered(coordinator))
    coordinator.retain_checkpoint(1)
    await ack_all(coordinator, triggered(coordinator))
    assert await storage.list_completed() == [1, 2]
    await coordinator.release_checkpoint(1)
    assert await storage.list_completed() == [2]


async def test_completion_subsumes_older_pending_checkpoints():
    config = CheckpointConfig().set_max_concurrent_checkpoints(2)
    coordinator, gateway, _ = make_coordinator(config)
    coordinator.trigger_checkpoint()
    coordinator.trigger_checkpoint()
    await ack_all(coordinator, 2)
    assert gateway.log[-2:] == [("aborted", 1), ("complete", 2)]
    with pytest.raises(CheckpointError, match=r"has been subsumed"):
        await coordinator.wait_for_completion(1)
    assert coordinator.job_failure is None  # subsumption never counts


async def test_a_newer_checkpoint_finishing_its_metadata_first_subsumes_the_older_one():
    # Checkpoint 1's _metadata write stalls (slow disk) while 2 completes: 1 is subsumed
    # then, not added to the store out of order (that raised ValueError and failed the job).
    release = anyio.Event()
    stalled = anyio.Event()

    async def hook(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "metadata" and checkpoint_id == 1:
            stalled.set()
            await release.wait()

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    config = CheckpointConfig().set_max_concurrent_checkpoints(2)
    coordinator, gateway, _ = make_coordinator(config, storage)
    assert coordinator.trigger_checkpoint() == 1
    assert coordinator.trigger_checkpoint() == 2
    async with anyio.create_task_group() as tg:
        tg.start_soon(ack_all, coordinator, 1)
        await stalled.wait()
        await ack_all(coordinator, 2)
        release.set()
    assert [c.checkpoint_id for c in coordinator.completed_store.all()] == [2]
    assert gateway.completed == [2]
    with pytest.raises(CheckpointError, match=r"has been subsumed"):
        await coordinator.wait_for_completion(1)
    assert await storage.list_completed() == [2]  # 1's late _metadata is discarded
    assert coordinator.job_failure is None


async def test_retention_delete_survives_the_cancellation_of_the_acking_task():
    # A failover cancels the subtask whose acknowledgement completed a checkpoint while the
    # coordinator awaits the deletion retention asked for: the deletion still happens.
    deleting = anyio.Event()
    release = anyio.Event()

    async def hook(operation: str, checkpoint_id: int, name: str) -> None:
        if operation == "discard" and checkpoint_id == 1:
            deleting.set()
            await release.wait()

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    coordinator, _, _ = make_coordinator(storage=storage)
    await ack_all(coordinator, triggered(coordinator))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ack_all, coordinator, triggered(coordinator))
        await deleting.wait()
        tg.cancel_scope.cancel()
        release.set()
    assert await storage.list_completed() == [2]


async def test_a_savepoint_newer_than_every_checkpoint_is_the_recovery_point(tmp_path):
    storage = FileCheckpointStorage(tmp_path / "ckpt", "job")
    coordinator, _, _ = make_coordinator(storage=storage)
    await ack_all(coordinator, triggered(coordinator))
    assert coordinator.latest_recovery_point().checkpoint_id == 1
    savepoint_id = triggered(coordinator, CheckpointKind.SAVEPOINT, str(tmp_path / "sp"))
    await ack_all(coordinator, savepoint_id)
    point = coordinator.latest_recovery_point()
    assert (point.kind, point.checkpoint_id) == (CheckpointKind.SAVEPOINT, savepoint_id)
    assert coordinator.latest_completed().checkpoint_id == 1  # the store keeps checkpoints
    await ack_all(coordinator, triggered(coordinator))
    assert coordinator.latest_recovery_point().checkpoint_id == savepoint_id + 1


# --- timeouts and failures ---


async def test_timeout_aborts_removes_files_and_notifies():
    storage = MemoryCheckpointStorage("job")
    config = (
        CheckpointConfig().set_checkpoint_timeout(1000).set_tolerable_checkpoint_failure_number(1)
    )
    coordinator, gateway, clock = make_coordinator(config, storage)
    cid = triggered(coordinator)
    handles = await write_task_state(storage, cid, SOURCE)
    await coordinator.receive_acknowledge(SOURCE, cid, handles)
    clock.advance(0.999)
    await coordinator.check_timeouts()
    assert coordinator.pending_checkpoint_ids == [1]
    clock.advance(0.001)
    await coordinator.check_timeouts()
    assert coordinator.pending_checkpoint_ids == []
    assert gateway.aborted == [1]
    assert ("discard", 1, "") in storage.operations
    with pytest.raises(KeyError):
        storage.directory(1)
    with pytest.raises(CheckpointError, match=r"Checkpoint expired before completing"):
        await coordinator.wait_for_completion(1)
    stats = coordinator.statistics()
    assert stats.failed == 1
    assert stats.latest_failed.failure_reason is R.CHECKPOINT_EXPIRED
    assert coordinator.job_failure is None  # one failure tolerated


async def test_tolerable_failures_exceeded_fails_job_saying_why():
    failures: list[BaseException] = []
    config = CheckpointConfig().set_tolerable_checkpoint_failure_number(2)
    coordinator, _, _ = make_coordinator(config, on_job_failure=failures.append)
    for _ in range(3):
        cid = triggered(coordinator)
        assert isinstance(cid, int)
        result = await coordinator.receive_decline(
            ("map", 1), cid, R.CHECKPOINT_ASYNC_EXCEPTION, "boom in operator 'x'"
        )
        assert result is AckResult.SUCCESS
    error = coordinator.job_failure
    assert isinstance(error, TooManyFailedCheckpointsError)
    assert failures == [error]
    assert error.reason is R.CHECKPOINT_ASYNC_EXCEPTION
    assert str(error) == (
        "Exceeded checkpoint tolerable failure threshold: 3 consecutive failed checkpoints, "
        "2 tolerated; last failure: checkpoint 3 failed: Asynchronous task checkpoint failed. "
        "declined by map subtask 1: boom in operator 'x'"
    )
    assert coordinator.trigger_checkpoint() is R.CHECKPOINT_COORDINATOR_SUSPEND
    with pytest.raises(TooManyFailedCheckpointsError):
        await coordinator.run()
    coordinator.resume()
    assert coordinator.trigger_checkpoint() == 4


async def test_completion_resets_consecutive_failures():
    config = CheckpointConfig().set_tolerable_checkpoint_failure_number(1)
    coordinator, _, _ = make_coordinator(config)
    cid = triggered(coordinator)
    await coordinator.receive_decline(SOURCE, cid, R.CHECKPOINT_DECLINED)
    await ack_all(coordinator, triggered(coordinator))
    cid = triggered(coordinator)
    await coordinator.receive_decline(SOURCE, cid, R.CHECKPOINT_DECLINED)
    assert coordinator.job_failure is None


async def test_subsumed_and_cancelled_declines_are_not_counted():
    coordinator, _, _ = make_coordinator()  # tolerable = 0
    for reason in (R.CHECKPOINT_DECLINED_SUBSUMED, R.CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER):
        cid = triggered(coordinator)
        await coordinator.receive_decline(("map", 0), cid, reason)
    assert coordinator.job_failure is None
    assert coordinator.statistics().failed == 2


async def test_decline_paths():
    storage = MemoryCheckpointStorage("job")
    coordinator, gateway, _ = make_coordinator(
        CheckpointConfig().set_tolerable_checkpoint_failure_number(5), storage
    )
    assert await coordinator.receive_decline(SOURCE, 1, R.CHECKPOINT_DECLINED) is AckResult.UNKNOWN
    cid = triggered(coordinator)
    assert await coordinator.receive_decline(("x", 9), cid, R.CHECKPOINT_DECLINED) is (
        AckResult.UNKNOWN
    )
    handles = await write_task_state(storage, cid, SOURCE)
    await coordinator.receive_acknowledge(SOURCE, cid, handles)
    assert await coordinator.receive_decline(("map", 0), cid, R.STORAGE_FAILURE, "disk") is (
        AckResult.SUCCESS
    )
    assert await coordinator.receive_decline(("map", 1), cid, R.STORAGE_FAILURE) is (
        AckResult.DISCARDED
    )
    assert gateway.aborted == [cid]
    # A subtask that was still writing acknowledges late: its files are removed again.
    late = await write_task_state(storage, cid, ("map", 1))
    assert storage.directory(cid)
    assert await coordinator.receive_acknowledge(("map", 1), cid, late) is AckResult.DISCARDED
    with pytest.raises(KeyError):
        storage.directory(cid)


async def test_metadata_failure_aborts_and_recovers_when_storage_recovers():
    broken = {"on": True}

    async def hook(operation, checkpoint_id, name):
        if broken["on"] and operation == "metadata":
            raise OSError(errno.ENOSPC, "No space left on device")

    storage = MemoryCheckpointStorage("job", write_hook=hook)
    config = CheckpointConfig().set_tolerable_checkpoint_failure_number(1)
    coordinator, gateway, _ = make_coordinator(config, storage)
    cid = triggered(coordinator)
    await ack_all(coordinator, cid)
    assert await storage.list_completed() == []
    with pytest.raises(KeyError):
        storage.directory(cid)  # state files discarded, no _metadata left
    assert gateway.aborted == [cid] and gateway.completed == []
    with pytest.raises(CheckpointError, match=r"Failure to finalize checkpoint\. .*No space left"):
        await coordinator.wait_for_completion(cid)
    assert coordinator.job_failure is None
    broken["on"] = False
    cid = triggered(coordinator)
    await ack_all(coordinator, cid)
    assert await storage.list_completed() == [cid]
    assert coordinator._tolerance.consecutive == 0


async def test_storage_failure_during_snapshot_is_declined_and_counted():
    coordinator, _, _ = make_coordinator()
    cid = triggered(coordinator)
    await coordinator.receive_decline(("map", 0), cid, R.STORAGE_FAILURE, "ENOSPC")
    assert isinstance(coordinator.job_failure, TooManyFailedCheckpointsError)
    assert coordinator.job_failure.reason is R.STORAGE_FAILURE


async def test_abort_all_and_shutdown():
    config = CheckpointConfig().set_max_concurrent_checkpoints(2)
    coordinator, gateway, _ = make_coordinator(config)
    coordinator.trigger_checkpoint()
    coordinator.trigger_checkpoint()
    await coordinator.abort_all(R.JOB_FAILOVER_REGION)
    assert coordinator.pending_checkpoint_ids == []
    assert gateway.aborted == []  # subtasks are going away: not notified by default
    assert coordinator.job_failure is None
    coordinator.trigger_checkpoint()
    await coordinator.shutdown()
    assert coordinator.trigger_checkpoint() is R.CHECKPOINT_COORDINATOR_SHUTDOWN
    await coordinator.run()  # returns at once after shutdown


async def test_wait_for_unknown_checkpoint():
    coordinator, _, _ = make_coordinator()
    with pytest.raises(ValueError, match=r"^unknown checkpoint id 5$"):
        await coordinator.wait_for_completion(5)


async def test_ack_stats_are_recorded():
    coordinator, _, _ = make_coordinator()
    cid = triggered(coordinator)
    stats = SubtaskCheckpointStats("source", 0, sync_duration_ms=1.5, alignment_duration_ms=2.0)
    handles = await write_task_state(coordinator.storage, cid, SOURCE)
    await coordinator.receive_acknowledge(SOURCE, cid, handles, stats)
    (in_progress,) = coordinator.statistics().history
    assert in_progress.status is CheckpointStatus.IN_PROGRESS
    (sub,) = in_progress.subtasks
    assert sub.sync_duration_ms == 1.5 and sub.ack_timestamp_ms > 0
    assert sub.state_size == handles[0].size


# --- savepoints ---


async def test_savepoint_waits_and_is_not_retained(tmp_path):
    storage = FileCheckpointStorage(tmp_path / "chk", "job")
    coordinator, gateway, _ = make_coordinator(storage=storage)

    async def ack_when_triggered():
        while not gateway.triggered:
            await anyio.sleep(0)
        await ack_all(coordinator, gateway.triggered[-1][1].checkpoint_id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ack_when_triggered)
        savepoint = await coordinator.trigger_savepoint(str(tmp_path / "sp"))
    assert savepoint.kind is CheckpointKind.SAVEPOINT
    assert savepoint.location == str(tmp_path / "sp" / "savepoint-job-1")
    assert coordinator.completed_store.all() == []
    assert gateway.completed == [1]
    assert coordinator.statistics().latest_savepoint.external_path == savepoint.location


# --- ids across runs ---


async def test_ids_keep_increasing_across_coordinators_on_one_directory(tmp_path):
    first, _, _ = make_coordinator(storage=FileCheckpointStorage(tmp_path, "job"))
    await ack_all(first, triggered(first))
    aborted = triggered(first)
    await first.receive_decline(SOURCE, aborted, R.CHECKPOINT_DECLINED_SUBSUMED)
    await ack_all(first, triggered(first))
    assert await first.storage.list_completed() == [3]
    second, _, _ = make_coordinator(storage=FileCheckpointStorage(tmp_path, "job"))
    assert second.trigger_checkpoint() == 4


async def test_restored_checkpoint_joins_store_and_ids_continue(tmp_path):
    storage = FileCheckpointStorage(tmp_path, "job")
    first, _, _ = make_coordinator(storage=storage)
    await ack_all(first, triggered(first))
    restored = first.latest_completed()
    fresh = FileCheckpointStorage(tmp_path / "elsewhere", "job")
    foreign, _, _ = make_coordinator(storage=fresh, restored=restored)
    assert foreign.completed_store.all() == []  # not in its directory: never deleted
    assert foreign.trigger_checkpoint() == 2
    same, _, _ = make_coordinator(storage=FileCheckpointStorage(tmp_path, "job"), restored=restored)
    assert same.latest_completed() == restored
    assert same.statistics().restored_checkpoint_id == 1


# --- the periodic loop (real time, short interval) ---


async def test_run_triggers_periodically_and_expires():
    class SignallingGateway(FakeGateway):
        def trigger_checkpoint(self, task, barrier):
            super().trigger_checkpoint(task, barrier)
            event.set()

    event = anyio.Event()
    gateway = SignallingGateway()
    config = (
        CheckpointConfig().set_checkpoint_interval(10).set_tolerable_checkpoint_failure_number(5)
    )
    import time

    coordinator, _, _ = make_coordinator(config, gateway=gateway, clock=time.monotonic)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(coordinator.run)
            await event.wait()
            event = anyio.Event()
            await ack_all(coordinator, 1)
            await event.wait()
            await coordinator.shutdown()
    assert gateway.triggered_ids()[:2] == [1, 2]
    assert gateway.completed == [1]


async def test_run_raises_when_tolerable_failures_exceeded():
    config = CheckpointConfig().set_checkpoint_interval(10).set_checkpoint_timeout(10)
    coordinator, _, _ = make_coordinator(config, clock=time.monotonic)
    with anyio.fail_after(5), pytest.raises(TooManyFailedCheckpointsError) as info:
        await coordinator.run()
    assert info.value.reason is R.CHECKPOINT_EXPIRED


# --- storage failures end to end: snapshot, decline, abort, recover ---


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")],
)
async def test_file_storage_failure_declines_aborts_and_recovers(tmp_path, monkeypatch, code, text):
    from streamlet.checkpoints import OperatorSnapshot, write_subtask_snapshot

    real = fileio_module._write_synced_sync
    failing = {"on": True}

    def flaky(path, data):
        if failing["on"] and "map" in path.name:
            raise OSError(code, text)
        real(path, data)

    monkeypatch.setattr(fileio_module, "_write_synced_sync", flaky)

    class Op:
        def serialize(self) -> bytes:
            return b"state"

    storage = FileCheckpointStorage(tmp_path, "job")
    config = CheckpointConfig().set_tolerable_checkpoint_failure_number(1)
    coordinator, gateway, _ = make_coordinator(config, storage)

    async def run_checkpoint() -> int:
        cid = triggered(coordinator)
        for uid, index in TASKS:
            result = await write_subtask_snapshot(
                storage, cid, index, 2, 8, [OperatorSnapshot(uid, operator_state=Op())]
            )
            if result.ok:
                await coordinator.receive_acknowledge((uid, index), cid, result.handles)
            else:
                assert result.failure is not None  # a failed write says why
                await coordinator.receive_decline((uid, index), cid, result.failure, result.detail)
        return cid

    cid = await run_checkpoint()
    assert gateway.aborted == [cid]
    assert not (tmp_path / "job" / f"chk-{cid}").exists()
    failed = coordinator.statistics().latest_failed
    assert failed.failure_reason is R.STORAGE_FAILURE
    assert failed.failure_message is not None
    assert text in failed.failure_message and "op-map-0.state" in failed.failure_message
    assert coordinator.job_failure is None
    failing["on"] = False
    cid = await run_checkpoint()
    assert (tmp_path / "job" / f"chk-{cid}" / "_metadata").exists()
    assert await storage.list_completed() == [cid]
