"""The Prometheus endpoint, parsed by prometheus-client's own parser: Flink's reporter's
names and labels, values that agree with the REST API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamlet.web import create_app
from streamlet.web.prometheus import metric_name
from tests.web.web_job import running_job

pytestmark = pytest.mark.asyncio


def test_metric_name_is_flinks() -> None:
    assert metric_name("taskmanager_job_task", "buffers.inPoolUsage") == (
        "flink_taskmanager_job_task_buffers_inPoolUsage"
    )
    assert metric_name("taskmanager_job_task_operator", "my-group.hits") == (
        "flink_taskmanager_job_task_operator_my_group_hits"
    )


async def test_exposition_parses_with_flink_names_and_labels(tmp_path: Path) -> None:
    async with running_job(tmp_path) as (job, _source):
        app = create_app(job)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/metrics")
            details = (await http.get(f"/jobs/{job.job_id}")).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    (restarts,) = families["flink_jobmanager_job_numRestarts"].samples
    assert restarts.value == 1
    assert restarts.labels == {"job_id": job.job_id, "job_name": "web job", "host": "localhost"}
    assert families["flink_jobmanager_job_numberOfCompletedCheckpoints"].samples[0].value >= 1
    assert families["flink_jobmanager_job_lastCheckpointSize"].samples[0].value > 0
    assert families["flink_jobmanager_job_lastCheckpointRestoreTimestamp"].samples[0].value > 0

    count_vid = details["vertices"][1]["id"]
    records_in = [
        s
        for s in families["flink_taskmanager_job_task_numRecordsIn"].samples
        if s.labels["task_id"] == count_vid
    ]
    assert sorted(s.labels["subtask_index"] for s in records_in) == ["0", "1"]
    assert sum(s.value for s in records_in) == details["vertices"][1]["metrics"]["read-records"]
    assert records_in[0].labels["task_name"] == "Count -> Collect"
    assert records_in[0].labels["task_attempt_num"] == "1"
    for name in (
        "numRecordsOutPerSecond",
        "busyTimeMsPerSecond",
        "idleTimeMsPerSecond",
        "backPressuredTimeMsPerSecond",
        "buffers_inPoolUsage",
        "buffers_outPoolUsage",
        "currentInputWatermark",
    ):
        assert f"flink_taskmanager_job_task_{name}" in families, name

    seen = families["flink_taskmanager_job_task_operator_web_seen"].samples
    assert {s.labels["operator_id"] for s in seen} == {"count"}
    assert {s.labels["operator_name"] for s in seen} == {"Count"}
    assert sum(s.value for s in seen) == sum(
        s.value
        for s in families["flink_taskmanager_job_task_operator_numRecordsIn"].samples
        if s.labels["operator_id"] == "count"
    )
    assert families["flink_taskmanager_job_task_operator_web_answer"].samples[0].value == 42
    assert "flink_taskmanager_job_task_operator_web_sizes_mean" in families
    assert "flink_taskmanager_job_task_operator_web_rate_rate" in families
    watermarks = families["flink_taskmanager_job_task_operator_currentOutputWatermark"].samples
    assert any(s.labels["operator_name"] == "Timestamps" and s.value > 0 for s in watermarks)
