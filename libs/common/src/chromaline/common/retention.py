"""What every service does on the retention events: believe them only from our own services,
and on ``job.expired`` (after retention, or on request) delete what it stored for the job.

Deleting is idempotent (a blob already gone is fine), so a redelivered event, or one replayed
from a dead-letter queue, only repeats work already done. A deletion that fails raises, and the
bus retries the event and finally parks it in the service's dead-letter queue, where operators
see it: a job is never left half-deleted without a trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Delete

from chromaline.common import forgotten_jobs, inbox
from chromaline.common.blobs.base import BlobStore
from chromaline.common.bus.base import PermanentError, current_publisher
from chromaline.common.bus.publishers import internal_publishers
from chromaline.common.events.contracts import BlobRef, JobExpired, UnknownEventError, parse_data
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.logging import get_logger
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.settings import ServiceSettings

log = get_logger(__name__)


def accept_internal_event(envelope: RawEnvelope, settings: ServiceSettings) -> Any:
    """The event's data; a ``PermanentError`` (dead letter) when it does not match its contract
    or when a partner or stranger sent it, as these events delete data or say how long it lives."""
    publisher = current_publisher()
    if publisher not in internal_publishers(settings):
        raise PermanentError(f"{envelope.type} from {publisher!r}, which is not one of our services")
    try:
        return parse_data(envelope)
    except (UnknownEventError, ValidationError) as error:
        raise PermanentError(f"invalid {envelope.type}: {error}") from error


def accept_job_expired(envelope: RawEnvelope, settings: ServiceSettings) -> JobExpired:
    event = accept_internal_event(envelope, settings)
    if not isinstance(event, JobExpired):
        raise PermanentError(f"{envelope.type} is not job.expired")
    return event


def own_blobs(event: JobExpired, bucket: str, keys: Iterable[str]) -> list[BlobRef]:
    """What a service wrote to ``bucket`` for the expired job: the results the event names there
    and the service's own ``keys`` (which cover results the gateway never heard of), less those
    a saved profile keeps."""
    named = [ref for ref in event.results.values() if ref.bucket == bucket]
    candidates = {
        (ref.bucket, ref.key): ref for ref in [*named, *(BlobRef(bucket=bucket, key=key) for key in keys)]
    }
    for ref in event.kept:
        candidates.pop((ref.bucket, ref.key), None)
    return sorted(candidates.values(), key=lambda ref: ref.key)


async def delete_blobs(blobs: BlobStore, refs: Iterable[BlobRef]) -> None:
    """Delete each blob; one that is already gone counts as deleted."""
    for ref in refs:
        await blobs.delete(ref.bucket, ref.key)


async def forget_expired_job(
    runtime: ServiceRuntime,
    envelope: RawEnvelope,
    *,
    rows: Callable[[uuid.UUID], Delete],
    bucket: str | None = None,
    keys: Callable[[uuid.UUID], Iterable[str]] | None = None,
) -> JobExpired:
    """A worker's whole ``job.expired`` handler: under the job's lock, remember the job as
    forgotten, delete the blobs it wrote to ``bucket`` for the job (the results the event names
    there and its own ``keys(job_id)``, less what a saved profile keeps), then its
    ``rows(job_id)``, claiming the event in the same transaction.

    Work for the job still in flight stores its results only under the same lock, and only when
    the job is not forgotten (:mod:`chromaline.common.forgotten_jobs`), so nothing it writes
    outlives the deletion."""
    event = accept_job_expired(envelope, runtime.settings)
    async with runtime.session() as session, session.begin():
        await forgotten_jobs.lock_job(session, runtime.name, event.job_id)
        await forgotten_jobs.remember_forgotten(session, event.job_id, event.reason)
        if bucket is not None:
            await delete_blobs(runtime.blobs, own_blobs(event, bucket, keys(event.job_id) if keys else ()))
        if await inbox.claim(session, envelope.event_id, runtime.name):
            await session.execute(rows(event.job_id))
    log.info("retention.job_forgotten", service=runtime.name, job_id=str(event.job_id), reason=event.reason)
    return event
