"""The reporter turns each corrected photo's measurements into JSON, HTML and PDF reports, and
deletes them when their job expires."""

from __future__ import annotations

import asyncio
import time
import uuid

from pydantic import ValidationError
from sqlalchemy import Delete, delete

from chromaline.common import inbox
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import (
    BlobRef,
    ImageCorrected,
    ProcessingFailed,
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
from chromaline.common.retention import forget_expired_job
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter.models import Report

NAME = "reporter"
log = get_logger(__name__)

REPORT_TYPES = (
    ("json", "application/json"),
    ("html", "text/html; charset=utf-8"),
    ("pdf", "application/pdf"),
)


def report_key(job_id: uuid.UUID, kind: str) -> str:
    return f"{job_id}/report.{kind}"


FIGURES = ("chromaticity", "tone_response", "patch_pairs", "delta_e")
"""The report's figures, also stored alone as SVG for the web app's result page."""


def figure_key(job_id: uuid.UUID, name: str) -> str:
    return f"{job_id}/figure-{name}.svg"


def thumbnail_key(job_id: uuid.UUID) -> str:
    return f"{job_id}/thumbnail.jpg"


def report_keys(job_id: uuid.UUID) -> list[str]:
    """Every key the reporter writes for a job: what its expiry deletes."""
    return [
        *(report_key(job_id, kind) for kind, _ in REPORT_TYPES),
        *(figure_key(job_id, name) for name in FIGURES),
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
    async with job_transaction(runtime, event.job_id) as session:
        if session is None:
            log.info("reporter.forgotten_job_skipped", job_id=str(event.job_id))
            return
        if not await inbox.claim(session, envelope.event_id, NAME):
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
        ready = ReportReady(
            job_id=event.job_id,
            report_json=refs["json"],
            report_html=refs["html"],
            report_pdf=refs["pdf"],
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


async def _report_failed(
    runtime: ServiceRuntime, envelope: RawEnvelope, job_id: uuid.UUID, reason: str, message: str
) -> None:
    """A report that can never be made: say so at stage ``report`` (the job keeps its corrected
    image) rather than retrying it into the dead-letter queue."""
    failed = ProcessingFailed(job_id=job_id, stage="report", reason=reason, message=message)
    async with job_transaction(runtime, job_id) as session:
        if session is None:
            log.info("reporter.forgotten_job_skipped", job_id=str(job_id))
            return
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        await add_to_outbox(session, make_envelope(NAME, str(job_id), failed))
    log.warning("reporter.report_failed", job_id=str(job_id), reason=reason)


def _report_row(job_id: uuid.UUID) -> Delete:
    return delete(Report).where(Report.job_id == job_id)


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Delete an expired job's reports (their previews with them) and its row."""
    await forget_expired_job(runtime, envelope, bucket=buckets.REPORTS, keys=report_keys, rows=_report_row)
