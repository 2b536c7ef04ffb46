"""Jobs and their state: created from uploads, moved forward by the pipeline's events.

A job only moves forward (queued → detecting → correcting → done) or ends failed; events
arriving late or twice never move it back, and a finished job stays finished until its
organisation's retention period is over, when it expires: its files go, its record stays.

A job is done as soon as its corrected image exists. Its report is made afterwards and tracked
beside the job's state (``report_state``: pending → ready or failed), so a slow or failed report
never holds back or fails the image it describes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.events.contracts import (
    BlobRef,
    ChartDetected,
    ChartNotFound,
    ImageCorrected,
    ImageUploaded,
    JobExpired,
    JobOptions,
    ProcessingFailed,
    ReportReady,
)
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import add_to_outbox
from chromaline.gateway.models import DELETED, TERMINAL_STATES, Batch, Job, ReportState
from chromaline.gateway.organisation_settings import with_organisation_guideline

PRODUCER = "gateway"
_RANK = {"queued": 0, "detecting": 1, "correcting": 2, "done": 3, "failed": 3}
REPORT_STAGE = "report"
"""The reporter's stage in ``processing.failed``: it fails a job's report, not the job."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _ref(blob: BlobRef) -> dict[str, str]:
    return {"bucket": blob.bucket, "key": blob.key}


async def create_batch(
    session: AsyncSession,
    organisation_id: str | None,
    files: list[tuple[str, str, int, BlobRef]],
    options: JobOptions,
    *,
    sent_again_from: uuid.UUID | None = None,
) -> tuple[Batch, list[Job]]:
    """Record a batch of stored uploads and queue an ``image.uploaded`` event for each, in the caller's
    transaction; options that name no rating guideline get the organisation's. ``sent_again_from``
    is the job whose photo this is, sent again (with corners marked, or another chart chosen)."""
    options = await with_organisation_guideline(session, organisation_id, options)
    batch = Batch(id=uuid.uuid4(), organisation_id=organisation_id, total=len(files))
    session.add(batch)
    jobs = []
    for filename, content_type, size, blob in files:
        job = new_job(organisation_id, filename, content_type, size, blob, options, batch_id=batch.id)
        job.sent_again_from = sent_again_from
        session.add(job)
        jobs.append(job)
    await session.flush()
    for job in jobs:
        await publish_upload(session, job)
    return batch, jobs


def new_job(
    organisation_id: str | None,
    filename: str,
    content_type: str | None,
    size: int | None,
    blob: BlobRef,
    options: JobOptions,
    *,
    batch_id: uuid.UUID | None = None,
) -> Job:
    return Job(
        id=uuid.uuid4(),
        batch_id=batch_id,
        organisation_id=organisation_id,
        filename=filename,
        content_type=content_type,
        size_bytes=size,
        state="correcting" if options.profile is not None else "detecting",
        options=options.model_dump(mode="json"),
        original=_ref(blob),
        results={},
        stage_times={"uploaded": _now()},
        progressed_at=datetime.now(UTC),
    )


async def publish_upload(session: AsyncSession, job: Job) -> None:
    event = ImageUploaded(
        job_id=job.id,
        batch_id=job.batch_id,
        organisation_id=job.organisation_id,
        filename=job.filename,
        original=BlobRef.model_validate(job.original),
        content_type=job.content_type,
        size_bytes=job.size_bytes,
        options=JobOptions.model_validate(job.options),
    )
    await add_to_outbox(session, make_envelope(PRODUCER, str(job.id), event))


async def fail_job(session: AsyncSession, job: Job, stage: str, reason: str, message: str) -> None:
    """End a job as failed and tell everyone (partners included) through ``processing.failed``."""
    _finish(job, "failed", reason=reason, message=message)
    event = ProcessingFailed(job_id=job.id, stage=stage, reason=reason, message=message)
    await add_to_outbox(session, make_envelope(PRODUCER, str(job.id), event))


def _advance(job: Job, state: str, stage_time: str) -> bool:
    if job.state in TERMINAL_STATES or _RANK[state] < _RANK[job.state]:
        return False
    job.state = state
    job.stage_times = {**job.stage_times, stage_time: _now()}
    job.progressed_at = datetime.now(UTC)
    return True


def _finish(job: Job, state: str, *, reason: str | None = None, message: str | None = None) -> None:
    job.state = state
    job.reason = reason
    job.message = message
    job.finished_at = job.progressed_at = datetime.now(UTC)
    job.stage_times = {**job.stage_times, state: _now()}


