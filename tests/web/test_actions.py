"""The REST API's actions: savepoint, stop with savepoint, cancel; the token guards them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from streamlet.web import create_app
from tests.helpers import SPLITS, Ranges
from tests.integration.test_drain import KEYS, N, start_until_paused
from tests.web.web_job import running_job

pytestmark = pytest.mark.asyncio

JSON = {"content-type": "application/json"}


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _outcome(http: httpx.AsyncClient, job_id: str, request_id: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            status = (await http.get(f"/jobs/{job_id}/savepoints/{request_id}")).json()
            if status["status"]["id"] == "COMPLETED":
                return status["operation"]
            await anyio.sleep(0.005)


async def test_trigger_savepoint_then_stop_with_savepoint(tmp_path: Path) -> None:
    async with running_job(tmp_path, fail=False) as (job, _source):
        async with _client(create_app(job)) as http:
            target = str(tmp_path / "manual")
            response = await http.post(
                f"/jobs/{job.job_id}/savepoints", json={"target-directory": target}
            )
            assert response.status_code == 202
            operation = await _outcome(http, job.job_id, response.json()["request-id"])
            location = operation["location"]
            assert location.startswith(target) and (Path(location) / "_metadata").is_file()
            cps = (await http.get(f"/jobs/{job.job_id}/checkpoints")).json()
            assert cps["latest"]["savepoint"]["external_path"] == location
            assert cps["latest"]["savepoint"]["is_savepoint"] is True

            response = await http.post(f"/jobs/{job.job_id}/stop", json={})
            assert response.status_code == 202
            operation = await _outcome(http, job.job_id, response.json()["request-id"])
            assert operation["location"].startswith(str(tmp_path / "savepoints"))
            assert job.status.value == "FINISHED"


async def test_stop_with_drain_fires_the_windows_before_the_savepoint(tmp_path: Path) -> None:
    """``{"drain": true}`` is Flink's drain: the one-day window, which would stay open in a
    plain stop's savepoint, fires with everything the sources read."""
    source = Ranges(N, pause_after=N // 8)
    out: list[Any] = []
    job = await start_until_paused(tmp_path, source, out)
    async with _client(create_app(job)) as http:
        target = str(tmp_path / "savepoints")
        response = await http.post(
            f"/jobs/{job.job_id}/stop", json={"drain": True, "targetDirectory": target}
        )
        assert response.status_code == 202
        operation = await _outcome(http, job.job_id, response.json()["request-id"])
    assert operation["location"].startswith(target)
    assert (Path(operation["location"]) / "_metadata").is_file()
    await job.wait()
    assert sorted(key for key, _ in out) == list(range(KEYS))  # every window fired once
    assert sum(count for _, count in out) == SPLITS * -(-(N // 8) // 16) * 16


async def test_cancel_ends_the_job(tmp_path: Path) -> None:
    async with running_job(tmp_path, fail=False) as (job, _source):
        async with _client(create_app(job)) as http:
            response = await http.patch(f"/jobs/{job.job_id}", params={"mode": "cancel"})
            assert response.status_code == 202
            assert job.done
            assert job.status.value == "CANCELED"
            states = (await http.get("/jobs")).json()["jobs"]
            assert states == [{"id": job.job_id, "status": "CANCELED"}]


async def test_token_refuses_unauthenticated_actions(tmp_path: Path) -> None:
    async with running_job(tmp_path, fail=False) as (job, _source):
        async with _client(create_app(job, token="s3cret")) as http:
            base = f"/jobs/{job.job_id}"
            for method, path in (("POST", "/savepoints"), ("POST", "/stop"), ("PATCH", "")):
                for headers in ({}, {"authorization": "Bearer wrong"}):
                    response = await http.request(method, base + path, json={}, headers=headers)
                    assert response.status_code == 401, (method, path, headers)
                    assert "Authorization: Bearer" in response.json()["errors"][0]
            # Reading needs no token.
            assert (await http.get(base)).status_code == 200
            assert job.status.value == "RUNNING"
            response = await http.post(
                base + "/savepoints", json={}, headers={"authorization": "Bearer s3cret"}
            )
            assert response.status_code == 202
            operation = await _outcome(http, job.job_id, response.json()["request-id"])
            assert "location" in operation


async def test_actions_refuse_bad_requests(tmp_path: Path) -> None:
    async with running_job(tmp_path, fail=False) as (job, _source):
        async with _client(create_app(job)) as http:
            base = f"/jobs/{job.job_id}"
            # A form post (what another site's page can send without asking) is refused.
            form = await http.post(base + "/savepoints", data={"target-directory": "x"})
            assert form.status_code == 415
            bad = await http.post(base + "/savepoints", json={"cancel-job": "yes"})
            assert bad.status_code == 400
            assert bad.json() == {"errors": ["'cancel-job' must be true or false, got 'yes'"]}
            drain = await http.post(base + "/stop", json={"drain": "yes"})
            assert drain.status_code == 400
            assert drain.json() == {"errors": ["'drain' must be true or false, got 'yes'"]}
            unknown = await http.get(base + "/savepoints/nope")
            assert unknown.status_code == 404
            assert job.status.value == "RUNNING"


def test_create_app_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^token must be a non-empty str or None, got ''$"):
        create_app(token="")
    with pytest.raises(TypeError, match=r"JobClient\), got str$"):
        create_app(["job"])  # type: ignore[list-item]
