"""The watchdog: no job hangs; one stuck past its deadline fails with a reason everyone hears."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from chromaline.common.events.contracts import BlobRef, JobOptions
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.handlers import fail_overdue_jobs
from chromaline.gateway.models import Job
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


async def test_jobs_stuck_past_their_deadline_fail_and_say_why(
    service_database_url: str, tmp_path: Path
) -> None:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://watchdog-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
    )
    runtime = ServiceRuntime(SPEC, settings)
    await runtime.start(consume=False)
    heard: list[RawEnvelope] = []

    async def observe(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    await runtime.bus.subscribe("observer", ["image.uploaded", "processing.failed"], observe)
    try:
        blob = BlobRef(bucket="chromaline-originals", key="x/a.jpg")
        async with runtime.session() as session, session.begin():
            _, created = await jobs.create_batch(
                session,
                None,
                [("old.jpg", "image/jpeg", 1, blob), ("new.jpg", "image/jpeg", 1, blob)],
                JobOptions(),
            )
            old, new = created
        async with runtime.session() as session, session.begin():
            await session.execute(
                update(Job).where(Job.id == old.id).values(created_at=datetime.now(UTC) - timedelta(hours=1))
            )
        assert await fail_overdue_jobs(runtime, timedelta(minutes=15)) == 1
        assert await fail_overdue_jobs(runtime, timedelta(minutes=15)) == 0
        async with runtime.session() as session:
            stuck = await session.get(Job, old.id)
            fresh = await session.get(Job, new.id)
        assert stuck is not None
        assert fresh is not None
        assert (stuck.state, stuck.reason) == ("failed", "timeout")
        assert "deadline" in (stuck.message or "")
        assert fresh.state == "detecting"
        for _ in range(200):
            failures = [event for event in heard if event.type == "processing.failed"]
            if failures:
                break
            await asyncio.sleep(0.05)
        assert [(event.type, event.subject, event.data["stage"]) for event in failures] == [
            ("processing.failed", str(old.id), "watchdog")
        ]
    finally:
        await runtime.stop()
