"""Each worker on ``job.expired``, on the real PostgreSQL and S3: its blobs and its row for the
job go (a profile someone saved stays), other jobs' stay, a redelivery is harmless, and the event
is believed only from our own services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import BlobRef, JobExpired
from chromaline.common.events.envelope import make_envelope
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings
from chromaline.corrector import service as corrector
from chromaline.corrector.models import Correction
from chromaline.detector import service as detector
from chromaline.detector.models import Detection
from chromaline.reporter import service as reporter
from chromaline.reporter.models import Report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Worker:
    spec: ServiceSpec
    bucket: str
    named: tuple[str, ...]
    """Files of the job the gateway names in ``job.expired``."""
    unnamed: tuple[str, ...]
    """Files of the job the worker wrote but the gateway never heard of."""
    kept: tuple[str, ...]
    """Files a saved profile still uses."""
    row: type[DeclarativeBase]
    row_values: dict[str, Any]


WORKERS = {
    "detector": Worker(detector.SPEC, buckets.ORIGINALS, (), (), (), Detection, {"outcome": "detected"}),
    "corrector": Worker(
        corrector.SPEC,
        buckets.CORRECTED,
        ("corrected.jpg", "profile.json"),
        ("measurements.json",),
        ("profile.cube",),
        Correction,
        {"outcome": "corrected"},
    ),
    "reporter": Worker(
        reporter.SPEC,
        buckets.REPORTS,
        ("report.pdf", "report.html"),
        ("report.json", "figure-chromaticity.svg", "thumbnail.jpg", "preview-before.jpg"),
        (),
        Report,
        {"prefix": "x", "seconds": 1.0},
    ),
}


@pytest.fixture(params=list(WORKERS))
async def worker(
    request: pytest.FixtureRequest, service_database_url: str, s3_url: str
) -> AsyncIterator[tuple[Worker, ServiceRuntime]]:
    chosen = WORKERS[request.param]
    settings = ServiceSettings(
        database_url=service_database_url, blob_url=s3_url, bus_url=f"memory://expiry-{uuid.uuid4().hex[:8]}"
    )
    runtime = ServiceRuntime(chosen.spec, settings)
    await runtime.start(consume=False)
    yield chosen, runtime
    await runtime.stop()


async def _store_job(worker: Worker, runtime: ServiceRuntime, job_id: uuid.UUID) -> list[str]:
    keys = [f"{job_id}/{name}" for name in (*worker.named, *worker.unnamed, *worker.kept)]
    for key in keys:
        await runtime.blobs.put_bytes(worker.bucket, key, b"result")
    async with runtime.session() as session, session.begin():
        session.add(worker.row(job_id=job_id, **worker.row_values))
    return keys


def _event(worker: Worker, job_id: uuid.UUID) -> JobExpired:
    now = datetime.now(UTC)

    def ref(name: str) -> BlobRef:
        return BlobRef(bucket=worker.bucket, key=f"{job_id}/{name}")

    return JobExpired(
        job_id=job_id,
        organisation_id="org",
        filename="photo.jpg",
        retention_days=30,
        cutoff=now - timedelta(days=30),
        expired_at=now,
        original=BlobRef(bucket=buckets.ORIGINALS, key=f"upload-{job_id}/photo.jpg"),
        results={name.replace(".", "_"): ref(name) for name in (*worker.named, *worker.kept)},
        kept=[ref(name) for name in worker.kept],
    )


async def _rows(worker: Worker, runtime: ServiceRuntime, job_id: uuid.UUID) -> int:
    table = worker.row.__table__
    async with runtime.session() as session:
        count = await session.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.job_id == job_id)
        )
    return int(count.scalar_one())


async def test_an_expired_jobs_blobs_and_row_go_and_nothing_else(
    worker: tuple[Worker, ServiceRuntime],
) -> None:
    chosen, runtime = worker
    expired, other = uuid.uuid4(), uuid.uuid4()
    await _store_job(chosen, runtime, expired)
    others = await _store_job(chosen, runtime, other)
    envelope = make_envelope("gateway", str(expired), _event(chosen, expired))
    handler = chosen.spec.handlers["job.expired"]

    with delivered_by(LOCAL_USER):
        await handler(runtime, envelope)
        await handler(runtime, envelope)
        await handler(runtime, make_envelope("gateway", str(expired), _event(chosen, expired)))

    for name in (*chosen.named, *chosen.unnamed):
        assert not await runtime.blobs.exists(chosen.bucket, f"{expired}/{name}"), name
    for name in chosen.kept:
        assert await runtime.blobs.exists(chosen.bucket, f"{expired}/{name}"), name
    assert [await runtime.blobs.exists(chosen.bucket, key) for key in others] == [True] * len(others)
    assert await _rows(chosen, runtime, expired) == 0
    assert await _rows(chosen, runtime, other) == 1


async def test_job_expired_from_a_partner_deletes_nothing(worker: tuple[Worker, ServiceRuntime]) -> None:
    chosen, runtime = worker
    job_id = uuid.uuid4()
    keys = await _store_job(chosen, runtime, job_id)
    with delivered_by("acme"), pytest.raises(PermanentError, match="not one of our services"):
        await chosen.spec.handlers["job.expired"](
            runtime, make_envelope("acme", str(job_id), _event(chosen, job_id))
        )
    assert [await runtime.blobs.exists(chosen.bucket, key) for key in keys] == [True] * len(keys)
    assert await _rows(chosen, runtime, job_id) == 1
