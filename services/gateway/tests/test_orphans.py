"""The orphan sweep: originals without a job, presigned uploads never confirmed and write
leftovers go once old enough; everything a record refers to, or someone else wrote, stays."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from chromaline.common.blobs import buckets
from chromaline.common.events.contracts import BlobRef, JobOptions
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.models import PendingUpload
from chromaline.gateway.orphans import OrphanSweep, original_key, sweep_orphans
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AN_HOUR_AGO = time.time() - 2 * 3600


@pytest.fixture
async def gateway(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://orphans-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        orphan_grace_seconds=3600,
        orphan_sweep_interval_seconds=0,
    )
    runtime = ServiceRuntime(SPEC, settings)
    await runtime.start(consume=False)
    yield runtime
    await runtime.stop()


async def _store(runtime: ServiceRuntime, root: Path, key: str, *, old: bool) -> None:
    await runtime.blobs.put_bytes(buckets.ORIGINALS, key, b"photo")
    if old:
        os.utime(root / buckets.ORIGINALS / key, (AN_HOUR_AGO, AN_HOUR_AGO))


def _deleted(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "chromaline_orphans_deleted_total", {"service": "gateway", "reason": reason}
    )
    return value or 0.0


async def _exists(runtime: ServiceRuntime, key: str) -> bool:
    return await runtime.blobs.exists(buckets.ORIGINALS, key)


async def test_old_blobs_no_record_refers_to_are_deleted_and_counted(
    gateway: ServiceRuntime, tmp_path: Path
) -> None:
    with_job, orphan, fresh_orphan = (
        original_key("job.jpg"),
        original_key("lost.jpg"),
        original_key("new.jpg"),
    )
    partner = f"partner/{uuid.uuid4()}.jpg"
    for key, old in ((with_job, True), (orphan, True), (fresh_orphan, False), (partner, True)):
        await _store(gateway, tmp_path, key, old=old)
    async with gateway.session() as session, session.begin():
        await jobs.create_batch(
            session,
            "org",
            [("job.jpg", "image/jpeg", 5, BlobRef(bucket=buckets.ORIGINALS, key=with_job))],
            JobOptions(),
        )
    leftover = tmp_path / buckets.ORIGINALS / orphan.split("/")[0] / ".half.jpg.x.partial"
    leftover.write_bytes(b"half")
    os.utime(leftover, (AN_HOUR_AGO, AN_HOUR_AGO))
    counted = _deleted("no_job"), _deleted("write_leftover")

    assert await sweep_orphans(gateway) == OrphanSweep(no_job=1, unconfirmed_upload=0, write_leftover=1)

    assert [await _exists(gateway, key) for key in (with_job, orphan, fresh_orphan, partner)] == [
        True,
        False,
        True,
        True,
    ]
    assert not leftover.exists()
    assert (_deleted("no_job"), _deleted("write_leftover")) == (counted[0] + 1, counted[1] + 1)
    assert await sweep_orphans(gateway) == OrphanSweep(0, 0, 0)


async def test_presigned_uploads_never_confirmed_go_with_their_blobs(
    gateway: ServiceRuntime, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    uploads = {}
    for name, expired, confirmed in (("stale", True, False), ("waiting", False, False), ("done", True, True)):
        upload_id = uuid.uuid4()
        key = f"{upload_id}/{name}.jpg"
        await _store(gateway, tmp_path, key, old=True)
        uploads[name] = (upload_id, key)
        async with gateway.session() as session, session.begin():
            session.add(
                PendingUpload(
                    id=upload_id,
                    organisation_id="org",
                    filename=f"{name}.jpg",
                    blob={"bucket": buckets.ORIGINALS, "key": key},
                    options={},
                    expires_at=now - timedelta(hours=3) if expired else now + timedelta(minutes=5),
                    confirmed_job_id=uuid.uuid4() if confirmed else None,
                )
            )

    result = await sweep_orphans(gateway)

    assert result.unconfirmed_upload == 1
    async with gateway.session() as session:
        remaining = {
            name for name, (upload_id, _) in uploads.items() if await session.get(PendingUpload, upload_id)
        }
    assert remaining == {"waiting", "done"}
    assert [await _exists(gateway, uploads[name][1]) for name in ("stale", "waiting", "done")] == [
        False,
        True,
        True,
    ]
