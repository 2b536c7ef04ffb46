"""A profile job (which skips the detector) is refused too when another publisher used its job id
first: the corrector would overwrite that job's corrected image and profile."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import PermanentError
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import PROCESSING_ERROR, BlobRef, ImageUploaded, JobOptions
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.workers import deliver, started_worker
from chromaline.corrector import handlers
from chromaline.corrector.handlers import on_image_uploaded
from chromaline.corrector.models import Correction
from chromaline.corrector.service import SPEC
from chromaline.corrector.settings import CorrectorSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def corrector(postgres_url: str, db_schema: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    async with started_worker(
        SPEC,
        CorrectorSettings,
        database_url=postgres_url,
        schema=db_schema,
        blobs=tmp_path,
        partners="acme,globex",
    ) as runtime:
        yield runtime


async def _profile_job(
    runtime: ServiceRuntime, job_id: uuid.UUID, publisher: str, profile: BlobRef | None = None
) -> None:
    """A profile job whose photo is not there (the corrector records a failure quickly), by
    default with the photo and profile where the publisher keeps its own."""
    event = ImageUploaded(
        job_id=job_id,
        filename="a.jpg",
        original=BlobRef(bucket=buckets.ORIGINALS, key=f"{publisher}/{job_id}/a.jpg"),
        options=JobOptions(
            profile=profile or BlobRef(bucket=buckets.ORIGINALS, key=f"{publisher}/profile.json")
        ),
    )
    await deliver(on_image_uploaded, runtime, job_id, event, publisher)


async def test_a_profile_job_naming_a_job_id_used_first_by_another_is_refused(
    corrector: ServiceRuntime,
) -> None:
    corrected_earlier, acmes = uuid.uuid4(), uuid.uuid4()
    async with corrector.session() as session, session.begin():
        session.add(Correction(job_id=corrected_earlier, outcome="corrected"))
    with pytest.raises(PermanentError, match="published by someone else first"):
        await _profile_job(corrector, corrected_earlier, "acme")
    await _profile_job(corrector, acmes, "acme")
    with pytest.raises(PermanentError, match="published by someone else first"):
        await _profile_job(corrector, acmes, "globex")


async def test_a_partners_profile_job_reads_only_its_own_profile(corrector: ServiceRuntime) -> None:
    """A saved profile's key is its job's id, which outcome events tell every partner."""
    someone_elses = BlobRef(bucket=buckets.CORRECTED, key=f"{uuid.uuid4()}/profile.json")
    with pytest.raises(PermanentError, match="names only its own blobs"):
        await _profile_job(corrector, uuid.uuid4(), "acme", someone_elses)


async def test_a_photo_the_engine_fails_on_unexpectedly_fails_its_job(
    corrector: ServiceRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error the engine does not name went back to the bus: retried on the same photo, it
    failed the same way into the dead-letter queue, and the job stayed 'correcting' until the
    watchdog failed it as a timeout, hiding why."""

    def broken(*_: object) -> None:
        raise ZeroDivisionError("a degenerate ICC curve")

    monkeypatch.setattr(handlers, "correct_with_profile", broken)
    monkeypatch.setattr(handlers, "load_profile", lambda _: None)
    job_id = uuid.uuid4()
    photo = BlobRef(bucket=buckets.ORIGINALS, key=f"{LOCAL_USER}/{job_id}/a.jpg")
    profile = BlobRef(bucket=buckets.ORIGINALS, key=f"{LOCAL_USER}/profile.json")
    await corrector.blobs.ensure_buckets([buckets.ORIGINALS])
    await corrector.blobs.put_bytes(photo.bucket, photo.key, b"\xff\xd8\xff photo")
    await corrector.blobs.put_bytes(profile.bucket, profile.key, b"{}")
    event = ImageUploaded(
        job_id=job_id, filename="a.jpg", original=photo, options=JobOptions(profile=profile)
    )
    await deliver(on_image_uploaded, corrector, job_id, event, LOCAL_USER)
    async with corrector.session() as session:
        row = await session.get(Correction, job_id)
    assert row is not None
    assert (row.outcome, row.reason) == ("failed", PROCESSING_ERROR)
    assert "ZeroDivisionError" in (row.message or "")
