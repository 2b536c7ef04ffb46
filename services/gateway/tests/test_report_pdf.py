"""The PDF report is made when it is first downloaded: the gateway asks the reporter once
(``report.pdf_requested``), waits a bounded time for ``report.pdf_ready``, streams the PDF when it
comes and answers 202 with ``report_pdf_rendering`` when it does not; a batch archive waits for its
PDFs the same way and names those still missing in its manifest."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest

from chromaline.common.bus.base import delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import BlobRef, ReportPdfReady
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.handlers import on_report_pdf_ready
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient, create_jobs, finish_job, finish_report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ORGANISATION = "org-pdf"
PDF = b"%PDF-1.4 a report\n%%EOF\n"


async def _reported_jobs(runtime: ServiceRuntime, *filenames: str) -> list[uuid.UUID]:
    """Done jobs whose report is ready and whose PDF is not made yet."""
    job_ids = await create_jobs(runtime, ORGANISATION, *filenames, owner="u-1")
    for job_id in job_ids:
        await finish_job(runtime, job_id)
        await finish_report(runtime, job_id)
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


def _wait_at_most(runtime: ServiceRuntime, seconds: float) -> None:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    settings.report_pdf_wait_seconds = seconds


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


async def test_a_batch_archive_holds_the_pdfs_made_for_it(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    requested = await _pdf_requests(api_runtime, answer=True)
    job_ids = await _reported_jobs(api_runtime, "one.jpg", "two.jpg")
    names, manifest = _archive(await _batch_archive(api_runtime, api_client, job_ids))
    stems = {"one", "two"}
    assert {name for name in names if name.endswith(".report.pdf")} == {
        f"{job_id}/{stem}.report.pdf" for job_id, stem in zip(job_ids, sorted(stems), strict=True)
    }
    assert manifest["missing_files"] == []
    assert sorted(requested) == sorted(job_ids)


async def test_a_batch_archive_names_the_pdfs_not_made_in_time(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    _wait_at_most(api_runtime, 0.5)
    await _pdf_requests(api_runtime, answer=False)
    job_ids = await _reported_jobs(api_runtime, "late.jpg")
    names, manifest = _archive(await _batch_archive(api_runtime, api_client, job_ids))
    assert not any(name.endswith(".pdf") for name in names)
    [missing] = manifest["missing_files"]  # type: ignore[misc]
    assert missing == {
        "job_id": str(job_ids[0]),
        "file": f"{job_ids[0]}/late.report.pdf",
        "code": "report_pdf_rendering",
        "detail": missing["detail"],
    }
