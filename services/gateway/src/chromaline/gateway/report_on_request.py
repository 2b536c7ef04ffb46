"""The forms of a report that the reporter makes when they are first asked for rather than with
every report: the PDF (``report.pdf_requested``, answered by ``report.pdf_ready``) and the HTML
report with its figures (``report.html_requested``, answered by ``report.html_ready``). The gateway
asks when someone downloads one, waits a bounded time for the answer (recorded in the job's
results), and otherwise tells the caller to come back.

A job's request for a form is sent once, and again only when an earlier one is older than
``report_request_repeat_seconds`` (a request the reporter lost, or a form that was never made).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from chromaline.common.events.contracts import (
    ReportHtmlReady,
    ReportHtmlRequested,
    ReportPdfReady,
    ReportPdfRequested,
)
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import add_to_outbox
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.jobs import PRODUCER
from chromaline.gateway.models import DELETED, Job
from chromaline.gateway.settings import GatewaySettings

POLL_SECONDS = 0.25
"""How often a waiting download looks for the form in the job's row."""
RETRY_AFTER_SECONDS = 10
"""What a download that gave up waiting tells the caller to wait before asking again."""


@dataclass(frozen=True)
class MadeOnRequest:
    """A form of the report the reporter makes on request."""

    title: str
    result: str
    """The job's result that holds it once made."""
    code: str
    """The problem code of a download that gave up waiting for it."""
    request: type[ReportPdfRequested] | type[ReportHtmlRequested]
    requested_at: str
    """The job's column that says when the gateway last asked for it."""
    with_figures: bool
    """The figures to be drawn (``report_figures_on_request``) are stored with it."""

    def to_make(self, job: Job) -> bool:
        """The job's report is ready but this form of it is not stored yet."""
        return _files_kept(job) and "report_json" in job.results and self.result not in job.results

    def makes(self, job: Job, result: str) -> bool:
        """Asking for this form stores ``result`` of the job, which is not stored yet."""
        stored_with = pending_figures(job) if self.with_figures else []
        return self.to_make(job) and (result == self.result or result in stored_with)

    def still_rendering(self, job: Job) -> ApiError:
        """The answer to a download of a result not made yet: 202, come back later."""
        detail = f"the {self.title} of job {job.id} is being made; ask again in {RETRY_AFTER_SECONDS} s"
        retry_after = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return ApiError(202, self.code, detail, headers=retry_after, retry_after_seconds=RETRY_AFTER_SECONDS)


def _files_kept(job: Job) -> bool:
    """The job's files are not deleted (after retention, or on request)."""
    return job.state not in ("expired", DELETED)


PDF = MadeOnRequest(
    title="PDF report",
    result="report_pdf",
    code="report_pdf_rendering",
    request=ReportPdfRequested,
    requested_at="report_pdf_requested_at",
    with_figures=False,
)
HTML = MadeOnRequest(
    title="HTML report and its figures",
    result="report_html",
    code="report_html_rendering",
    request=ReportHtmlRequested,
    requested_at="report_html_requested_at",
    with_figures=True,
)
FORMS = (PDF, HTML)


def pending_figures(job: Job) -> list[str]:
    """The results of the figures to be drawn with the job's HTML report."""
    return [f"figure_{name}" for name in job.report_figures_on_request]


def made_on_request(job: Job, result: str) -> MadeOnRequest | None:
    """The form to ask for so that ``result`` of the job is stored; None when no asking helps."""
    return next((form for form in FORMS if form.makes(job, result)), None)


def record_pdf(job: Job, event: ReportPdfReady) -> None:
    """Remember the PDF the reporter stored, unless the job's files are gone meanwhile."""
    if _files_kept(job):
        job.results = {**job.results, PDF.result: event.report_pdf.model_dump()}


def record_html(job: Job, event: ReportHtmlReady) -> None:
    """Remember the HTML report and figures the reporter stored, unless the job's files are gone."""
    if _files_kept(job):
        figures = {f"figure_{name}": ref.model_dump() for name, ref in event.figures.items()}
        job.results = {**job.results, HTML.result: event.report_html.model_dump(), **figures}


async def request_forms(
    runtime: ServiceRuntime, form: MadeOnRequest, job_ids: Sequence[uuid.UUID], repeat_after: timedelta
) -> None:
    """Ask the reporter for ``form`` of those jobs that still need it and were not asked for
    within ``repeat_after``."""
    now = datetime.now(UTC)
    async with runtime.session() as session, session.begin():
        rows = await session.execute(
            select(Job).where(Job.id.in_(job_ids)).order_by(Job.id).with_for_update()
        )
        for job in rows.scalars():
            asked: datetime | None = getattr(job, form.requested_at)
            if not form.to_make(job) or (asked is not None and asked > now - repeat_after):
                continue
            setattr(job, form.requested_at, now)
            await add_to_outbox(session, make_envelope(PRODUCER, str(job.id), form.request(job_id=job.id)))


Wanted = tuple[uuid.UUID, str]
"""A job's id and one of its results."""


async def wait_for_results(
    runtime: ServiceRuntime, wanted: Sequence[Wanted], timeout_seconds: float
) -> dict[Wanted, dict[str, str]]:
    """Each wanted result, as far as it was stored within ``timeout_seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    job_ids = {job_id for job_id, _ in wanted}
    while True:
        async with runtime.session() as session:
            rows = (await session.execute(select(Job.id, Job.results).where(Job.id.in_(job_ids)))).all()
        stored = {job_id: results for job_id, results in rows}
        found = {
            (job_id, result): stored[job_id][result]
            for job_id, result in wanted
            if result in stored.get(job_id, {})
        }
        left = deadline - loop.time()
        if len(found) == len(set(wanted)) or left <= 0:
            return found
        await asyncio.sleep(min(POLL_SECONDS, left))


async def fetch_made_on_request(
    runtime: ServiceRuntime, settings: GatewaySettings, results: Sequence[str], jobs: Sequence[Job]
) -> dict[Wanted, dict[str, str]]:
    """Those ``results`` of the ``jobs`` that are still to be made: each form asked for once,
    then all of them waited for together."""
    wanted: list[Wanted] = []
    forms: dict[MadeOnRequest, set[uuid.UUID]] = {}
    for job in jobs:
        for result in results:
            form = made_on_request(job, result)
            if form is not None:
                wanted.append((job.id, result))
                forms.setdefault(form, set()).add(job.id)
    if not wanted:
        return {}
    repeat_after = timedelta(seconds=settings.report_request_repeat_seconds)
    for form, job_ids in forms.items():
        await request_forms(runtime, form, sorted(job_ids), repeat_after)
    return await wait_for_results(runtime, wanted, settings.report_wait_seconds)
