"""The REST API against a running job with checkpoints, a restart and watermarks: each
route answers with Flink's field names and values that agree with the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from streamlet.web import create_app
from tests.web.web_job import running_job

pytestmark = pytest.mark.asyncio


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_rest_routes_have_flinks_shapes(tmp_path: Path) -> None:
    async with running_job(tmp_path) as (job, _source):
        async with _client(create_app(job)) as http:
            overview = (await http.get("/overview")).json()
            assert overview["jobs-running"] == 1
            assert {"taskmanagers", "slots-total", "jobs-finished", "jobs-failed"} <= set(overview)

            jobs = (await http.get("/jobs")).json()
            assert jobs == {"jobs": [{"id": job.job_id, "status": "RUNNING"}]}

            details = (await http.get(f"/jobs/{job.job_id}")).json()
            assert details["jid"] == job.job_id
            assert details["name"] == "web job"
            assert details["state"] == "RUNNING"
            names = [v["name"] for v in details["vertices"]]
            assert names == ["Numbers -> Timestamps", "Count -> Collect"]
            assert [v["parallelism"] for v in details["vertices"]] == [2, 2]
            source_vid, count_vid = (v["id"] for v in details["vertices"])
            assert len(source_vid) == 32
            nodes = details["plan"]["nodes"]
            assert nodes[1]["inputs"] == [
                {
                    "num": 0,
                    "id": source_vid,
                    "ship_strategy": "HASH",
                    "exchange": "pipelined_bounded",
                }
            ]
            assert [o["name"] for o in nodes[1]["streamlet-operators"]] == ["Count", "Collect"]
            assert nodes[1]["streamlet-operators"][0]["uid"] == "count"
            source_metrics = details["vertices"][0]["metrics"]
            # Since the restore, up to the pause; all of it has reached Count (idle now).
            assert 0 < source_metrics["write-records"] <= 800
            assert source_metrics["read-records"] == 0
            assert (
                details["vertices"][1]["metrics"]["read-records"] == source_metrics["write-records"]
            )
            job_metrics = details["streamlet-job-metrics"]
            assert job_metrics["numRestarts"] == 1
            assert job_metrics["numberOfCompletedCheckpoints"] >= 1
            assert job_metrics["lastCheckpointRestoreTimestamp"] > 0
            assert job_metrics["lastCheckpointSize"] > 0

            vertex = (await http.get(f"/jobs/{job.job_id}/vertices/{count_vid}")).json()
            assert vertex["id"] == count_vid and vertex["parallelism"] == 2
            assert [s["subtask"] for s in vertex["subtasks"]] == [0, 1]
            for subtask in vertex["subtasks"]:
                assert subtask["attempt"] == 1
                task = subtask["streamlet-metrics"]
                assert task["numRecordsIn"] == subtask["metrics"]["read-records"]
                assert {
                    "numRecordsInPerSecond",
                    "busyTimeMsPerSecond",
                    "idleTimeMsPerSecond",
                    "backPressuredTimeMsPerSecond",
                    "buffers.inPoolUsage",
                    "buffers.outPoolUsage",
                    "currentInputWatermark",
                } <= set(task)
                count = subtask["streamlet-operators"]["count"]
                assert count["web.seen"] == count["numRecordsIn"]
                assert count["web.answer"] == 42
                assert count["web.sizes"]["count"] == count["numRecordsIn"]
            total_in = sum(s["streamlet-metrics"]["numRecordsIn"] for s in vertex["subtasks"])
            assert total_in == details["vertices"][1]["metrics"]["read-records"]

            pressure = (
                await http.get(f"/jobs/{job.job_id}/vertices/{count_vid}/backpressure")
            ).json()
            assert pressure["status"] == "ok"
            assert pressure["backpressureLevel"] in ("ok", "low", "high")
            assert [s["subtask"] for s in pressure["subtasks"]] == [0, 1]
            for s in pressure["subtasks"]:
                assert 0 <= s["ratio"] <= 1 and 0 <= s["idleRatio"] <= 1
                assert {"busyRatio", "attempt-number", "backpressureLevel"} <= set(s)

            marks = (await http.get(f"/jobs/{job.job_id}/vertices/{count_vid}/watermarks")).json()
            assert [m["id"] for m in marks] == [
                "0.currentInputWatermark",
                "1.currentInputWatermark",
            ]
            # Monotonous timestamps: each key group saw numbers up to a few hundred.
            assert all(0 < int(m["value"]) < 4000 for m in marks), marks

            got = (
                await http.get(
                    f"/jobs/{job.job_id}/vertices/{count_vid}/metrics",
                    params={"get": "0.numRecordsIn,0.Count.web.seen"},
                )
            ).json()
            assert [g["id"] for g in got] == ["0.numRecordsIn", "0.Count.web.seen"]

            cps = (await http.get(f"/jobs/{job.job_id}/checkpoints")).json()
            assert cps["counts"]["completed"] >= 2  # before and after the restart
            assert cps["counts"]["restored"] == 1
            assert cps["counts"]["total"] >= cps["counts"]["completed"] + cps["counts"]["failed"]
            latest = cps["latest"]["completed"]
            assert latest["status"] == "COMPLETED" and latest["className"] == "completed"
            assert latest["num_acknowledged_subtasks"] == latest["num_subtasks"] == 4
            assert latest["external_path"].endswith(f"chk-{latest['id']}")
            assert set(latest["tasks"]) == {source_vid, count_vid}
            assert cps["latest"]["restored"]["restore_timestamp"] > 0
            assert (
                cps["summary"]["end_to_end_duration"]["max"]
                >= cps["summary"]["end_to_end_duration"]["min"]
            )
            assert cps["history"][0]["id"] >= latest["id"]
            for entry in cps["history"]:
                assert {
                    "id",
                    "status",
                    "is_savepoint",
                    "trigger_timestamp",
                    "state_size",
                    "end_to_end_duration",
                    "checkpoint_type",
                } <= set(entry)

            one = (await http.get(f"/jobs/{job.job_id}/checkpoints/details/{latest['id']}")).json()
            assert one["id"] == latest["id"]
            sub = (
                await http.get(
                    f"/jobs/{job.job_id}/checkpoints/details/{latest['id']}/subtasks/{count_vid}"
                )
            ).json()
            assert [s["index"] for s in sub["subtasks"]] == [0, 1]
            for s in sub["subtasks"]:
                assert s["status"] == "completed"
                assert {"sync", "async"} == set(s["checkpoint"])
                assert {"duration", "buffered"} <= set(s["alignment"])
                assert s["start_delay"] >= 0
            assert set(sub["summary"]["checkpoint_duration"]) == {"sync", "async"}

            exc = (await http.get(f"/jobs/{job.job_id}/exceptions")).json()
            entries = exc["exceptionHistory"]["entries"]
            assert len(entries) == 1
            assert entries[0]["exceptionName"] == "InjectedFault"
            assert entries[0]["taskName"] == "Count (1/2)"
            assert "InjectedFault" in exc["root-exception"]

            assert (await http.get("/jobs/nope")).status_code == 404
            missing = await http.get(f"/jobs/{job.job_id}/vertices/nope/backpressure")
            assert missing.status_code == 404
            assert missing.json() == {"errors": ["Vertex nope not found"]}
            assert (await http.get(f"/jobs/{job.job_id}/checkpoints/details/x")).status_code == 404


async def test_checkpoints_report_unaligned_checkpoints_and_their_in_flight_bytes(
    tmp_path: Path,
) -> None:
    from streamlet import StreamExecutionEnvironment
    from tests.integration.test_unaligned import _build, _configure

    env = StreamExecutionEnvironment.get_execution_environment()
    _configure(env, tmp_path)  # unaligned at once, tiny channels, a slow step: data in flight
    _build(env, tmp_path / "out")
    client = await env.execute_async("unaligned web")
    await client.wait()
    async with _client(create_app(client)) as http:
        body = (await http.get(f"/jobs/{client.get_job_id()}/checkpoints")).json()
        unaligned = [c for c in body["history"] if c["is_unaligned"]]
        assert unaligned and any(c["persisted_data"] > 0 for c in unaligned)
        assert body["summary"]["persisted_data"]["max"] > 0
        checkpoint = max(unaligned, key=lambda c: c["persisted_data"])
        assert (
            sum(t["persisted_data"] for t in checkpoint["tasks"].values())
            == (checkpoint["persisted_data"])
        )
        vid = max(checkpoint["tasks"], key=lambda v: checkpoint["tasks"][v]["persisted_data"])
        details = (
            await http.get(
                f"/jobs/{client.get_job_id()}/checkpoints/details/{checkpoint['id']}/subtasks/{vid}"
            )
        ).json()
        done = [s for s in details["subtasks"] if s["status"] == "completed"]
        assert any(s["unaligned_checkpoint"] and s["alignment"]["persisted"] > 0 for s in done)
