"""The HTML report with its figures, and the PDF report, are not made with every report but when
they are first asked for (``report.html_requested``, ``report.pdf_requested``), from the report's
stored JSON and previews."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import (
    BlobRef,
    Contract,
    ImageCorrected,
    PhotoPreviewRefs,
    ReportHtmlRequested,
    ReportPdfRequested,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.forgotten_jobs import remember_forgotten
from chromaline.common.measurements import Measurements
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter import render
from chromaline.reporter.handlers import (
    on_html_requested,
    on_image_corrected,
    on_pdf_requested,
    report_keys,
)

from .test_render import build_measurements

pytestmark = pytest.mark.integration

StoreCorrected = Callable[[bytes, bytes], Awaitable[ImageCorrected]]


def _key(job_id: uuid.UUID, name: str) -> str:
    return f"{job_id}/{name}"


async def _stored(runtime: ServiceRuntime, job_id: uuid.UUID, name: str) -> bool:
    return await runtime.blobs.exists(buckets.REPORTS, _key(job_id, name))


async def _listen(runtime: ServiceRuntime) -> dict[str, list[RawEnvelope]]:
    """What the reporter announces, by routing key (the in-memory bus refuses a message no queue
    is bound for, and the outbox sends in order, so one queue hears both)."""
    heard: dict[str, list[RawEnvelope]] = {
        "report.ready": [],
        "report.pdf_ready": [],
        "report.html_ready": [],
    }

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


@dataclass(frozen=True)
class Form:
    """A form of the report made on request: how it is asked for and how its answer reads."""

    name: str
    file: str
    request: Callable[[uuid.UUID], Contract]
    handler: Callable[[ServiceRuntime, RawEnvelope], Awaitable[None]]
    answer: str
    renderer: str

    async def ask(self, runtime: ServiceRuntime, job_id: uuid.UUID, *, by: str = LOCAL_USER) -> None:
        envelope = make_envelope("gateway", str(job_id), self.request(job_id))
        with delivered_by(by):
            await self.handler(runtime, envelope)


PDF = Form(
    "pdf",
    "report.pdf",
    lambda job_id: ReportPdfRequested(job_id=job_id),
    on_pdf_requested,
    "report.pdf_ready",
    "render_stored_pdf",
)
HTML = Form(
    "html",
    "report.html",
    lambda job_id: ReportHtmlRequested(job_id=job_id),
    on_html_requested,
    "report.html_ready",
    "render_stored_html",
)
FORMS = pytest.mark.parametrize("form", [PDF, HTML], ids=lambda form: form.name)
FIGURE_FILES = (
    "figure-chromaticity.svg",
    "figure-tone_response.svg",
    "figure-patch_pairs.svg",
    "figure-delta_e.svg",
)


async def test_a_report_stores_its_json_and_previews_and_names_the_figures_to_come(
    runtime: ServiceRuntime, store_corrected: StoreCorrected
) -> None:
    ready = (await _listen(runtime))["report.ready"]
    measured = build_measurements()
    job_id = await _reported(runtime, store_corrected, measured)
    await _settle(ready, 1)
    [announced] = ready
    assert announced.schema_version == 3
    assert announced.data.get("report_pdf") is None
    assert announced.data.get("report_html") is None
    assert announced.data["figures"] == {}
    assert announced.data["figures_on_request"] == ["chromaticity", "tone_response", "patch_pairs", "delta_e"]
    for name in ("report.pdf", "report.html", *FIGURE_FILES):
        assert not await _stored(runtime, job_id, name), name
    for name in ("report.json", "preview-before.jpg", "preview-after.jpg", "thumbnail.jpg"):
        assert await _stored(runtime, job_id, name), name
    assert {_key(job_id, "preview-before.jpg"), _key(job_id, "preview-after.jpg")} <= set(report_keys(job_id))


async def test_requested_html_comes_with_its_figures(
    runtime: ServiceRuntime, store_corrected: StoreCorrected
) -> None:
    html_ready = (await _listen(runtime))["report.html_ready"]
    measured = build_measurements()
    job_id = await _reported(runtime, store_corrected, measured)
    await HTML.ask(runtime, job_id)
    await _settle(html_ready, 1)
    [answer] = html_ready
    figures = answer.data["figures"]
    assert set(figures) == {"chromaticity", "tone_response", "patch_pairs", "delta_e"}
    for name, ref in figures.items():
        assert ref == {"bucket": buckets.REPORTS, "key": _key(job_id, f"figure-{name}.svg")}
        assert b"<svg" in await runtime.blobs.get_bytes(ref["bucket"], ref["key"])
    page = await runtime.blobs.get_bytes(buckets.REPORTS, _key(job_id, "report.html"))
    assert page.count(b"data:image/svg+xml;base64,") == 4
    assert (await runtime.blobs.stat(buckets.REPORTS, _key(job_id, "report.html"))).content_type.startswith(
        "text/html"
    )


@FORMS
async def test_a_requested_form_is_made_once_and_announced_at_each_request(
    form: Form,
    runtime: ServiceRuntime,
    store_corrected: StoreCorrected,
    chartless_measurements: Measurements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = (await _listen(runtime))[form.answer]
    job_id = await _reported(runtime, store_corrected, chartless_measurements)
    await form.ask(runtime, job_id)
    await _settle(answers, 1)
    [first] = answers
    assert first.data[f"report_{form.name}"] == {"bucket": buckets.REPORTS, "key": _key(job_id, form.file)}
    made = await runtime.blobs.get_bytes(buckets.REPORTS, _key(job_id, form.file))
    if form is PDF:
        assert made.startswith(b"%PDF")
        assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", made)) == 1
    else:
        assert b"No colour chart was measured" in made

    def render_again(*_: object) -> bytes:
        raise AssertionError(f"a stored {form.file} is rendered again")

    monkeypatch.setattr(render, form.renderer, render_again)
    await form.ask(runtime, job_id)
    await _settle(answers, 2)
    assert [envelope.data for envelope in answers] == [first.data, first.data]
    assert await runtime.blobs.get_bytes(buckets.REPORTS, _key(job_id, form.file)) == made


@FORMS
async def test_a_forgotten_job_gets_nothing_made(
    form: Form, runtime: ServiceRuntime, store_corrected: StoreCorrected, chartless_measurements: Measurements
) -> None:
    answers = (await _listen(runtime))[form.answer]
    job_id = await _reported(runtime, store_corrected, chartless_measurements)
    async with runtime.session() as session, session.begin():
        await remember_forgotten(session, job_id, "deleted_on_request")
    await form.ask(runtime, job_id)
    await _settle(answers, 1)
    assert answers == []
    assert not await _stored(runtime, job_id, form.file)


@FORMS
async def test_a_job_without_a_report_gets_nothing_made(form: Form, runtime: ServiceRuntime) -> None:
    job_id = uuid.uuid4()
    answers = (await _listen(runtime))[form.answer]
    await form.ask(runtime, job_id)
    await _settle(answers, 1)
    assert answers == []
    assert not await _stored(runtime, job_id, form.file)


@FORMS
async def test_only_our_services_may_ask_for_a_form(form: Form, runtime: ServiceRuntime) -> None:
    with pytest.raises(PermanentError, match="not one of our services"):
        await form.ask(runtime, uuid.uuid4(), by="acme")


async def test_a_report_is_made_from_the_correctors_previews_without_the_photos(
    runtime: ServiceRuntime, store_corrected: StoreCorrected
) -> None:
    """The corrector's small previews (``image.corrected`` version 2) are all the reporter
    decodes: here the photos it names are not images at all, and the report is still made."""
    ready = (await _listen(runtime))["report.ready"]
    measurements = build_measurements()
    event = await store_corrected(measurements.model_dump_json().encode(), b"not an image at all")
    blue, red = (np.full((450, 800, 3), colour, dtype=np.uint8) for colour in ((200, 40, 40), (40, 40, 200)))
    refs = {}
    for name, picture in (("original", blue), ("corrected", red)):
        ref = BlobRef(bucket=buckets.REPORTS, key=f"{event.job_id}/photo-preview-{name}.jpg")
        await runtime.blobs.put_bytes(
            ref.bucket, ref.key, cv2.imencode(".jpg", picture)[1].tobytes(), content_type="image/jpeg"
        )
        refs[name] = ref
    event = event.model_copy(update={"previews": PhotoPreviewRefs(**refs)})
    await on_image_corrected(runtime, make_envelope("corrector", str(event.job_id), event))
    await _settle(ready, 1)
    assert len(ready) == 1
    for name, picture in (("preview-before.jpg", blue), ("preview-after.jpg", red)):
        stored = await runtime.blobs.get_bytes(buckets.REPORTS, _key(event.job_id, name))
        preview = cv2.imdecode(np.frombuffer(stored, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert preview.shape == picture.shape
        assert np.abs(preview[5:20, 5:20].astype(int) - picture[5:20, 5:20]).max() < 8, name
