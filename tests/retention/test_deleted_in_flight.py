"""A job deleted while a worker is still processing it stays deleted, on the real PostgreSQL and
S3: the worker is held while it reads the photo, ``job.expired`` (deleted on request) is handled
meanwhile, and once released the worker stores no blob, no row and announces nothing for the job."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import DeclarativeBase

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import (
    BlobRef,
    Contract,
    ImageCorrected,
    ImageUploaded,
    JobExpired,
    JobOptions,
)
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import outbox_table
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings
from chromaline.corrector import service as corrector
from chromaline.corrector.models import Correction
from chromaline.corrector.settings import CorrectorSettings
from chromaline.detector import service as detector
from chromaline.detector.models import Detection
from chromaline.detector.settings import DetectorSettings
from chromaline.engine.profile import FitStatistics, Profile, dump_profile
from chromaline.reporter import service as reporter
from chromaline.reporter.models import Report
from chromaline.reporter.settings import ReporterSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PROFILE = BlobRef(bucket=buckets.CORRECTED, key="saved/identity.json")


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def _original(job_id: uuid.UUID) -> BlobRef:
    return BlobRef(bucket=buckets.ORIGINALS, key=f"upload-{job_id}/photo.png")


def _uploaded(job_id: uuid.UUID, options: JobOptions) -> ImageUploaded:
    return ImageUploaded(job_id=job_id, filename="photo.png", original=_original(job_id), options=options)


def _detector_work(job_id: uuid.UUID) -> tuple[str, Contract]:
    return "image.uploaded", _uploaded(job_id, JobOptions())


def _corrector_work(job_id: uuid.UUID) -> tuple[str, Contract]:
    return "image.uploaded", _uploaded(job_id, JobOptions(profile=PROFILE))


def _reporter_work(job_id: uuid.UUID) -> tuple[str, Contract]:
    corrected = BlobRef(bucket=buckets.CORRECTED, key=f"{job_id}/corrected.png")
    return "image.corrected", ImageCorrected(
        job_id=job_id,
        original=_original(job_id),
        corrected=corrected,
        profile=BlobRef(bucket=buckets.CORRECTED, key=f"{job_id}/profile.json"),
        method="linear3x3",
        chart_type=None,
        delta_e2000_before=None,
        delta_e2000_after=None,
    )


@dataclass(frozen=True)
class Worker:
    spec: ServiceSpec
    bucket: str
    settings: type[ServiceSettings]
    row: type[DeclarativeBase]
    work: Callable[[uuid.UUID], tuple[str, Contract]]
    """The event that starts the worker's processing of a job: its routing key and data."""


WORKERS = {
    "detector": Worker(detector.SPEC, buckets.ORIGINALS, DetectorSettings, Detection, _detector_work),
    "corrector": Worker(corrector.SPEC, buckets.CORRECTED, CorrectorSettings, Correction, _corrector_work),
    "reporter": Worker(reporter.SPEC, buckets.REPORTS, ReporterSettings, Report, _reporter_work),
}


@pytest.fixture(params=list(WORKERS))
async def worker(
    request: pytest.FixtureRequest, service_database_url: str, s3_url: str
) -> AsyncIterator[tuple[Worker, ServiceRuntime]]:
    chosen = WORKERS[request.param]
    settings = chosen.settings(
        database_url=service_database_url,
        blob_url=s3_url,
        bus_url=f"memory://in-flight-{uuid.uuid4().hex[:8]}",
    )
    runtime = ServiceRuntime(chosen.spec, settings)
    await runtime.start(consume=False)
    yield chosen, runtime
    await runtime.stop()


def _identity_profile() -> bytes:
    profile = Profile(
        method="linear3x3",
        coefficients=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        chart_type="classic24",
        reference_edition="2014",
        reference_white_xy=(0.3457, 0.3585),
        statistics=FitStatistics(training_delta_e2000=1.0, patch_count=24),
    )
    return dump_profile(profile).encode()


async def _stored_for(runtime: ServiceRuntime, bucket: str, job_id: uuid.UUID) -> list[str]:
    return [
        stored.key
        async for stored in runtime.blobs.list_objects(bucket)
        if stored.key.startswith(f"{job_id}/")
    ]


