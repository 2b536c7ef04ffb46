"""The watchdog: no job hangs; one that made no progress in its stage past the stage's deadline
fails with a reason everyone hears and a message naming the stage, while a job that is slow
overall but still progressing carries on."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from chromaline.common.events.contracts import BlobRef, ChartDetected, JobOptions
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.handlers import fail_stalled_jobs, fail_stalled_reports
from chromaline.gateway.models import Job
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://watchdog-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        job_deadline_seconds=900,
        stage_deadline_seconds={"correcting": 3 * 3600},
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


async def _create(runtime: ServiceRuntime, *names: str) -> list[Job]:
    blob = BlobRef(bucket="chromaline-originals", key="x/a.jpg")
    async with runtime.session() as session, session.begin():
        _, created = await jobs.create_batch(
            session, None, [(name, "image/jpeg", 1, blob) for name in names], JobOptions()
        )
    return created


async def _age(runtime: ServiceRuntime, job: Job, *, created: datetime, progressed: datetime) -> None:
    async with runtime.session() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id == job.id).values(created_at=created, progressed_at=progressed)
        )


async def _reload(runtime: ServiceRuntime, job: Job) -> Job:
    async with runtime.session() as session:
        loaded = await session.get(Job, job.id)
    assert loaded is not None
    return loaded


def _settings(runtime: ServiceRuntime) -> GatewaySettings:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return settings


async def test_jobs_stalled_in_their_stage_fail_and_say_which_stage(runtime: ServiceRuntime) -> None:
    heard: list[RawEnvelope] = []

    async def observe(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    await runtime.bus.subscribe("observer", ["image.uploaded", "processing.failed"], observe)
    stalled, fresh = await _create(runtime, "old.jpg", "new.jpg")
    await _age(runtime, stalled, created=AN_HOUR_AGO, progressed=AN_HOUR_AGO)
    deadlines = _settings(runtime).stage_deadlines()

    assert await fail_stalled_jobs(runtime, deadlines) == 1
    assert await fail_stalled_jobs(runtime, deadlines) == 0
    failed, carrying_on = await _reload(runtime, stalled), await _reload(runtime, fresh)
    assert (failed.state, failed.reason) == ("failed", "timeout")
    stalled_for = re.fullmatch(
        r"the detecting stage stalled: no progress for (\d+) s, past its 900 s deadline",
        failed.message or "",
    )
    assert stalled_for is not None
    assert int(stalled_for.group(1)) >= 3600
    assert carrying_on.state == "detecting"
    for _ in range(200):
        failures = [event for event in heard if event.type == "processing.failed"]
        if failures:
            break
        await asyncio.sleep(0.05)
    assert [(event.subject, event.data["stage"]) for event in failures] == [(str(stalled.id), "watchdog")]


async def test_a_job_that_still_progresses_is_not_failed_however_old(runtime: ServiceRuntime) -> None:
    [job] = await _create(runtime, "slow.jpg")
    await _age(runtime, job, created=AN_HOUR_AGO, progressed=AN_HOUR_AGO)
    detected = ChartDetected.model_construct(job_id=job.id, chart_type="classic24")
    async with runtime.session() as session, session.begin():
        loaded = await jobs.get_job(session, job.id, for_update=True)
        assert loaded is not None
        jobs.apply_event(loaded, detected)

    assert await fail_stalled_jobs(runtime, _settings(runtime).stage_deadlines()) == 0
    progressed = await _reload(runtime, job)
    assert progressed.state == "correcting"
    assert progressed.created_at == AN_HOUR_AGO
    assert progressed.progressed_at > AN_HOUR_AGO + timedelta(minutes=59)


async def test_each_stage_has_its_own_deadline(runtime: ServiceRuntime) -> None:
    deadlines = _settings(runtime).stage_deadlines()
    assert deadlines["correcting"] == timedelta(hours=3)
    assert deadlines["detecting"] == _settings(runtime).report_deadline() == timedelta(seconds=900)
    [job] = await _create(runtime, "long-fit.jpg")
    async with runtime.session() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job.id).values(state="correcting"))
    await _age(runtime, job, created=AN_HOUR_AGO, progressed=AN_HOUR_AGO)

    assert await fail_stalled_jobs(runtime, deadlines) == 0
    assert await fail_stalled_jobs(runtime, {**deadlines, "correcting": timedelta(minutes=30)}) == 1
    assert "the correcting stage stalled" in ((await _reload(runtime, job)).message or "")


async def test_a_report_stalled_past_its_deadline_fails_and_the_job_stays_done(
    runtime: ServiceRuntime,
) -> None:
    heard: list[RawEnvelope] = []

    async def observe(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    await runtime.bus.subscribe("observer", ["image.uploaded", "processing.failed"], observe)
    stalled, fresh = await _create(runtime, "old.jpg", "new.jpg")
    async with runtime.session() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id.in_((stalled.id, fresh.id))).values(state="done", report_state="pending")
        )
    await _age(runtime, stalled, created=AN_HOUR_AGO, progressed=AN_HOUR_AGO)
    deadline = _settings(runtime).report_deadline()

    assert await fail_stalled_jobs(runtime, _settings(runtime).stage_deadlines()) == 0
    assert await fail_stalled_reports(runtime, deadline) == 1
    assert await fail_stalled_reports(runtime, deadline) == 0
    failed, waiting = await _reload(runtime, stalled), await _reload(runtime, fresh)
    assert (failed.state, failed.report_state, failed.report_reason) == ("done", "failed", "timeout")
    assert failed.message is None
    assert (failed.report_message or "").startswith("the report was not made: still pending")
    assert (waiting.state, waiting.report_state) == ("done", "pending")
    for _ in range(200):
        failures = [event for event in heard if event.type == "processing.failed"]
        if failures:
            break
        await asyncio.sleep(0.05)
    assert [(event.subject, event.data["stage"], event.data["reason"]) for event in failures] == [
        (str(stalled.id), "report", "timeout")
    ]
