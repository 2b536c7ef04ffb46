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

from chromaline.common.events.contracts import BlobRef, JobOptions, ProcessingFailed, ReportReady
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
    """The reporter's ``report.ready``: the job succeeds."""
    report = BlobRef(bucket="chromaline-reports", key=f"{job_id}/report")
    event = ReportReady(job_id=job_id, report_json=report, report_html=report, report_pdf=report)
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
