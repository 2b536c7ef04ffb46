"""The PDF report, which the reporter makes when it is first asked for rather than with every
report: the gateway asks (``report.pdf_requested``) when someone downloads it, waits a bounded
time for the answer (``report.pdf_ready``, recorded in the job's results), and otherwise tells the
caller to come back.

A job's request is sent once, and again only when an earlier one is older than
``report_pdf_request_repeat_seconds`` (a request the reporter lost, or a PDF that was never made).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from chromaline.common.events.contracts import ReportPdfReady, ReportPdfRequested
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import add_to_outbox
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.jobs import PRODUCER
from chromaline.gateway.models import DELETED, Job
from chromaline.gateway.settings import GatewaySettings

RESULT = "report_pdf"
POLL_SECONDS = 0.25
"""How often a waiting download looks for the PDF in the job's row."""
RETRY_AFTER_SECONDS = 10
"""What a download that gave up waiting tells the caller to wait before asking again."""


def pdf_to_make(job: Job) -> bool:
    """The job's report is ready but its PDF is not stored yet."""
    return (
        job.state not in ("expired", DELETED) and "report_json" in job.results and RESULT not in job.results
    )


def record_pdf(job: Job, event: ReportPdfReady) -> None:
    """Remember the PDF the reporter stored, unless the job's files are gone meanwhile."""
    if job.state in ("expired", DELETED):
        return
    job.results = {**job.results, RESULT: {"bucket": event.report_pdf.bucket, "key": event.report_pdf.key}}


async def request_pdfs(
    runtime: ServiceRuntime, job_ids: Sequence[uuid.UUID], repeat_after: timedelta
) -> None:
    """Ask the reporter for the PDFs of those jobs that still need one and were not asked for
    within ``repeat_after``."""
    now = datetime.now(UTC)
    async with runtime.session() as session, session.begin():
        rows = await session.execute(
            select(Job).where(Job.id.in_(job_ids)).order_by(Job.id).with_for_update()
        )
        for job in rows.scalars():
            asked = job.report_pdf_requested_at
            if not pdf_to_make(job) or (asked is not None and asked > now - repeat_after):
                continue
            job.report_pdf_requested_at = now
            await add_to_outbox(
                session, make_envelope(PRODUCER, str(job.id), ReportPdfRequested(job_id=job.id))
            )


async def wait_for_pdfs(
    runtime: ServiceRuntime, job_ids: Sequence[uuid.UUID], timeout_seconds: float
) -> dict[uuid.UUID, dict[str, str]]:
    """The PDFs of the jobs, by job, as far as they were stored within ``timeout_seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while True:
        async with runtime.session() as session:
            rows = (await session.execute(select(Job.id, Job.results).where(Job.id.in_(job_ids)))).all()
        found = {job_id: results[RESULT] for job_id, results in rows if RESULT in results}
        left = deadline - loop.time()
        if len(found) == len(set(job_ids)) or left <= 0:
            return found
        await asyncio.sleep(min(POLL_SECONDS, left))


async def fetch_pdfs(
    runtime: ServiceRuntime, settings: GatewaySettings, jobs: Sequence[Job]
) -> dict[uuid.UUID, dict[str, str]]:
    """The PDFs of those ``jobs`` whose PDF is still to be made: requested, then waited for."""
    wanted = [job.id for job in jobs if pdf_to_make(job)]
    if not wanted:
        return {}
    await request_pdfs(runtime, wanted, timedelta(seconds=settings.report_pdf_request_repeat_seconds))
    return await wait_for_pdfs(runtime, wanted, settings.report_pdf_wait_seconds)


def still_rendering(job: Job) -> ApiError:
    """The answer to a download of a PDF that is not made yet: 202, come back later."""
    detail = f"the PDF report of job {job.id} is being made; ask again in {RETRY_AFTER_SECONDS} s"
    retry_after = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return ApiError(
        202, "report_pdf_rendering", detail, headers=retry_after, retry_after_seconds=RETRY_AFTER_SECONDS
    )