def apply_event(job: Job, event: Any) -> ReportState | None:
    """Move ``job`` according to one pipeline event.

    Returns the report's state when this event settled the report of a done job (what to
    announce), else None. The reporter may answer before the gateway hears of the corrected image:
    the report is then recorded, and announced when the job is done.
    """
    if job.state in ("failed", "expired", DELETED):
        return None
    if isinstance(event, ReportReady):
        return _report_ready(job, event)
    if isinstance(event, ProcessingFailed) and event.stage == REPORT_STAGE:
        return fail_report(job, event.reason, event.message)
    if job.state in TERMINAL_STATES:
        return None
    if isinstance(event, ChartDetected):
        if _advance(job, "correcting", "detected"):
            job.chart_type = event.chart_type
            job.other_charts = [chart.model_dump(mode="json") for chart in event.other_charts]
    elif isinstance(event, ChartNotFound):
        job.candidate = event.candidate.model_dump(mode="json") if event.candidate else None
        _finish(job, "failed", reason=event.reason, message=event.message)
    elif isinstance(event, ImageCorrected):
        job.method = event.method
        job.chart_type = event.chart_type or job.chart_type
        job.delta_e_before = event.delta_e2000_before.mean if event.delta_e2000_before else None
        job.delta_e_after = event.delta_e2000_after.mean if event.delta_e2000_after else None
        job.rating = event.rating
        job.warnings = [warning.model_dump(mode="json") for warning in event.warnings]
        results = {"corrected": _ref(event.corrected), "profile": _ref(event.profile)}
        if event.profile_cube is not None:
            results["profile_cube"] = _ref(event.profile_cube)
        if event.measurements is not None:
            results["measurements"] = _ref(event.measurements)
        job.results = {**job.results, **results}
        job.stage_times = {**job.stage_times, "corrected": _now()}
        _finish(job, "done")
        if job.report_state is not None:
            return cast(ReportState, job.report_state)
        job.report_state = "pending"
    elif isinstance(event, ProcessingFailed):
        _finish(job, "failed", reason=event.reason, message=event.message)
    return None


def _report_ready(job: Job, event: ReportReady) -> ReportState | None:
    job.results = {
        **job.results,
        "report_json": _ref(event.report_json),
        **({"report_html": _ref(event.report_html)} if event.report_html is not None else {}),
        **({"report_pdf": _ref(event.report_pdf)} if event.report_pdf is not None else {}),
        **{f"figure_{name}": _ref(ref) for name, ref in event.figures.items()},
        **({"thumbnail": _ref(event.thumbnail)} if event.thumbnail else {}),
    }
    job.report_figures_on_request = list(event.figures_on_request)
    if job.report_state == "ready":
        return None
    job.report_state = "ready"
    job.report_reason = job.report_message = None
    job.stage_times = {**job.stage_times, "reported": _now()}
    return "ready" if job.state == "done" else None


def fail_report(job: Job, reason: str, message: str) -> ReportState | None:
    """Mark the report of ``job`` failed unless it was already settled; the job keeps its state."""
    if job.report_state in ("ready", "failed"):
        return None
    job.report_state = "failed"
    job.report_reason = reason
    job.report_message = message
    job.stage_times = {**job.stage_times, "report_failed": _now()}
    return "failed" if job.state == "done" else None


async def expire_job(
    session: AsyncSession,
    job: Job,
    *,
    retention_days: int,
    cutoff: datetime,
    kept: list[BlobRef],
    now: datetime,
) -> JobExpired:
    """Turn an ended job into its tombstone and announce ``job.expired``, in the caller's transaction.

    The tombstone keeps the job's identity, name, options, outcome and ΔE summary; its original
    (which the caller has deleted) and its results are forgotten. The services that wrote the
    results delete them on hearing the event.
    """
    return await _forget(
        session, job, "expired", kept, now, reason="retention", retention_days=retention_days, cutoff=cutoff
    )


async def delete_job_on_request(
    session: AsyncSession,
    job: Job,
    *,
    deleted_by: uuid.UUID,
    api_key_id: uuid.UUID | None,
    kept: list[BlobRef],
    now: datetime,
) -> JobExpired:
    """Turn a job, ended or still in flight, into a deleted tombstone and announce ``job.expired``
    (reason ``deleted_on_request``), in the caller's transaction; the caller has deleted the original."""
    return await _forget(
        session,
        job,
        DELETED,
        kept,
        now,
        reason="deleted_on_request",
        deleted_by=deleted_by,
        api_key_id=api_key_id,
    )


async def _forget(
    session: AsyncSession, job: Job, state: str, kept: list[BlobRef], now: datetime, **why: Any
) -> JobExpired:
    event = JobExpired(
        job_id=job.id,
        organisation_id=job.organisation_id,
        filename=job.filename,
        expired_at=now,
        original=BlobRef.model_validate(job.original) if job.original else None,
        results={name: BlobRef.model_validate(ref) for name, ref in job.results.items()},
        kept=kept,
        **why,
    )
    job.state = state
    job.expired_at = now
    job.original = {}
    job.results = {}
    job.stage_times = {**job.stage_times, state: now.isoformat()}
    await add_to_outbox(session, make_envelope(PRODUCER, str(job.id), event))
    return event


async def get_job(session: AsyncSession, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()
