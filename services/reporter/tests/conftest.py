"""Fixtures shared by the reporter's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from chromaline.common.blobs import buckets
from chromaline.common.events.contracts import BlobRef, ImageCorrected
from chromaline.common.measurements import Measurements
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter.service import SPEC
from chromaline.reporter.settings import ReporterSettings


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    """The reporter's runtime on a fresh database, blobs in a directory, an in-memory bus; its
    handlers are called by the test (nothing consumes), its outbox publishes."""
    settings = ReporterSettings(
        database_url=service_database_url,
        bus_url=f"memory://reporter-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


@pytest.fixture
def chartless_measurements() -> Measurements:
    """The measurements of a photo corrected without a chart: no patches, no colour differences."""
    return Measurements(
        filename="no-chart.png",
        chart_type=None,
        reference_edition=None,
        method="profile",
        corners=None,
        image_size=(640, 480),
        patches=[],
        before=None,
        after=None,
        cross_validated_delta_e2000=None,
        rating_before=None,
        rating_after=None,
    )


@pytest.fixture
def store_corrected(runtime: ServiceRuntime) -> Callable[[bytes, bytes], Awaitable[ImageCorrected]]:
    """Store a job's measurements and photo (both the original and the corrected one), and give
    the ``image.corrected`` that names them."""

    async def store(measurements: bytes, photo: bytes) -> ImageCorrected:
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

    return store