async def _count(runtime: ServiceRuntime, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    async with runtime.session() as session:
        return int(
            (
                await session.execute(sa.select(sa.func.count()).select_from(table).where(condition))
            ).scalar_one()
        )


async def test_a_job_deleted_while_in_flight_stores_nothing_afterwards(
    worker: tuple[Worker, ServiceRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen, runtime = worker
    job_id = uuid.uuid4()
    photo = _photo()
    await runtime.blobs.ensure_buckets([buckets.ORIGINALS, buckets.CORRECTED, buckets.REPORTS])
    await runtime.blobs.put_bytes(buckets.ORIGINALS, _original(job_id).key, photo)
    if chosen.spec is reporter.SPEC:
        await runtime.blobs.put_bytes(buckets.CORRECTED, f"{job_id}/corrected.png", photo)
    await runtime.blobs.put_bytes(PROFILE.bucket, PROFILE.key, _identity_profile())

    reading, release = asyncio.Event(), asyncio.Event()
    read = runtime.blobs.get_bytes

    async def held_on_the_original(bucket: str, key: str) -> bytes:
        if key == _original(job_id).key:
            reading.set()
            await release.wait()
        return await read(bucket, key)

    monkeypatch.setattr(runtime.blobs, "get_bytes", held_on_the_original)
    routing_key, data = chosen.work(job_id)
    deletion = JobExpired(
        job_id=job_id,
        organisation_id="org",
        filename="photo.png",
        reason="deleted_on_request",
        deleted_by=uuid.uuid4(),
        expired_at=datetime.now(UTC),
        original=_original(job_id),
    )
    with delivered_by(LOCAL_USER):
        processing = asyncio.ensure_future(
            chosen.spec.handlers[routing_key](runtime, make_envelope("gateway", str(job_id), data))
        )
        await asyncio.wait_for(reading.wait(), 30)
        await chosen.spec.handlers["job.expired"](runtime, make_envelope("gateway", str(job_id), deletion))
    release.set()
    await asyncio.wait_for(processing, 60)

    assert await _stored_for(runtime, chosen.bucket, job_id) == []
    table = chosen.row.__table__
    assert isinstance(table, sa.Table)
    assert await _count(runtime, table, table.c.job_id == job_id) == 0
    outbox = outbox_table(None)
    assert await _count(runtime, outbox, outbox.c.payload["subject"].astext == str(job_id)) == 0


FAILURE_REASONS = {
    "detector": ("detect", "original_missing"),
    "corrector": ("correct", "original_missing"),
    "reporter": ("report", "blob_missing"),
}


async def test_work_whose_photo_was_deleted_first_fails_the_job_instead_of_dead_lettering(
    worker: tuple[Worker, ServiceRuntime],
) -> None:
    """The gateway deletes a job's photo before the worker has seen ``job.expired``: the worker
    announces a failure the gateway can ignore, instead of raising until the message is dead
    lettered, and stores nothing for the job."""
    chosen, runtime = worker
    job_id = uuid.uuid4()
    await runtime.blobs.ensure_buckets([buckets.ORIGINALS, buckets.CORRECTED, buckets.REPORTS])
    await runtime.blobs.put_bytes(PROFILE.bucket, PROFILE.key, _identity_profile())
    routing_key, data = chosen.work(job_id)

    with delivered_by(LOCAL_USER):
        await chosen.spec.handlers[routing_key](runtime, make_envelope("gateway", str(job_id), data))

    assert await _stored_for(runtime, chosen.bucket, job_id) == []
    outbox = outbox_table(None)
    async with runtime.session() as session:
        payloads = (
            await session.execute(
                sa.select(outbox.c.payload).where(outbox.c.payload["subject"].astext == str(job_id))
            )
        ).scalars()
        announced = [
            (payload["type"], payload["data"]["stage"], payload["data"]["reason"]) for payload in payloads
        ]
    stage, reason = FAILURE_REASONS[chosen.spec.name]
    assert announced == [("processing.failed", stage, reason)]
