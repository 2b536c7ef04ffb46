"""A job id belongs to the publisher of its first image.uploaded: a partner that learned another
organisation's job id (outcome events are heard by every partner) cannot make the workers
overwrite that job's results."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import PermanentError
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import PROCESSING_ERROR, BlobRef, ImageUploaded
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.workers import deliver, started_worker
from chromaline.detector import handlers
from chromaline.detector.handlers import on_image_uploaded
from chromaline.detector.models import Detection
from chromaline.detector.service import SPEC
from chromaline.detector.settings import DetectorSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def detector(postgres_url: str, db_schema: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    async with started_worker(
        SPEC,
        DetectorSettings,
        database_url=postgres_url,
        schema=db_schema,
        blobs=tmp_path,
        partners="acme,globex",
    ) as runtime:
        yield runtime


async def _uploaded(
    runtime: ServiceRuntime, job_id: uuid.UUID, publisher: str, original: BlobRef | None = None
) -> None:
    """``image.uploaded`` of a photo that is not there (the detector records a failure quickly),
    by default where the publisher keeps its own photos."""
    where = original or BlobRef(bucket=buckets.ORIGINALS, key=f"{publisher}/{job_id}/a.jpg")
    event = ImageUploaded(job_id=job_id, filename="a.jpg", original=where)
    await deliver(on_image_uploaded, runtime, job_id, event, publisher)


async def test_a_job_id_another_publisher_used_first_is_refused(detector: ServiceRuntime) -> None:
    ours, acmes = uuid.uuid4(), uuid.uuid4()
    await _uploaded(detector, ours, LOCAL_USER)
    await _uploaded(detector, acmes, "acme")
    with pytest.raises(PermanentError, match="published by someone else first"):
        await _uploaded(detector, ours, "acme")
    with pytest.raises(PermanentError, match="published by someone else first"):
        await _uploaded(detector, acmes, "globex")
    await _uploaded(detector, acmes, "acme")
    await _uploaded(detector, ours, LOCAL_USER)


async def test_a_job_examined_before_ids_were_claimed_is_no_partners(detector: ServiceRuntime) -> None:
    earlier = uuid.uuid4()
    async with detector.session() as session, session.begin():
        session.add(Detection(job_id=earlier, outcome="failed", reason="original_missing"))
    with pytest.raises(PermanentError, match="published by someone else first"):
        await _uploaded(detector, earlier, "acme")
    await _uploaded(detector, earlier, LOCAL_USER)


@pytest.mark.parametrize(
    "original",
    [
        BlobRef(bucket=buckets.CORRECTED, key="acme/someone-elses/corrected.jpg"),
        BlobRef(bucket=buckets.ORIGINALS, key="0b7e4c1a/an-organisations-photo.jpg"),
        BlobRef(bucket=buckets.ORIGINALS, key="globex/their-photo.jpg"),
        BlobRef(bucket=buckets.ORIGINALS, key="acme/../0b7e4c1a/an-organisations-photo.jpg"),
    ],
    ids=["another-bucket", "an-organisations-original", "another-partners", "climbing-out"],
)
async def test_a_partners_job_reads_only_its_own_photos(detector: ServiceRuntime, original: BlobRef) -> None:
    """Outcome events carry other jobs' blob references: a partner naming one had another
    organisation's photo or result processed, and heard where the outcome was stored."""
    with pytest.raises(PermanentError, match="names only its own blobs"):
        await _uploaded(detector, uuid.uuid4(), "acme", original)


async def test_a_photo_the_engine_fails_on_unexpectedly_fails_its_job(
    detector: ServiceRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error the engine does not name went back to the bus: retried on the same photo, it
    failed the same way into the dead-letter queue, and the job stayed 'detecting' until the
    watchdog failed it as a timeout, hiding why."""

    def broken(*_: object) -> None:
        raise ZeroDivisionError("a degenerate ICC curve")

    monkeypatch.setattr(handlers, "examine", broken)
    job_id = uuid.uuid4()
    original = BlobRef(bucket=buckets.ORIGINALS, key=f"{job_id}/a.jpg")
    await detector.blobs.put_bytes(original.bucket, original.key, b"\xff\xd8\xff photo")
    await _uploaded(detector, job_id, LOCAL_USER, original)
    async with detector.session() as session:
        row = await session.get(Detection, job_id)
    assert row is not None
    assert (row.outcome, row.reason) == ("failed", PROCESSING_ERROR)
    assert "ZeroDivisionError" in (row.message or "")
