"""Pruning on the gateway's schema: published outbox rows past their retention, inbox claims past
the redelivery window and idempotency keys past 24 hours go; everything else stays, counted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from chromaline.common import pruning
from chromaline.common.idempotency import idempotency_table
from chromaline.common.inbox import inbox_table
from chromaline.common.outbox import outbox_table
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://pruning-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        outbox_retention_seconds=2 * 86400,
        inbox_retention_seconds=3 * 86400,
        prune_interval_seconds=0,
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


def _pruned(table: str) -> float:
    return (
        REGISTRY.get_sample_value("chromaline_rows_pruned_total", {"service": "gateway", "table": table})
        or 0.0
    )


async def test_old_rows_are_pruned_and_counted_and_the_rest_kept(runtime: ServiceRuntime) -> None:
    outbox, inbox, keys = outbox_table("gateway"), inbox_table("gateway"), idempotency_table("gateway")
    async with runtime.database.engine.begin() as connection:
        for name, sent_at in (("old-sent", NOW - 3 * DAY), ("recent-sent", NOW - DAY), ("unsent", None)):
            await connection.execute(
                sa.insert(outbox).values(
                    event_id=uuid.uuid4(),
                    routing_key=name,
                    payload={},
                    created_at=NOW - 5 * DAY,
                    sent_at=sent_at,
                )
            )
        for consumer, handled in (("old", NOW - 4 * DAY), ("recent", NOW - 2 * DAY)):
            await connection.execute(
                sa.insert(inbox).values(consumer=consumer, event_id=uuid.uuid4(), processed_at=handled)
            )
        for key, created in (
            ("old", NOW - DAY - timedelta(minutes=1)),
            ("recent", NOW - timedelta(hours=23)),
        ):
            await connection.execute(
                sa.insert(keys).values(
                    scope="org",
                    key=key,
                    fingerprint="f",
                    status=202,
                    body={},
                    redacted=[],
                    created_at=created,
                )
            )
    before = {table: _pruned(table) for table in ("outbox", "inbox", "idempotency_keys")}

    pruned = await pruning.prune(runtime.database.engine, "gateway", runtime.settings, idempotency_keys=True)

    assert pruned == {"outbox": 1, "inbox": 1, "idempotency_keys": 1}
    assert {table: _pruned(table) - before[table] for table in before} == pruned
    async with runtime.database.engine.connect() as connection:
        assert set(await connection.scalars(sa.select(outbox.c.routing_key))) == {"recent-sent", "unsent"}
        assert set(await connection.scalars(sa.select(inbox.c.consumer))) == {"recent"}
        assert set(await connection.scalars(sa.select(keys.c.key))) == {"recent"}
