"""The PDF report is not made with every report but when it is first asked for
(``report.pdf_requested``), from the report's stored JSON and previews."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

import cv2
import numpy as np
import pytest

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import ImageCorrected, ReportPdfRequested
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.forgotten_jobs import remember_forgotten
from chromaline.common.measurements import Measurements
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter import render
from chromaline.reporter.handlers import on_image_corrected, on_pdf_requested, report_keys

pytestmark = pytest.mark.integration

StoreCorrected = Callable[[bytes, bytes], Awaitable[ImageCorrected]]


def _key(job_id: uuid.UUID, name: str) -> str:
    return f"{job_id}/{name}"


async def _stored(runtime: ServiceRuntime, job_id: uuid.UUID, name: str) -> bool:
    return await runtime.blobs.exists(buckets.REPORTS, _key(job_id, name))


async def _listen(runtime: ServiceRuntime) -> dict[str, list[RawEnvelope]]:
    """What the reporter announces, by routing key (the in-memory bus refuses a message no queue
    is bound for, and the outbox sends in order, so one queue hears both)."""
    heard: dict[str, list[RawEnvelope]] = {"report.ready": [], "report.pdf_ready": []}

    async def observe(envelope: RawEnvelope) -> None:
        heard[envelope.type].append(envelope)

    await runtime.bus.subscribe(f"observer-{uuid.uuid4().hex[:8]}", list(heard), observe)
    return heard


async def _settle(heard: list[RawEnvelope], count: int) -> None:
    """Wait until ``count`` messages were heard (or 10 s), then a little more for any extra."""
    for _ in range(200):
        if len(heard) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def _reported(
    runtime: ServiceRuntime, store_corrected: StoreCorrected, measurements: Measurements
) -> uuid.UUID:
    photo = cv2.imencode(".png", np.full((480, 640, 3), 128, dtype=np.uint8))[1].tobytes()
    event = await store_corrected(measurements.model_dump_json().encode(), photo)
    await on_image_corrected(runtime, make_envelope("corrector", str(event.job_id), event))
    return event.job_id


async def _request_pdf(runtime: ServiceRuntime, job_id: uuid.UUID, *, by: str = LOCAL_USER) -> None:
    envelope = make_envelope("gateway", str(job_id), ReportPdfRequested(job_id=job_id))
    with delivered_by(by):
        await on_pdf_requested(runtime, envelope)


async def test_a_report_stores_its_previews_and_no_pdf(
    runtime: ServiceRuntime, store_corrected: StoreCorrected, chartless_measurements: Measurements
) -> None:
    ready = (await _listen(runtime))["report.ready"]
    job_id = await _reported(runtime, store_corrected, chartless_measurements)
    await _settle(ready, 1)
    [announced] = ready
    assert announced.schema_version == 2
    assert announced.data.get("report_pdf") is None
    assert not await _stored(runtime, job_id, "report.pdf")
    for name in ("report.json", "report.html", "preview-before.jpg", "preview-after.jpg"):
        assert await _stored(runtime, job_id, name), name
    assert {_key(job_id, "preview-before.jpg"), _key(job_id, "preview-after.jpg")} <= set(report_keys(job_id))


async def test_a_requested_pdf_is_made_once_and_announced_at_each_request(
    runtime: ServiceRuntime,
    store_corrected: StoreCorrected,
    chartless_measurements: Measurements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pdf_ready = (await _listen(runtime))["report.pdf_ready"]
    job_id = await _reported(runtime, store_corrected, chartless_measurements)
    await _request_pdf(runtime, job_id)
    await _settle(pdf_ready, 1)
    [first] = pdf_ready
    assert first.data["report_pdf"] == {"bucket": buckets.REPORTS, "key": _key(job_id, "report.pdf")}
    pdf = await runtime.blobs.get_bytes(buckets.REPORTS, _key(job_id, "report.pdf"))
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf)) == 1

    def render_again(*_: object) -> bytes:
        raise AssertionError("a stored PDF is rendered again")

    monkeypatch.setattr(render, "render_stored_pdf", render_again)
    await _request_pdf(runtime, job_id)
    await _settle(pdf_ready, 2)
    assert [envelope.data for envelope in pdf_ready] == [first.data, first.data]
    assert await runtime.blobs.get_bytes(buckets.REPORTS, _key(job_id, "report.pdf")) == pdf


async def test_a_forgotten_job_gets_no_pdf(
    runtime: ServiceRuntime, store_corrected: StoreCorrected, chartless_measurements: Measurements
) -> None:
    pdf_ready = (await _listen(runtime))["report.pdf_ready"]
    job_id = await _reported(runtime, store_corrected, chartless_measurements)
    async with runtime.session() as session, session.begin():
        await remember_forgotten(session, job_id, "deleted_on_request")
    await _request_pdf(runtime, job_id)
    await _settle(pdf_ready, 1)
    assert pdf_ready == []
    assert not await _stored(runtime, job_id, "report.pdf")


async def test_a_job_without_a_report_gets_no_pdf(runtime: ServiceRuntime) -> None:
    job_id = uuid.uuid4()
    pdf_ready = (await _listen(runtime))["report.pdf_ready"]
    await _request_pdf(runtime, job_id)
    await _settle(pdf_ready, 1)
    assert pdf_ready == []
    assert not await _stored(runtime, job_id, "report.pdf")


async def test_only_our_services_may_ask_for_a_pdf(runtime: ServiceRuntime) -> None:
    with pytest.raises(PermanentError, match="not one of our services"):
        await _request_pdf(runtime, uuid.uuid4(), by="acme")
