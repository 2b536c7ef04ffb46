"""The reporter turns each corrected photo's measurements into JSON and HTML reports, makes the
PDF report when it is first asked for, and deletes them all when their job expires."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from sqlalchemy import Delete, delete
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import inbox
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import (
    BlobRef,
    ImageCorrected,
    ProcessingFailed,
    ReportPdfReady,
    ReportPdfRequested,
    ReportReady,
    UnknownEventError,
    parse_data,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.forgotten_jobs import forgotten_now, job_transaction
from chromaline.common.logging import get_logger
from chromaline.common.measurements import Measurements
from chromaline.common.metrics import stage
from chromaline.common.outbox import add_to_outbox
from chromaline.common.retention import accept_internal_event, forget_expired_job
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter.models import Report

NAME = "reporter"
log = get_logger(__name__)

REPORT_TYPES = (
    ("json", "application/json"),
    ("html", "text/html; charset=utf-8"),
)
"""The reports written with every report; the PDF is written on request."""
PDF = "pdf"


def report_key(job_id: uuid.UUID, kind: str) -> str:
    return f"{job_id}/report.{kind}"


FIGURES = ("chromaticity", "tone_response", "patch_pairs", "delta_e")
"""The report's figures, also stored alone as SVG for the web app's result page."""


def figure_key(job_id: uuid.UUID, name: str) -> str:
    return f"{job_id}/figure-{name}.svg"


def thumbnail_key(job_id: uuid.UUID) -> str:
    return f"{job_id}/thumbnail.jpg"


PREVIEWS = ("before", "after")
"""The annotated previews the PDF shows, stored as JPEG so that it is made without the photos."""


def preview_key(job_id: uuid.UUID, name: str) -> str:
    return f"{job_id}/preview-{name}.jpg"


def report_keys(job_id: uuid.UUID) -> list[str]:
    """Every key the reporter writes for a job: what its expiry deletes."""
    return [
        *(report_key(job_id, kind) for kind, _ in REPORT_TYPES),
        report_key(job_id, PDF),
        *(figure_key(job_id, name) for name in FIGURES),
        *(preview_key(job_id, name) for name in PREVIEWS),
        thumbnail_key(job_id),
    ]


async def on_image_corrected(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    try:
        event = parse_data(envelope)
    except (UnknownEventError, ValidationError) as error:
        raise PermanentError(f"invalid image.corrected: {error}") from error
    assert isinstance(event, ImageCorrected)
    if await forgotten_now(runtime, event.job_id):
        return
    started = time.perf_counter()
    blobs = runtime.blobs
    try:
        with stage(NAME, "load"):
            original = await blobs.get_bytes(event.original.bucket, event.original.key)
            corrected = await blobs.get_bytes(event.corrected.bucket, event.corrected.key)
            raw = (
                await blobs.get_bytes(event.measurements.bucket, event.measurements.key)
                if event.measurements is not None
                else None
            )
    except BlobNotFoundError as error:
        message = f"no object {error.args[0]}: the job was deleted, or its files expired"
        await _report_failed(runtime, envelope, event.job_id, "blob_missing", message)
        return
    if raw is not None:
        try:
            measurements = Measurements.model_validate_json(raw)
        except ValidationError as error:
            message = f"the measurements could not be read: {error.error_count()} invalid fields"
            await _report_failed(runtime, envelope, event.job_id, "unreadable_measurements", message)
            return
    else:
        measurements = Measurements(
            job_id=event.job_id,
            filename=event.original.key.rsplit("/", 1)[-1],
            chart_type=None,
            reference_edition=None,
            method=event.method,
            corners=None,
            image_size=(0, 0),
            patches=[],
            before=None,
            after=None,
            cross_validated_delta_e2000=event.cross_validated_delta_e2000,
            rating_before=None,
            rating_after=None,
        )
    with stage(NAME, "render"):
        from chromaline.reporter.render import render_report  # matplotlib loads with the first report
        from chromaline.reporter.thumbnails import ThumbnailError

        try:
            rendered = await asyncio.to_thread(render_report, measurements, original, corrected)
        except ThumbnailError as error:
            await _report_failed(runtime, envelope, event.job_id, "decode_error", str(error))
            return
    prefix = f"{event.job_id}"
    refs = {}
    async with _claimed(runtime, envelope, event.job_id) as session:
        if session is None:
            return
        with stage(NAME, "store"):
            for kind, content_type in REPORT_TYPES:
                key = report_key(event.job_id, kind)
                await blobs.put_bytes(
                    buckets.REPORTS, key, getattr(rendered, kind), content_type=content_type
                )
                refs[kind] = BlobRef(bucket=buckets.REPORTS, key=key)
            figures = {}
            for name, svg in rendered.figures.items():
                key = figure_key(event.job_id, name)
                await blobs.put_bytes(buckets.REPORTS, key, svg, content_type="image/svg+xml")
                figures[name] = BlobRef(bucket=buckets.REPORTS, key=key)
            thumbnail = BlobRef(bucket=buckets.REPORTS, key=thumbnail_key(event.job_id))
            await blobs.put_bytes(
                thumbnail.bucket, thumbnail.key, rendered.thumbnail, content_type="image/jpeg"
            )
            for name in PREVIEWS:
                await blobs.put_bytes(
                    buckets.REPORTS,
                    preview_key(event.job_id, name),
                    getattr(rendered, name),
                    content_type="image/jpeg",
                )
        ready = ReportReady(
            job_id=event.job_id,
            report_json=refs["json"],
            report_html=refs["html"],
            rating=event.rating,
            figures=figures,
            thumbnail=thumbnail,
        )
        await session.merge(
            Report(
                job_id=event.job_id, prefix=prefix, rating=event.rating, seconds=time.perf_counter() - started
            )
        )
        await add_to_outbox(session, make_envelope(NAME, str(event.job_id), ready))
    log.info("reporter.report_written", job_id=str(event.job_id))


@asynccontextmanager
async def _claimed(
    runtime: ServiceRuntime, envelope: RawEnvelope, job_id: uuid.UUID
) -> AsyncIterator[AsyncSession | None]:
    """The job's transaction (see ``job_transaction``) for a message handled for the first time;
    None when the job is forgotten or the message was handled before: then store nothing."""
    async with job_transaction(runtime, job_id) as session:
        if session is None:
            log.info("reporter.forgotten_job_skipped", job_id=str(job_id))
            yield None
        elif not await inbox.claim(session, envelope.event_id, NAME):
            yield None
        else:
            yield session


async def _report_failed(
    runtime: ServiceRuntime, envelope: RawEnvelope, job_id: uuid.UUID, reason: str, message: str
) -> None:
    """A report that can never be made: say so at stage ``report`` (the job keeps its corrected
    image) rather than retrying it into the dead-letter queue."""
    failed = ProcessingFailed(job_id=job_id, stage="report", reason=reason, message=message)
    async with _claimed(runtime, envelope, job_id) as session:
        if session is None:
            return
        await add_to_outbox(session, make_envelope(NAME, str(job_id), failed))
    log.warning("reporter.report_failed", job_id=str(job_id), reason=reason)


async def on_pdf_requested(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Make a job's PDF report from its stored JSON and previews, store it and announce it with
    ``report.pdf_ready``; a PDF already stored is announced again. A forgotten job, or one whose
    report was never made, gets nothing (the gateway's wait for the PDF runs out)."""
    event = accept_internal_event(envelope, runtime.settings)
    if not isinstance(event, ReportPdfRequested):
        raise PermanentError(f"{envelope.type} is not report.pdf_requested")
    job_id = event.job_id
    if await forgotten_now(runtime, job_id):
        return
    blobs = runtime.blobs
    pdf = BlobRef(bucket=buckets.REPORTS, key=report_key(job_id, PDF))
    content = None
    if not await blobs.exists(pdf.bucket, pdf.key):
        try:
            with stage(NAME, "load"):
                report_json = await blobs.get_bytes(buckets.REPORTS, report_key(job_id, "json"))
                before, after = [
                    await blobs.get_bytes(buckets.REPORTS, preview_key(job_id, name)) for name in PREVIEWS
                ]
        except BlobNotFoundError as error:
            log.warning("reporter.pdf_without_report", job_id=str(job_id), missing=error.args[0])
            return
        with stage(NAME, "render_pdf"):
            from chromaline.reporter.render import render_stored_pdf

            content = await asyncio.to_thread(render_stored_pdf, report_json, before, after)
    async with _claimed(runtime, envelope, job_id) as session:
        if session is None:
            return
        if content is not None:
            with stage(NAME, "store"):
                await blobs.put_bytes(pdf.bucket, pdf.key, content, content_type="application/pdf")
        await add_to_outbox(
            session, make_envelope(NAME, str(job_id), ReportPdfReady(job_id=job_id, report_pdf=pdf))
        )
    log.info("reporter.pdf_written" if content is not None else "reporter.pdf_announced", job_id=str(job_id))


def _report_row(job_id: uuid.UUID) -> Delete:
    return delete(Report).where(Report.job_id == job_id)


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Delete an expired job's reports (their previews with them) and its row."""
    await forget_expired_job(runtime, envelope, bucket=buckets.REPORTS, keys=report_keys, rows=_report_row)
