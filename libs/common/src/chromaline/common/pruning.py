"""Pruning of the tables that only grow: published outbox rows, inbox claims past the redelivery
window, and idempotency keys past their lifetime.

Every service's runtime prunes every ``prune_interval_seconds``. An outbox row is kept
``outbox_retention_seconds`` after it was published (to inspect what was sent); an inbox claim
``inbox_retention_seconds`` after its event was handled, longer than any redelivery of the same
event can arrive (a relay publishing again after a crash does so within seconds; retries end
within the bus's retry delays), so pruning never lets a duplicate through. Each deletion is counted in
``chromaline_rows_pruned_total``.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chromaline.common import idempotency, metrics
from chromaline.common.inbox import inbox_table
from chromaline.common.logging import get_logger
from chromaline.common.outbox import delete_sent
from chromaline.common.settings import ServiceSettings

log = get_logger(__name__)


async def delete_handled(engine: AsyncEngine, schema: str, *, older_than: timedelta) -> int:
    """Delete the inbox claims of events handled more than ``older_than`` ago."""
    table = inbox_table(schema)
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.delete(table).where(table.c.processed_at < sa.func.now() - sa.literal(older_than, sa.Interval))
        )
    return result.rowcount


async def delete_expired_keys(engine: AsyncEngine, schema: str) -> int:
    """Delete the idempotency keys older than their lifetime."""
    table = idempotency.idempotency_table(schema)
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.delete(table).where(
                table.c.created_at <= sa.func.now() - sa.literal(idempotency.KEY_LIFETIME, sa.Interval)
            )
        )
    return result.rowcount


async def prune(
    engine: AsyncEngine, schema: str, settings: ServiceSettings, *, idempotency_keys: bool
) -> dict[str, int]:
    """Prune the schema's tables once; rows deleted per table."""
    pruned = {
        "outbox": await delete_sent(
            engine, schema, older_than=timedelta(seconds=settings.outbox_retention_seconds)
        ),
        "inbox": await delete_handled(
            engine, schema, older_than=timedelta(seconds=settings.inbox_retention_seconds)
        ),
    }
    if idempotency_keys:
        pruned["idempotency_keys"] = await delete_expired_keys(engine, schema)
    for table, count in pruned.items():
        metrics.ROWS_PRUNED.labels(schema, table).inc(count)
    if any(pruned.values()):
        log.info("pruning.done", schema=schema, **pruned)
    return pruned
