"""A report that can never be made is announced as failed at stage ``report`` (the job keeps its
corrected image) instead of being retried into the dead-letter queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chromaline.common.blobs import buckets
from chromaline.common.events.contracts import BlobRef, ImageCorrected
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.measurements import Measurements
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter.handlers import on_image_corrected
from chromaline.reporter.service import SPEC
from chromaline.reporter.settings import ReporterSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = ReporterSettings(
        database_url=service_database_url,
        bus_url=f"memory://reporter-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


async def _corrected(runtime: ServiceRuntime, *, measurements: bytes, photo: bytes) -> ImageCorrected:
    job_id = uuid.uuid4()
    refs = {}
    for name, data in (("measurements.json", measurements), ("corrected.jpg", photo)):
        ref = BlobRef(bucket=buckets.REPORTS, key=f"{job_id}/{name}")
        await runtime.blobs.put_bytes(ref.bucket, ref.key, data, content_type="application/octet-stream")
        refs[name] = ref
    return ImageCorrected(
        job_id=job_id,
        original=refs["corrected.jpg"],
        corrected=refs["corrected.jpg"],
        profile=refs["measurements.json"],
        method="linear3x3",
        chart_type=None,
        delta_e2000_before=None,
        delta_e2000_after=None,
        measurements=refs["measurements.json"],
    )


async def _failures_for(runtime: ServiceRuntime, event: ImageCorrected) -> list[RawEnvelope]:
    heard: list[RawEnvelope] = []

    async def observe(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    await runtime.bus.subscribe(f"observer-{event.job_id}", ["processing.failed"], observe)
    envelope = make_envelope("corrector", str(event.job_id), event)
    await on_image_corrected(runtime, envelope)
    for _ in range(200):
        if heard:
            break
        await asyncio.sleep(0.05)
    return heard


async def test_unreadable_measurements_fail_the_report(runtime: ServiceRuntime) -> None:
    event = await _corrected(runtime, measurements=b'{"not": "measurements"}', photo=b"")
    [failed] = await _failures_for(runtime, event)
    assert failed.subject == str(event.job_id)
    assert (failed.data["stage"], failed.data["reason"]) == ("report", "unreadable_measurements")


async def test_a_photo_that_cannot_be_decoded_fails_the_report(
    runtime: ServiceRuntime, chartless_measurements: Measurements
) -> None:
    event = await _corrected(
        runtime, measurements=chartless_measurements.model_dump_json().encode(), photo=b"\xff\xd8 no jpeg"
    )
    [failed] = await _failures_for(runtime, event)
    assert (failed.data["stage"], failed.data["reason"]) == ("report", "decode_error")
    assert "could not be decoded" in failed.data["message"]
