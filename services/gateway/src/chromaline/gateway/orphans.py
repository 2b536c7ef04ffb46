"""The orphan sweep: blobs that no record refers to any more, deleted once they are old enough.

An upload stores its original first and then, in one transaction, records its job and the
``image.uploaded`` event. A gateway killed between the two, or a database that fails the
transaction, leaves an original that no job refers to; a client that asks for a presigned URL and
never confirms leaves a pending upload and perhaps its blob; a process killed mid-write leaves a
``.partial`` file on the file store. Every ``orphan_sweep_interval_seconds`` each gateway deletes
those older than ``orphan_grace_seconds`` (longer than any upload takes between storing and
committing), with a log line and a count in ``chromaline_orphans_deleted_total`` for each.

Only keys of the gateway's own shape (``<uuid>/<file name>``) are candidates: objects others put
in the originals bucket (a partner's, for instance) are never touched.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from chromaline.common import correlation, metrics
from chromaline.common.blobs import buckets
from chromaline.common.logging import get_logger
from chromaline.common.periodic import run_periodically
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.models import Job, PendingUpload
from chromaline.gateway.settings import GatewaySettings

log = get_logger(__name__)

GATEWAY_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[^/]+$")
"""The keys :func:`original_key` makes."""
CHECK_BATCH = 500
"""Keys looked up in the database at once."""


def original_key(filename: str) -> str:
    """Where the gateway stores an uploaded original: a fresh prefix, then the file's name."""
    return f"{uuid.uuid4()}/{filename}"


@dataclass(frozen=True)
class OrphanSweep:
    no_job: int
    """Originals no job or pending upload refers to."""
    unconfirmed_upload: int
    """Presigned uploads never confirmed (their blob too, when one was sent)."""
    write_leftover: int
    """Files interrupted writes left behind."""


def _settings(runtime: ServiceRuntime) -> GatewaySettings:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return settings


def _deleted(runtime: ServiceRuntime, reason: str, bucket: str, key: str) -> None:
    metrics.ORPHANS_DELETED.labels(runtime.name, reason).inc()
    log.info("orphans.deleted", reason=reason, bucket=bucket, key=key)


async def _drop_unconfirmed_uploads(runtime: ServiceRuntime, cutoff: datetime) -> int:
    """Delete the presigned uploads that expired before ``cutoff`` unconfirmed, and their blobs."""
    count = 0
    async with runtime.session() as session, session.begin():
        stale = (
            await session.execute(
                select(PendingUpload)
                .where(PendingUpload.confirmed_job_id.is_(None), PendingUpload.expires_at < cutoff)
                .limit(CHECK_BATCH)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        for pending in stale:
            await runtime.blobs.delete(pending.blob["bucket"], pending.blob["key"])
            await session.delete(pending)
            _deleted(runtime, "unconfirmed_upload", pending.blob["bucket"], pending.blob["key"])
            count += 1
    return count


async def _referenced(runtime: ServiceRuntime, keys: list[str]) -> set[str]:
    """The ``keys`` of the originals bucket that a job or a pending upload refers to."""
    job_key = Job.original["key"].astext
    upload_key = PendingUpload.blob["key"].astext
    async with runtime.session() as session:
        jobs = await session.execute(select(job_key).where(job_key.in_(keys)))
        uploads = await session.execute(select(upload_key).where(upload_key.in_(keys)))
        return {key for (key,) in jobs} | {key for (key,) in uploads}


async def _delete_unreferenced(runtime: ServiceRuntime, keys: list[str]) -> int:
    referenced = await _referenced(runtime, keys)
    count = 0
    for key in keys:
        if key not in referenced:
            await runtime.blobs.delete(buckets.ORIGINALS, key)
            _deleted(runtime, "no_job", buckets.ORIGINALS, key)
            count += 1
    return count


async def _drop_unreferenced_originals(runtime: ServiceRuntime, cutoff: datetime) -> int:
    count = 0
    candidates: list[str] = []
    async for stored in runtime.blobs.list_objects(buckets.ORIGINALS):
        if stored.modified_at < cutoff and GATEWAY_KEY.fullmatch(stored.key):
            candidates.append(stored.key)
        if len(candidates) >= CHECK_BATCH:
            count += await _delete_unreferenced(runtime, candidates)
            candidates = []
    if candidates:
        count += await _delete_unreferenced(runtime, candidates)
    return count


async def _drop_write_leftovers(runtime: ServiceRuntime, cutoff: datetime) -> int:
    count = 0
    for bucket in runtime.spec.buckets:
        for name in await runtime.blobs.delete_write_leftovers(bucket, cutoff):
            _deleted(runtime, "write_leftover", bucket, name)
            count += 1
    return count


async def sweep_orphans(runtime: ServiceRuntime, *, now: datetime | None = None) -> OrphanSweep:
    """Delete every orphan older than ``orphan_grace_seconds`` at ``now`` (by default the current time)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=_settings(runtime).orphan_grace_seconds)
    with correlation.bound(correlation.new_correlation_id()):
        result = OrphanSweep(
            unconfirmed_upload=await _drop_unconfirmed_uploads(runtime, cutoff),
            no_job=await _drop_unreferenced_originals(runtime, cutoff),
            write_leftover=await _drop_write_leftovers(runtime, cutoff),
        )
        if result != OrphanSweep(0, 0, 0):
            log.info(
                "orphans.swept",
                no_job=result.no_job,
                unconfirmed_upload=result.unconfirmed_upload,
                write_leftover=result.write_leftover,
            )
    return result


async def orphan_sweeper(runtime: ServiceRuntime) -> None:
    """Sweep every ``orphan_sweep_interval_seconds`` (0: never)."""
    interval = _settings(runtime).orphan_sweep_interval_seconds
    await run_periodically("orphans.sweep", interval, lambda: sweep_orphans(runtime))
