"""The reporter turns each corrected photo's measurements into a JSON report and previews, draws
the HTML report with its figures and the PDF report when they are first asked for, and deletes
them all when their job expires."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import get_args

from pydantic import ValidationError
from sqlalchemy import Delete, delete
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import inbox
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError, BlobUpload
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import (
    BlobRef,
    ImageCorrected,
    ProcessingFailed,
    ReportFigure,
    ReportHtmlReady,
    ReportHtmlRequested,
    ReportPdfReady,
    ReportPdfRequested,
    ReportReady,
    UnknownEventError,
    parse_data,
    spec_for_model,
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

JSON = "json"
HTML = "html"
PDF = "pdf"
"""The report's forms: the JSON is written with every report, the HTML and the PDF on request."""


def report_key(job_id: uuid.UUID, kind: str) -> str:
    return f"{job_id}/report.{kind}"


FIGURES: tuple[ReportFigure, ...] = get_args(ReportFigure)
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
        *(report_key(job_id, kind) for kind in (JSON, HTML, PDF)),
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
            # The corrector's small previews when it made them (version 2), else the photos.
            pictures = event.previews or event
            original = await blobs.get_bytes(pictures.original.bucket, pictures.original.key)
            corrected = await blobs.get_bytes(pictures.corrected.bucket, pictures.corrected.key)
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
    async with _claimed(runtime, envelope, event.job_id) as session:
        if session is None:
            return
        with stage(NAME, "store"):
            report_json = BlobRef(bucket=buckets.REPORTS, key=report_key(event.job_id, JSON))
            thumbnail = BlobRef(bucket=buckets.REPORTS, key=thumbnail_key(event.job_id))
            await blobs.put_many(
                [
                    BlobUpload(report_json.bucket, report_json.key, rendered.json, "application/json"),
                    BlobUpload(thumbnail.bucket, thumbnail.key, rendered.thumbnail, "image/jpeg"),
                    *(
                        BlobUpload(
                            buckets.REPORTS,
                            preview_key(event.job_id, name),
                            getattr(rendered, name),
                            "image/jpeg",
                        )
                        for name in PREVIEWS
                    ),
                ]
            )
        ready = ReportReady(
            job_id=event.job_id,
            report_json=report_json,
            rating=event.rating,
            figures_on_request=list(rendered.figure_names),
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


Store = Callable[[], Awaitable[None]]
"""Store a form of the report that was drawn, in the handler's transaction."""
Draw = Callable[[bytes, bytes, bytes], Awaitable[Store]]
"""Draw a form of the report from the stored JSON and the two previews."""
Answer = Callable[[AsyncSession], Awaitable[None]]
"""Announce a form of the report that is stored, in the handler's transaction."""


async def _make_on_request(
    runtime: ServiceRuntime, envelope: RawEnvelope, job_id: uuid.UUID, form: str, draw: Draw, answer: Answer
) -> None:
    """Draw one form of a job's report from its stored JSON and previews unless it is stored
    already, then announce it. A forgotten job, or one whose report was never made, gets nothing
    (the gateway's wait for it runs out)."""
    if await forgotten_now(runtime, job_id):
        return
    blobs = runtime.blobs
    store = None
    if not await blobs.exists(buckets.REPORTS, report_key(job_id, form)):
        try:
            with stage(NAME, "load"):
                report_json = await blobs.get_bytes(buckets.REPORTS, report_key(job_id, JSON))
                before, after = [
                    await blobs.get_bytes(buckets.REPORTS, preview_key(job_id, name)) for name in PREVIEWS
                ]
        except BlobNotFoundError as error:
            log.warning("reporter.form_without_report", job_id=str(job_id), form=form, missing=error.args[0])
            return
        store = await draw(report_json, before, after)
    async with _claimed(runtime, envelope, job_id) as session:
        if session is None:
            return
        if store is not None:
            with stage(NAME, "store"):
                await store()
        await answer(session)
    log.info(
        "reporter.form_written" if store is not None else "reporter.form_announced",
        job_id=str(job_id),
        form=form,
    )


def _requested_job(
    runtime: ServiceRuntime,
    envelope: RawEnvelope,
    model: type[ReportPdfRequested] | type[ReportHtmlRequested],
) -> uuid.UUID:
    """The job whose report is asked for; a dead letter for a request not from our services."""
    event = accept_internal_event(envelope, runtime.settings)
    if not isinstance(event, model):
        raise PermanentError(f"{envelope.type} is not {spec_for_model(model).routing_key}")
    return event.job_id


async def on_pdf_requested(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Make a job's PDF report, store it and announce it with ``report.pdf_ready``; a PDF already
    stored is announced again."""
    job_id = _requested_job(runtime, envelope, ReportPdfRequested)
    blobs = runtime.blobs
    pdf = BlobRef(bucket=buckets.REPORTS, key=report_key(job_id, PDF))

    async def draw(report_json: bytes, before: bytes, after: bytes) -> Store:
        with stage(NAME, "render_pdf"):
            from chromaline.reporter.render import render_stored_pdf

            content = await asyncio.to_thread(render_stored_pdf, report_json, before, after)

        async def store() -> None:
            await blobs.put_bytes(pdf.bucket, pdf.key, content, content_type="application/pdf")

        return store

    async def answer(session: AsyncSession) -> None:
        ready = ReportPdfReady(job_id=job_id, report_pdf=pdf)
        await add_to_outbox(session, make_envelope(NAME, str(job_id), ready))

    await _make_on_request(runtime, envelope, job_id, PDF, draw, answer)


async def on_html_requested(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Draw a job's figures and HTML report, store them and announce them with
    ``report.html_ready``; an HTML report already stored is announced again with its figures.
    The HTML is stored last, so that its presence means the figures are there too."""
    job_id = _requested_job(runtime, envelope, ReportHtmlRequested)
    blobs = runtime.blobs
    html = BlobRef(bucket=buckets.REPORTS, key=report_key(job_id, HTML))

    async def draw(report_json: bytes, before: bytes, after: bytes) -> Store:
        with stage(NAME, "render_html"):
            from chromaline.reporter.render import render_stored_html

            pages = await asyncio.to_thread(render_stored_html, report_json, before, after)

        async def store() -> None:
            for name, svg in pages.figures.items():
                await blobs.put_bytes(
                    buckets.REPORTS, figure_key(job_id, name), svg, content_type="image/svg+xml"
                )
            await blobs.put_bytes(html.bucket, html.key, pages.html, content_type="text/html; charset=utf-8")

        return store

    async def answer(session: AsyncSession) -> None:
        figures = {
            name: BlobRef(bucket=buckets.REPORTS, key=figure_key(job_id, name))
            for name in FIGURES
            if await blobs.exists(buckets.REPORTS, figure_key(job_id, name))
        }
        ready = ReportHtmlReady(job_id=job_id, report_html=html, figures=figures)
        await add_to_outbox(session, make_envelope(NAME, str(job_id), ready))

    await _make_on_request(runtime, envelope, job_id, HTML, draw, answer)


def _report_row(job_id: uuid.UUID) -> Delete:
    return delete(Report).where(Report.job_id == job_id)


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Delete an expired job's reports (their previews with them) and its row."""
    await forget_expired_job(runtime, envelope, bucket=buckets.REPORTS, keys=report_keys, rows=_report_row)
