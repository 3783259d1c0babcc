from __future__ import annotations

import orjson

from streamlet.checkpoints import (
    CheckpointFailureReason,
    CheckpointKind,
    CheckpointStatsTracker,
    CheckpointStatus,
    SubtaskCheckpointStats,
)


def test_lifecycle_counts_and_history():
    tracker = CheckpointStatsTracker(history_size=2)
    tracker.report_pending(1, CheckpointKind.CHECKPOINT, 100, 2)
    tracker.report_ack(1, SubtaskCheckpointStats("map", 0, ack_timestamp_ms=110, state_size=5))
    snap = tracker.statistics()
    assert (snap.triggered, snap.in_progress) == (1, 1)
    assert snap.history[0].status is CheckpointStatus.IN_PROGRESS
    assert snap.history[0].num_acknowledged_subtasks == 1
    assert snap.history[0].latest_ack_timestamp_ms == 110
    tracker.report_completed(1, 12.5, 5, "/x/chk-1")
    tracker.report_pending(2, CheckpointKind.CHECKPOINT, 200, 2)
    tracker.report_failed(2, CheckpointFailureReason.CHECKPOINT_EXPIRED, "expired", 300, 100.0)
    tracker.report_pending(3, CheckpointKind.SAVEPOINT, 400, 2)
    tracker.report_completed(3, 1.0, 0, "/sp/savepoint-job-3")
    snap = tracker.statistics()
    assert (snap.completed, snap.failed, snap.in_progress) == (2, 1, 0)
    assert [s.checkpoint_id for s in snap.history] == [3, 2]  # bounded, newest first
    assert snap.latest_completed.checkpoint_id == 1
    assert snap.latest_failed.failure_reason is CheckpointFailureReason.CHECKPOINT_EXPIRED
    assert snap.latest_savepoint.is_savepoint


def test_to_dict_is_json_ready():
    tracker = CheckpointStatsTracker()
    tracker.report_restored(7)
    tracker.report_pending(8, CheckpointKind.CHECKPOINT, 100, 1)
    tracker.report_ack(8, SubtaskCheckpointStats("src", 0, sync_duration_ms=0.5))
    tracker.report_completed(8, 3.0, 10, "/x")
    doc = orjson.loads(orjson.dumps(tracker.statistics().to_dict()))
    assert doc["restored_checkpoint_id"] == 7
    latest = doc["latest"]["completed"]
    assert latest["id"] == 8 and latest["status"] == "completed"
    assert latest["checkpoint_type"] == "CHECKPOINT" and not latest["is_savepoint"]
    assert latest["subtasks"][0]["sync_duration_ms"] == 0.5


def test_unknown_ids_are_ignored():
    tracker = CheckpointStatsTracker()
    tracker.report_ack(1, SubtaskCheckpointStats("x", 0))
    assert tracker.report_completed(1, 1.0, 0, "/x") is None
    assert tracker.statistics().completed == 0
