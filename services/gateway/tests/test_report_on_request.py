"""The PDF report, and the HTML report with its figures, are made when first downloaded: the
gateway asks the reporter once (``report.pdf_requested``, ``report.html_requested``), waits a
bounded time for the answer (``report.pdf_ready``, ``report.html_ready``), streams the file when it
comes and answers 202 (``report_pdf_rendering``, ``report_html_rendering``) when it does not; a
batch archive waits for its reports the same way and names those still missing in its manifest."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile

import pytest

from chromaline.common.bus.base import delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import BlobRef, ReportFigure, ReportHtmlReady, ReportPdfReady
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.handlers import on_report_html_ready, on_report_pdf_ready
from chromaline.gateway.models import Job
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient, create_jobs, finish_job, finish_report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ORGANISATION = "org-pdf"
PDF = b"%PDF-1.4 a report\n%%EOF\n"
HTML = b"<!doctype html><title>report</title>"
SVG = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
FIGURES: list[ReportFigure] = ["chromaticity", "tone_response", "patch_pairs", "delta_e"]
FIGURE_FILES = ("chromaticity.svg", "tone-response.svg", "patch-pairs.svg", "delta-e.svg")


async def _reported_jobs(
    runtime: ServiceRuntime, *filenames: str, figures: list[ReportFigure] | None = None
) -> list[uuid.UUID]:
    """Done jobs whose report is ready and whose PDF is not made yet; with ``figures``, whose HTML
    and those figures are not drawn yet either."""
    job_ids = await create_jobs(runtime, ORGANISATION, *filenames, owner="u-1")
    for job_id in job_ids:
        await finish_job(runtime, job_id)
        await finish_report(runtime, job_id, figures_on_request=figures)
    return job_ids


async def _pdf_requests(runtime: ServiceRuntime, *, answer: bool) -> list[uuid.UUID]:
    """The jobs whose PDF the gateway asks for, in order; with ``answer`` the reporter's part is
    played: the PDF stored and ``report.pdf_ready`` handled by the gateway."""
    requested: list[uuid.UUID] = []

    async def reporter(envelope: RawEnvelope) -> None:
        if envelope.type != "report.pdf_requested":
            return
        job_id = uuid.UUID(envelope.data["job_id"])
        requested.append(job_id)
        if answer:
            ref = BlobRef(bucket="chromaline-reports", key=f"{job_id}/report.pdf")
            await runtime.blobs.put_bytes(ref.bucket, ref.key, PDF, content_type="application/pdf")
            ready = make_envelope("reporter", str(job_id), ReportPdfReady(job_id=job_id, report_pdf=ref))
            with delivered_by(LOCAL_USER):
                await on_report_pdf_ready(runtime, ready)

    await runtime.bus.subscribe(f"reporter-{uuid.uuid4().hex[:8]}", ["#"], reporter)
    return requested


async def _html_requests(runtime: ServiceRuntime, *, answer: bool) -> list[uuid.UUID]:
    """The jobs whose HTML report the gateway asks for, in order; with ``answer`` the reporter's
    part is played: the HTML and every figure stored and ``report.html_ready`` handled."""
    requested: list[uuid.UUID] = []

    async def reporter(envelope: RawEnvelope) -> None:
        if envelope.type != "report.html_requested":
            return
        job_id = uuid.UUID(envelope.data["job_id"])
        requested.append(job_id)
        if not answer:
            return
        html = BlobRef(bucket="chromaline-reports", key=f"{job_id}/report.html")
        await runtime.blobs.put_bytes(html.bucket, html.key, HTML, content_type="text/html")
        figures = {}
        for name in FIGURES:
            figures[name] = BlobRef(bucket="chromaline-reports", key=f"{job_id}/figure-{name}.svg")
            await runtime.blobs.put_bytes(
                figures[name].bucket, figures[name].key, SVG + name.encode(), content_type="image/svg+xml"
            )
        ready = ReportHtmlReady(job_id=job_id, report_html=html, figures=figures)
        with delivered_by(LOCAL_USER):
            await on_report_html_ready(runtime, make_envelope("reporter", str(job_id), ready))

    await runtime.bus.subscribe(f"reporter-{uuid.uuid4().hex[:8]}", ["#"], reporter)
    return requested


def _wait_at_most(runtime: ServiceRuntime, seconds: float) -> None:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    settings.report_wait_seconds = seconds


async def test_the_first_download_asks_for_the_pdf_once_and_streams_it(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    requested = await _pdf_requests(api_runtime, answer=True)
    [job_id] = await _reported_jobs(api_runtime, "shot.jpg")
    async with api_client(ORGANISATION) as client:
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["files"]["report.pdf"] == f"/api/v1/jobs/{job_id}/files/report.pdf"
        for _ in range(2):
            response = await client.get(job["files"]["report.pdf"])
            assert response.status_code == 200, response.text
            assert response.content == PDF
            assert response.headers["content-type"] == "application/pdf"
    assert requested == [job_id]


async def test_a_pdf_not_made_in_time_answers_202_and_is_asked_for_once(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    _wait_at_most(api_runtime, 0.5)
    requested = await _pdf_requests(api_runtime, answer=False)
    [job_id] = await _reported_jobs(api_runtime, "slow.jpg")
    async with api_client(ORGANISATION) as client:
        for _ in range(2):
            response = await client.get(f"/api/v1/jobs/{job_id}/files/report.pdf")
            assert response.status_code == 202, response.text
            assert response.json()["code"] == "report_pdf_rendering"
            assert int(response.headers["Retry-After"]) > 0
    assert requested == [job_id]


async def test_a_pdf_is_not_asked_for_before_the_report_is_ready(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    requested = await _pdf_requests(api_runtime, answer=True)
    [job_id] = await create_jobs(api_runtime, ORGANISATION, "early.jpg", owner="u-1")
    await finish_job(api_runtime, job_id)
    async with api_client(ORGANISATION) as client:
        assert "report.pdf" not in (await client.get(f"/api/v1/jobs/{job_id}")).json()["files"]
        response = await client.get(f"/api/v1/jobs/{job_id}/files/report.pdf")
    assert (response.status_code, response.json()["code"]) == (409, "result_not_ready")
    assert requested == []


async def test_the_figures_of_a_report_are_listed_before_they_are_drawn_and_drawn_once(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    requested = await _html_requests(api_runtime, answer=True)
    [job_id] = await _reported_jobs(api_runtime, "view.jpg", figures=FIGURES)
    async with api_client(ORGANISATION) as client:
        files = (await client.get(f"/api/v1/jobs/{job_id}")).json()["files"]
        assert {"report.html", *FIGURE_FILES} <= set(files)
        answers = await asyncio.gather(*(client.get(files[name]) for name in FIGURE_FILES))
        page = await client.get(files["report.html"])
    assert [answer.status_code for answer in answers] == [200] * 4
    assert [answer.content for answer in answers] == [SVG + name.encode() for name in FIGURES]
    assert (page.status_code, page.content) == (200, HTML)
    assert requested == [job_id], "the page's four figures and its report ask the reporter once"


async def test_a_report_without_figures_lists_none(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    requested = await _html_requests(api_runtime, answer=True)
    [job_id] = await _reported_jobs(api_runtime, "no-chart.jpg", figures=[])
    async with api_client(ORGANISATION) as client:
        files = (await client.get(f"/api/v1/jobs/{job_id}")).json()["files"]
        assert "report.html" in files
        assert not set(FIGURE_FILES) & set(files)
        response = await client.get(f"/api/v1/jobs/{job_id}/files/delta-e.svg")
    assert (response.status_code, response.json()["code"]) == (409, "result_not_ready")
    assert requested == []


async def test_an_html_report_not_drawn_in_time_answers_202(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    _wait_at_most(api_runtime, 0.5)
    requested = await _html_requests(api_runtime, answer=False)
    [job_id] = await _reported_jobs(api_runtime, "slow.jpg", figures=FIGURES)
    async with api_client(ORGANISATION) as client:
        for name in ("report.html", "chromaticity.svg"):
            response = await client.get(f"/api/v1/jobs/{job_id}/files/{name}")
            assert response.status_code == 202, response.text
            assert response.json()["code"] == "report_html_rendering"
            assert int(response.headers["Retry-After"]) > 0
    assert requested == [job_id]


async def test_an_expired_job_asks_for_nothing(api_runtime: ServiceRuntime, api_client: ApiClient) -> None:
    requested = await _html_requests(api_runtime, answer=True)
    [job_id] = await _reported_jobs(api_runtime, "old.jpg", figures=FIGURES)
    async with api_runtime.session() as session, session.begin():
        job = await session.get(Job, job_id)
        assert job is not None
        job.state = "expired"
    async with api_client(ORGANISATION) as client:
        response = await client.get(f"/api/v1/jobs/{job_id}/files/chromaticity.svg")
    assert (response.status_code, response.json()["code"]) == (410, "job_expired")
    assert requested == []


def _archive(content: bytes) -> tuple[set[str], dict[str, object]]:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        return set(bundle.namelist()), json.loads(bundle.read("manifest.json"))


async def _batch_archive(runtime: ServiceRuntime, client_of: ApiClient, job_ids: list[uuid.UUID]) -> bytes:
    """The batch's archive, its jobs' other results (as ``testing`` names them) stored first."""
    for job_id in job_ids:
        for bucket, key in (("chromaline-corrected", "corrected.jpg"), ("chromaline-reports", "report")):
            await runtime.blobs.put_bytes(bucket, f"{job_id}/{key}", b"x", content_type="text/plain")
    async with client_of(ORGANISATION) as client:
        batch_id = (await client.get(f"/api/v1/jobs/{job_ids[0]}")).json()["batch_id"]
        response = await client.get(f"/api/v1/batches/{batch_id}/archive")
    assert response.status_code == 200, response.text
    return response.content


async def test_a_batch_archive_holds_the_reports_made_for_it(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    pdfs = await _pdf_requests(api_runtime, answer=True)
    pages = await _html_requests(api_runtime, answer=True)
    job_ids = await _reported_jobs(api_runtime, "one.jpg", "two.jpg", figures=FIGURES)
    names, manifest = _archive(await _batch_archive(api_runtime, api_client, job_ids))
    stems = {"one", "two"}
    for form in ("pdf", "html"):
        assert {name for name in names if name.endswith(f".report.{form}")} == {
            f"{job_id}/{stem}.report.{form}" for job_id, stem in zip(job_ids, sorted(stems), strict=True)
        }
    assert manifest["missing_files"] == []
    assert sorted(pdfs) == sorted(pages) == sorted(job_ids)


async def test_a_batch_archive_names_the_pdfs_not_made_in_time(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    _wait_at_most(api_runtime, 0.5)
    await _pdf_requests(api_runtime, answer=False)
    await _html_requests(api_runtime, answer=False)
    job_ids = await _reported_jobs(api_runtime, "late.jpg", figures=FIGURES)
    started = time.monotonic()
    names, manifest = _archive(await _batch_archive(api_runtime, api_client, job_ids))
    assert time.monotonic() - started < 5, "the archive waits for both forms at once, not in turn"
    assert not any(name.endswith((".pdf", ".html")) for name in names)
    missing = manifest["missing_files"]
    assert isinstance(missing, list)
    assert [(item["file"], item["code"]) for item in missing] == [
        (f"{job_ids[0]}/late.report.pdf", "report_pdf_rendering"),
        (f"{job_ids[0]}/late.report.html", "report_html_rendering"),
    ]
