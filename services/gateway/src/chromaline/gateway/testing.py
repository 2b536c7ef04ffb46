"""Jobs for tests of the gateway: created in its own tables, ended by the events the workers send.

The events go through the gateway's real handler, so a test sees what a finished or failed job
does to notifications, webhooks and the job record without running the pipeline.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import httpx
from PIL import Image

from chromaline.common.events.contracts import (
    BlobRef,
    ImageCorrected,
    JobOptions,
    ProcessingFailed,
    ReportFigure,
    ReportReady,
)
from chromaline.common.events.envelope import make_envelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.handlers import on_pipeline_event


async def create_jobs(
    runtime: ServiceRuntime, organisation: str, *filenames: str, owner: str
) -> list[uuid.UUID]:
    """One batch of queued jobs in ``organisation`` uploaded by ``owner``, one per filename."""
    blob = BlobRef(bucket="chromaline-originals", key="x/a.jpg")
    async with runtime.session() as session, session.begin():
        _, created = await jobs.create_batch(
            session, organisation, [(name, "image/jpeg", 1, blob) for name in filenames], JobOptions()
        )
        for job in created:
            job.owner_id = owner
    return [job.id for job in created]


async def finish_job(runtime: ServiceRuntime, job_id: uuid.UUID) -> None:
    """The corrector's ``image.corrected``: the job is done, its report pending."""
    image = BlobRef(bucket="chromaline-corrected", key=f"{job_id}/corrected.jpg")
    event = ImageCorrected(
        job_id=job_id,
        original=BlobRef(bucket="chromaline-originals", key="x/a.jpg"),
        corrected=image,
        profile=image,
        method="linear3x3",
        chart_type="classic24",
        delta_e2000_before=None,
        delta_e2000_after=None,
    )
    await on_pipeline_event(runtime, make_envelope("corrector", str(job_id), event))


async def finish_report(
    runtime: ServiceRuntime, job_id: uuid.UUID, *, figures_on_request: list[ReportFigure] | None = None
) -> None:
    """The reporter's ``report.ready``: the job's report is ready, its PDF made on request; with
    ``figures_on_request`` its HTML and those figures too (version 3), else the HTML is stored."""
    report = BlobRef(bucket="chromaline-reports", key=f"{job_id}/report")
    event = ReportReady(
        job_id=job_id,
        report_json=report,
        report_html=report if figures_on_request is None else None,
        figures_on_request=figures_on_request or [],
    )
    await on_pipeline_event(runtime, make_envelope("reporter", str(job_id), event))


async def fail_report(runtime: ServiceRuntime, job_id: uuid.UUID) -> None:
    """The reporter's ``processing.failed``: the report failed, the job stays done."""
    event = ProcessingFailed(
        job_id=job_id, stage="report", reason="render_error", message="the report could not be drawn"
    )
    await on_pipeline_event(runtime, make_envelope("reporter", str(job_id), event))


async def fail_job(runtime: ServiceRuntime, job_id: uuid.UUID) -> None:
    """The detector's ``processing.failed`` for a photo without a chart: the job fails."""
    event = ProcessingFailed(
        job_id=job_id, stage="detect", reason="no_chart", message="no chart in the photo"
    )
    await on_pipeline_event(runtime, make_envelope("detector", str(job_id), event))


ApiClient = Callable[[str], httpx.AsyncClient]
"""A client of the gateway app for the organisation named (the ``api_client`` test fixture)."""


def small_photo(shade: int) -> bytes:
    """A tiny JPEG; photos of different ``shade`` differ in content."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (shade, 90, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()
