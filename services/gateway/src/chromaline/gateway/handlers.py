"""The gateway follows each job through the pipeline's events, and each organisation's
retention period through the auth service's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import and_, or_, select

from chromaline.common import inbox
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import (
    Contract,
    OrganisationRetentionChanged,
    ProcessingFailed,
    ReportHtmlReady,
    ReportPdfReady,
    UnknownEventError,
    parse_data,
    spec_for_model,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.logging import get_logger
from chromaline.common.outbox import add_to_outbox
from chromaline.common.retention import accept_internal_event
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs, notifications, report_on_request, retention
from chromaline.gateway.models import TERMINAL_STATES, Job
from chromaline.gateway.settings import GatewaySettings

log = get_logger(__name__)
Event = TypeVar("Event", bound=Contract)

FOLLOWED_EVENTS = (
    "chart.detected",
    "chart.not_found",
    "image.corrected",
    "report.ready",
    "processing.failed",
)


async def on_pipeline_event(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    try:
        event = parse_data(envelope)
        job_id = uuid.UUID(str(event.job_id))
    except (UnknownEventError, ValidationError, ValueError) as error:
        raise PermanentError(f"invalid {envelope.type}: {error}") from error
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, "gateway"):
            return
        job = await jobs.get_job(session, job_id, for_update=True)
        if job is None:
            log.info("job.unknown", job_id=str(job_id), event_type=envelope.type)
            return
        was_running = job.state not in TERMINAL_STATES
        settled_report = jobs.apply_event(job, event)
        if was_running and job.state in TERMINAL_STATES:
            await notifications.announce_job_end(session, job)
        if settled_report is not None:
            await notifications.announce_report(session, job)
    log.info("job.progressed", job_id=str(job_id), event_type=envelope.type)


def _internal_event(envelope: RawEnvelope, runtime: ServiceRuntime, model: type[Event]) -> Event:
    """The data of an event only our services may send, of the type the handler expects."""
    event = accept_internal_event(envelope, runtime.settings)
    if not isinstance(event, model):
        raise PermanentError(f"{envelope.type} is not {spec_for_model(model).routing_key}")
    return event


@asynccontextmanager
async def _job_for_answer(
    runtime: ServiceRuntime, envelope: RawEnvelope, job_id: uuid.UUID
) -> AsyncIterator[Job | None]:
    """The job a form of its report was made for, locked in a transaction, for an answer heard
    for the first time; None for an answer heard before or an unknown job."""
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, "gateway"):
            yield None
            return
        job = await jobs.get_job(session, job_id, for_update=True)
        if job is None:
            log.info("job.unknown", job_id=str(job_id), event_type=envelope.type)
        yield job


async def on_report_pdf_ready(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Record the PDF report the reporter made on request; a download waiting for it sees it."""
    event = _internal_event(envelope, runtime, ReportPdfReady)
    async with _job_for_answer(runtime, envelope, event.job_id) as claimed:
        if claimed is not None:
            report_on_request.record_pdf(claimed, event)
    log.info("job.report_pdf_ready", job_id=str(event.job_id))


async def on_report_html_ready(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Record the HTML report and figures the reporter drew on request; a download waiting for
    them sees them."""
    event = _internal_event(envelope, runtime, ReportHtmlReady)
    async with _job_for_answer(runtime, envelope, event.job_id) as claimed:
        if claimed is not None:
            report_on_request.record_html(claimed, event)
    log.info("job.report_html_ready", job_id=str(event.job_id))


async def on_retention_changed(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    event = _internal_event(envelope, runtime, OrganisationRetentionChanged)
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, "gateway"):
            return
        await retention.record_period(session, event)
    log.info("retention.period_changed", organisation_id=str(event.organisation_id), days=event.days)


async def watchdog(runtime: ServiceRuntime) -> None:
    """Fail jobs that made no progress in their stage past its deadline, so that no job hangs for ever."""
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    while True:
        await asyncio.sleep(settings.watchdog_interval_seconds)
        try:
            await fail_stalled_jobs(runtime, settings.stage_deadlines())
            await fail_stalled_reports(runtime, settings.report_deadline())
        except Exception:
            log.exception("watchdog.failed")


async def fail_stalled_jobs(runtime: ServiceRuntime, deadlines: Mapping[str, timedelta]) -> int:
    """Fail the jobs whose last progress (creation or the last stage reached) is older than the
    deadline of the stage they are in; the message names that stage."""
    now = datetime.now(UTC)
    stalled = or_(
        *(
            and_(Job.state == state, Job.progressed_at < now - deadline)
            for state, deadline in deadlines.items()
        )
    )
    async with runtime.session() as session, session.begin():
        overdue = (
            await session.execute(select(Job).where(stalled).with_for_update(skip_locked=True).limit(100))
        ).scalars()
        count = 0
        for job in overdue:
            stage = job.state
            idle = (now - job.progressed_at).total_seconds()
            limit = deadlines[stage].total_seconds()
            await jobs.fail_job(
                session,
                job,
                "watchdog",
                "timeout",
                f"the {stage} stage stalled: no progress for {idle:.0f} s, past its {limit:.0f} s deadline",
            )
            await notifications.announce_job_end(session, job)
            log.warning("watchdog.job_stalled", job_id=str(job.id), stage=stage, idle_seconds=round(idle))
            count += 1
    if count:
        log.warning("watchdog.failed_jobs", count=count)
    return count


async def fail_stalled_reports(runtime: ServiceRuntime, deadline: timedelta) -> int:
    """Mark failed the reports still pending ``deadline`` after their job was done (the job stays
    done: its corrected image is there) and say so with ``processing.failed`` at stage ``report``."""
    now = datetime.now(UTC)
    async with runtime.session() as session, session.begin():
        overdue = (
            await session.execute(
                select(Job)
                .where(Job.state == "done", Job.report_state == "pending", Job.progressed_at < now - deadline)
                .with_for_update(skip_locked=True)
                .limit(100)
            )
        ).scalars()
        count = 0
        for job in overdue:
            idle = (now - job.progressed_at).total_seconds()
            message = (
                f"the report was not made: still pending {idle:.0f} s after the job was done, "
                f"past its {deadline.total_seconds():.0f} s deadline"
            )
            jobs.fail_report(job, "timeout", message)
            event = ProcessingFailed(
                job_id=job.id, stage=jobs.REPORT_STAGE, reason="timeout", message=message
            )
            await add_to_outbox(session, make_envelope(jobs.PRODUCER, str(job.id), event))
            await notifications.announce_report(session, job)
            log.warning("watchdog.report_stalled", job_id=str(job.id), idle_seconds=round(idle))
            count += 1
    return count
