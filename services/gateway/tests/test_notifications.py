"""In-app notifications: created when a job or batch ends, as the uploader's preferences say, and
seen and marked read only by them.

Jobs are ended through the gateway's own handler with pipeline events, on the real PostgreSQL;
the API runs in process with callers named by a test header in place of tokens (who may call
which route at all is the route matrix's business, in test_access.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import update

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.access import Principal, authorize
from chromaline.gateway.handlers import fail_stalled_jobs
from chromaline.gateway.models import Job
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import create_jobs, fail_job, fail_report, finish_job, finish_report

pytestmark = pytest.mark.integration

ORG_A = "org-a"
ORG_B = "org-b"
CALLERS = {
    "alice": Principal("u-alice", ORG_A, "member"),
    "carol": Principal("u-carol", ORG_A, "admin"),
    "alice-elsewhere": Principal("u-alice", ORG_B, "member"),
    "bob": Principal("u-bob", ORG_B, "admin"),
}
"""Alice and Carol share organisation A; Bob is in B, where Alice is a member too."""


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://notifications-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        watchdog_interval_seconds=3600.0,
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    try:
        yield started
    finally:
        await started.stop()


@asynccontextmanager
async def _started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
    yield


def _caller(request: Request) -> Principal:
    return CALLERS[request.headers["X-Test-Caller"]]


@pytest.fixture
def call(runtime: ServiceRuntime) -> Callable[[str], httpx.AsyncClient]:
    """``call(name)``: a client of the gateway app acting as one of :data:`CALLERS`."""
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    app = build_app(runtime, settings, lifespan=_started_elsewhere)
    app.dependency_overrides[authorize] = _caller

    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"X-Test-Caller": name}
        )

    return client


async def _items(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_finished_job_notifies_its_uploader_who_marks_it_read(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    [job_id] = await create_jobs(runtime, ORG_A, "studio.jpg", owner="u-alice")
    async with call("alice") as alice:
        assert await _items(alice) == []
        await finish_job(runtime, job_id)
        [notice] = await _items(alice, unread="true")
        assert notice["kind"] == "job.finished"
        assert notice["job_id"] == str(job_id)
        assert notice["title"] == "studio.jpg is ready"
        assert notice["read_at"] is None
        assert (await alice.get("/api/v1/notifications")).json()["unread"] == 1

        marked = await alice.post(f"/api/v1/notifications/{notice['id']}/read")
        assert marked.status_code == 200
        assert marked.json()["read_at"] is not None
        assert await _items(alice, unread="true") == []
        assert [item["id"] for item in await _items(alice)] == [notice["id"]]
        assert (await alice.get("/api/v1/notifications")).json()["unread"] == 0


async def test_a_failed_job_says_why_and_events_after_the_end_add_nothing(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    [job_id] = await create_jobs(runtime, ORG_A, "blank.jpg", owner="u-alice")
    await fail_job(runtime, job_id)
    await fail_job(runtime, job_id)
    await finish_job(runtime, job_id)
    async with call("alice") as alice:
        [notice] = await _items(alice)
    assert notice["kind"] == "job.failed"
    assert (notice["title"], notice["body"]) == ("blank.jpg failed", "no chart in the photo")


async def test_a_job_still_running_notifies_no_one_even_when_its_report_comes_first(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    [job_id] = await create_jobs(runtime, ORG_A, "slow.jpg", owner="u-alice")
    await finish_report(runtime, job_id)
    async with call("alice") as alice:
        assert await _items(alice) == []
        await finish_job(runtime, job_id)
        assert [item["kind"] for item in await _items(alice)] == ["job.finished"]
        job = (await alice.get(f"/api/v1/jobs/{job_id}")).json()
    assert (job["state"], job["report"]["state"]) == ("done", "ready")


async def test_a_done_job_is_told_once_and_a_failed_report_apart(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    ready_id, broken_id = await create_jobs(runtime, ORG_A, "fine.jpg", "broken.jpg", owner="u-alice")
    for job_id in (ready_id, broken_id):
        await finish_job(runtime, job_id)
    await finish_report(runtime, ready_id)
    await fail_report(runtime, broken_id)
    await fail_report(runtime, broken_id)
    async with call("alice") as alice:
        kinds = [(item["kind"], item["job_id"]) for item in await _items(alice)]
        assert sorted(kinds, key=str) == sorted(
            [
                ("job.finished", str(ready_id)),
                ("job.finished", str(broken_id)),
                ("job.report_failed", str(broken_id)),
                ("batch.finished", None),
            ],
            key=str,
        )
        broken = (await alice.get(f"/api/v1/jobs/{broken_id}")).json()
        ready = (await alice.get(f"/api/v1/jobs/{ready_id}")).json()
    assert broken["state"] == "done"
    assert broken["report"] == {
        "state": "failed",
        "reason": "render_error",
        "message": "the report could not be drawn",
    }
    assert ready["report"] == {"state": "ready", "reason": None, "message": None}
    assert "report.pdf" in ready["files"]


async def test_a_job_the_watchdog_fails_notifies_too(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    [job_id] = await create_jobs(runtime, ORG_A, "stuck.jpg", owner="u-alice")
    async with runtime.session() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id == job_id).values(progressed_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert await fail_stalled_jobs(runtime, {"detecting": timedelta(minutes=15)}) == 1
    async with call("alice") as alice:
        [notice] = await _items(alice)
    assert notice["kind"] == "job.failed"
    assert "deadline" in notice["body"]


async def test_a_batch_ends_with_one_notice_even_when_its_last_jobs_end_at_once(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    first, second, third = await create_jobs(runtime, ORG_A, "a.jpg", "b.jpg", "c.jpg", owner="u-alice")
    await fail_job(runtime, first)
    async with call("alice") as alice:
        assert [item["kind"] for item in await _items(alice)] == ["job.failed"]
        await asyncio.gather(finish_job(runtime, second), finish_job(runtime, third))
        items = await _items(alice)
    kinds = sorted(item["kind"] for item in items)
    assert kinds == ["batch.finished", "job.failed", "job.finished", "job.finished"]
    [batch_notice] = [item for item in items if item["kind"] == "batch.finished"]
    assert batch_notice["title"] == "Batch of 3 images finished"
    assert batch_notice["body"] == "2 done, 1 failed."
    assert batch_notice["job_id"] is None


async def test_preferences_choose_kinds_and_channels(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    async with call("alice") as alice:
        defaults = (await alice.get("/api/v1/notifications/preferences")).json()
        assert defaults == {
            "in_app": True,
            "webhooks": True,
            "job_finished": True,
            "job_failed": True,
            "batch_finished": True,
        }
        changed = await alice.put("/api/v1/notifications/preferences", json={"job_finished": False})
        assert changed.status_code == 200
        assert changed.json() == {**defaults, "job_finished": False}
        assert (await alice.get("/api/v1/notifications/preferences")).json() == changed.json()

        done, failed = await create_jobs(runtime, ORG_A, "fine.jpg", "bad.jpg", owner="u-alice")
        await finish_job(runtime, done)
        await fail_job(runtime, failed)
        assert sorted(item["kind"] for item in await _items(alice)) == ["batch.finished", "job.failed"]

        await alice.put("/api/v1/notifications/preferences", json={"in_app": False, "job_finished": True})
        [later] = await create_jobs(runtime, ORG_A, "later.jpg", owner="u-alice")
        await finish_job(runtime, later)
        assert len(await _items(alice)) == 2, "in-app notifications off: none created"

        refused = await alice.put("/api/v1/notifications/preferences", json={"in_app": "sometimes"})
        assert refused.status_code == 422
    async with call("carol") as carol:
        assert (await carol.get("/api/v1/notifications/preferences")).json() == defaults


async def test_notifications_are_their_recipients_alone(
    runtime: ServiceRuntime, call: Callable[[str], httpx.AsyncClient]
) -> None:
    [alices] = await create_jobs(runtime, ORG_A, "alice.jpg", owner="u-alice")
    [carols] = await create_jobs(runtime, ORG_A, "carol.jpg", owner="u-carol")
    await finish_job(runtime, alices)
    await finish_job(runtime, carols)
    async with (
        call("alice") as alice,
        call("carol") as carol,
        call("bob") as bob,
        call("alice-elsewhere") as elsewhere,
    ):
        [alice_notice] = await _items(alice)
        [carol_notice] = await _items(carol)
        assert alice_notice["job_id"] == str(alices)
        assert carol_notice["job_id"] == str(carols)
        assert await _items(bob) == []
        assert await _items(elsewhere) == [], "acting for another organisation shows only that one's"
        for other in (carol, bob, elsewhere):
            refused = await other.post(f"/api/v1/notifications/{alice_notice['id']}/read")
            assert refused.status_code == 404
            assert refused.json()["code"] == "notification_not_found"
            assert (await other.post("/api/v1/notifications/read-all")).json()["marked"] == (
                1 if other is carol else 0
            )
        [still_unread] = await _items(alice, unread="true")
        assert still_unread["id"] == alice_notice["id"]
        assert (await alice.post("/api/v1/notifications/read-all")).json() == {"marked": 1}
        assert await _items(alice, unread="true") == []
