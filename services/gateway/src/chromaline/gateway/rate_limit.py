"""Token buckets limiting how fast each user (with any token or API key) starts uploads, kept in
the gateway's database so that every replica takes from the same bucket.

One statement takes a token: an upsert that refills the bucket for the time elapsed since it was
last touched, by the database's clock (``statement_timestamp()``, the same for every replica and
for the whole statement), and takes one token when there is one. Concurrent takes of one bucket
are serialised by the row's lock, so a burst spread over replicas is granted at most ``burst``
times. A bucket that has refilled completely is as good as none: the pruner deletes those rows.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from chromaline.common.logging import get_logger
from chromaline.common.periodic import run_periodically
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.models import UploadBucket
from chromaline.gateway.settings import GatewaySettings

log = get_logger(__name__)


class UploadBuckets:
    def __init__(self, runtime: ServiceRuntime, rate_per_second: float, burst: int) -> None:
        self._runtime = runtime
        self._rate = rate_per_second
        self._burst = float(burst)

    async def take(self, key: str) -> float:
        """Take one token from ``key``'s bucket: 0 when granted, else the seconds until one is there."""
        now = sa.func.statement_timestamp()
        table = UploadBucket.__table__
        elapsed = sa.extract("epoch", now - table.c.updated_at)
        refilled = sa.func.least(self._burst, table.c.tokens + elapsed * self._rate)
        first = insert(UploadBucket).values(key=key, tokens=self._burst - 1, granted=True, updated_at=now)
        statement = first.on_conflict_do_update(
            index_elements=[UploadBucket.key],
            set_={
                "tokens": sa.case((refilled >= 1, refilled - 1), else_=refilled),
                "granted": refilled >= 1,
                "updated_at": now,
            },
        ).returning(UploadBucket.tokens, UploadBucket.granted)
        async with self._runtime.session() as session, session.begin():
            tokens, granted = (await session.execute(statement)).one()
        return 0.0 if granted else (1 - tokens) / self._rate

    async def forget_full(self) -> int:
        """Delete the buckets that have refilled completely (forgetting them changes nothing)."""
        full_after = sa.func.make_interval(0, 0, 0, 0, 0, 0, self._burst / self._rate)
        async with self._runtime.session() as session, session.begin():
            deleted = await session.execute(
                sa.delete(UploadBucket).where(
                    UploadBucket.updated_at < sa.func.statement_timestamp() - full_after
                )
            )
        count = int(getattr(deleted, "rowcount", 0) or 0)
        if count:
            log.info("upload_buckets.pruned", count=count)
        return count


def upload_buckets(runtime: ServiceRuntime) -> UploadBuckets:
    """The runtime's upload buckets, at the rate and burst of its settings."""
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return UploadBuckets(runtime, settings.upload_rate_per_minute / 60.0, settings.upload_burst)


async def upload_bucket_pruner(runtime: ServiceRuntime) -> None:
    """Delete full upload buckets every ``prune_interval_seconds``."""
    buckets = upload_buckets(runtime)
    await run_periodically(
        "upload_buckets.prune", runtime.settings.prune_interval_seconds, buckets.forget_full
    )


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
