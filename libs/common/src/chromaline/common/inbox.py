"""The inbox: a consumer applies each event at most once, however often the bus delivers it.

Delivery is at least once (redeliveries, a relay publishing again after a crash), so a handler
claims the event id in the same transaction as its state change::

    async with sessions.begin() as session:
        if not await inbox.claim(session, envelope.event_id, "detector"):
            return
        ...  # the state change, and add_to_outbox(...) for the events it causes

A concurrent second delivery waits on the first one's row lock and then finds the claim taken;
if the first transaction rolls back, the claim goes with it and the event is applied later.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chromaline.common.bus.base import Handler
from chromaline.common.events.envelope import RawEnvelope

_log = structlog.get_logger(__name__)

SessionHandler = Callable[[AsyncSession, RawEnvelope], Awaitable[None]]
"""A handler that makes its state change through the session it is given and never commits."""


@functools.cache
def inbox_table(schema: str | None) -> sa.Table:
    """The inbox table of ``schema``; ``None`` leaves it to the connection's ``search_path``."""
    return sa.Table(
        "inbox",
        sa.MetaData(schema=schema),
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


async def claim(
    session: AsyncSession, event_id: uuid.UUID, consumer: str, *, schema: str | None = None
) -> bool:
    """Record that ``consumer`` handles ``event_id``; False when it already did (skip the event)."""
    table = inbox_table(schema)
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing(index_elements=[table.c.consumer, table.c.event_id])
        .returning(table.c.event_id)
    )
    return result.first() is not None


def idempotent_handler(
    sessions: async_sessionmaker[AsyncSession],
    consumer: str,
    handle: SessionHandler,
    *,
    schema: str | None = None,
) -> Handler:
    """A bus handler running ``handle`` in one transaction with the claim, once per event id."""

    async def handler(envelope: RawEnvelope) -> None:
        async with sessions.begin() as session:
            if not await claim(session, envelope.event_id, consumer, schema=schema):
                _log.info("inbox.duplicate_skipped", consumer=consumer, event_id=str(envelope.event_id))
                return
            await handle(session, envelope)

    return handler
