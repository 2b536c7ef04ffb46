"""Data retention: a job that ended longer ago than its organisation's period expires.

Sweeps run as a background task of every gateway (every ``retention_sweep_interval_seconds``;
0 turns it off) or once from ``chromaline retention sweep`` (the Kubernetes CronJob). Jobs are
taken in batches with ``FOR UPDATE SKIP LOCKED``, so sweeps running at once (replicas, or a
CronJob overlapping the periodic task) never take the same job. For each job the gateway deletes
the original it stored, turns the job into its tombstone and writes ``job.expired`` to its
outbox, in one transaction; the services that stored the job's results delete them on hearing
the event. A job whose original cannot be deleted stays as it was and is tried again next sweep.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import correlation
from chromaline.common.events.contracts import BlobRef, OrganisationRetentionChanged
from chromaline.common.logging import get_logger
from chromaline.common.periodic import run_periodically
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.models import ENDED_STATES, Job, OrganisationRetention, SavedProfile
from chromaline.gateway.settings import GatewaySettings

log = get_logger(__name__)

SHORTEST_PERIOD_DAYS = 1


@dataclass(frozen=True)
class SweepResult:
    expired: int
    """Jobs turned into tombstones."""
    failed: int
    """Jobs left as they were because their original could not be deleted (tried again next sweep)."""


def effective_days(days: int | None, default_days: int) -> int:
    """An organisation's period: its own, or the deployment's default when it chose none."""
    return days if days is not None else default_days


def cutoff_for(now: datetime, days: int) -> datetime:
    """Jobs that ended before this instant are past a period of ``days`` (of 24 hours each)."""
    return now - timedelta(days=days)


async def record_period(session: AsyncSession, event: OrganisationRetentionChanged) -> None:
    """Keep an organisation's new period, unless a later change is already kept (events may
    arrive out of order)."""
    statement = insert(OrganisationRetention).values(
        organisation_id=str(event.organisation_id), days=event.days, changed_at=event.changed_at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[OrganisationRetention.organisation_id],
            set_={"days": statement.excluded.days, "changed_at": statement.excluded.changed_at},
            where=OrganisationRetention.changed_at < statement.excluded.changed_at,
        )
    )


def _settings(runtime: ServiceRuntime) -> GatewaySettings:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return settings


async def saved_profile_blobs(
    session: AsyncSession, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[BlobRef]]:
    """Per job, the result blobs a saved profile uses: they outlive the job."""
    rows = await session.execute(
        select(SavedProfile.source_job_id, SavedProfile.blob, SavedProfile.cube).where(
            SavedProfile.source_job_id.in_(job_ids)
        )
    )
    kept: dict[uuid.UUID, list[BlobRef]] = {}
    for job_id, blob, cube in rows.all():
        kept.setdefault(job_id, []).extend(BlobRef.model_validate(ref) for ref in (blob, cube) if ref)
    return kept


async def _expire_batch(
    runtime: ServiceRuntime, now: datetime, batch_size: int, passed_over: set[uuid.UUID]
) -> SweepResult | None:
    """Expire one batch of due jobs in one transaction; None when no job is due."""
    settings = _settings(runtime)
    days: ColumnElement[int] = func.coalesce(OrganisationRetention.days, settings.retention_default_days)
    ended_at = func.coalesce(Job.finished_at, Job.created_at)
    due = (
        select(Job, days)
        .outerjoin(OrganisationRetention, OrganisationRetention.organisation_id == Job.organisation_id)
        .where(
            Job.state.in_(ENDED_STATES),
            ended_at < cutoff_for(now, SHORTEST_PERIOD_DAYS),
            ended_at < literal(now) - func.make_interval(0, 0, 0, 0, days * 24),
        )
        .order_by(ended_at, Job.id)
        .limit(batch_size)
        .with_for_update(of=Job, skip_locked=True)
    )
    if passed_over:
        due = due.where(Job.id.not_in(passed_over))
    expired = failed = 0
    async with runtime.session() as session, session.begin():
        rows = (await session.execute(due)).all()
        if not rows:
            return None
        kept = await saved_profile_blobs(session, [job.id for job, _ in rows])
        for job, period in rows:
            try:
                if job.original:
                    await runtime.blobs.delete(job.original["bucket"], job.original["key"])
            except Exception:
                log.exception("retention.original_not_deleted", job_id=str(job.id))
                passed_over.add(job.id)
                failed += 1
                continue
            await jobs.expire_job(
                session,
                job,
                retention_days=period,
                cutoff=cutoff_for(now, period),
                kept=kept.get(job.id, []),
                now=datetime.now(UTC),
            )
            log.info("retention.job_expired", job_id=str(job.id), organisation_id=job.organisation_id)
            expired += 1
    return SweepResult(expired, failed)


async def sweep(
    runtime: ServiceRuntime, *, now: datetime | None = None, batch_size: int | None = None
) -> SweepResult:
    """Expire every job due at ``now`` (by default the current time), one batch after another."""
    now = now or datetime.now(UTC)
    size = batch_size or _settings(runtime).retention_sweep_batch_size
    expired = failed = 0
    passed_over: set[uuid.UUID] = set()
    with correlation.bound(correlation.new_correlation_id()):
        while (batch := await _expire_batch(runtime, now, size, passed_over)) is not None:
            expired += batch.expired
            failed += batch.failed
        if expired or failed:
            log.info("retention.swept", expired=expired, failed=failed)
    return SweepResult(expired, failed)


async def retention_sweeper(runtime: ServiceRuntime) -> None:
    """Sweep every ``retention_sweep_interval_seconds`` (0: never, as when a CronJob runs
    ``chromaline retention sweep`` instead).

    The first sweep waits one interval, as the watchdog does, so that during a rolling upgrade the
    consumers of ``job.expired`` have bound their queues before the first one is published.
    """
    interval = _settings(runtime).retention_sweep_interval_seconds
    await run_periodically("retention.sweep", interval, lambda: sweep(runtime))
