"""The transactional outbox: events are written with the state change, and published after commit.

A handler adds its events with :func:`add_to_outbox` inside its own transaction, so an event
exists if and only if the change that caused it was committed. An :class:`OutboxRelay` then
publishes the unsent rows in id order and marks them sent only once the broker confirmed them.

Delivery is at least once: a relay stopped between a broker's confirm and its own commit
publishes the same event (same ``event_id``) again on its next run, and consumers dedupe
through the inbox. Replicas may each run a relay: rows are taken with ``FOR UPDATE SKIP LOCKED``,
so two relays never publish the same row at the same time.

Each event is published in a ``publish <type>`` span that continues the trace of the work that
made it; after each batch the relay measures the backlog (rows not yet published, and the age of
the oldest) for ``/metrics``. The schema's name is the service label of its metrics and spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from chromaline.common import metrics, tracing
from chromaline.common.backoff import backoff_delay
from chromaline.common.events.envelope import RawEnvelope

_log = structlog.get_logger(__name__)

NOTIFY_CHANNEL_PREFIX = "chromaline_outbox_"


@functools.cache
def outbox_table(schema: str | None) -> sa.Table:
    """The outbox table of ``schema``; ``None`` leaves it to the connection's ``search_path``."""
    return sa.Table(
        "outbox",
        sa.MetaData(schema=schema),
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that announces new outbox rows of ``schema``."""
    return NOTIFY_CHANNEL_PREFIX + schema


async def add_to_outbox(session: AsyncSession, envelope: RawEnvelope, *, schema: str | None = None) -> None:
    """Record ``envelope`` for publishing, in the caller's transaction (the caller commits).

    ``schema`` defaults to the session's own schema (the first of its ``search_path``). The relay
    is notified at commit; a rolled-back transaction leaves neither row nor notification.
    """
    table = outbox_table(schema)
    await session.execute(
        sa.insert(table).values(
            event_id=envelope.event_id,
            routing_key=envelope.type,
            payload=envelope.model_dump(mode="json"),
        )
    )
    channel: sa.ColumnElement[str] = (
        sa.literal(notify_channel(schema))
        if schema is not None
        else sa.literal(NOTIFY_CHANNEL_PREFIX) + sa.func.current_schema()
    )
    await session.execute(sa.select(sa.func.pg_notify(channel, "")))


async def delete_sent(engine: AsyncEngine, schema: str, *, older_than: timedelta) -> int:
    """Delete the rows published more than ``older_than`` ago (the outbox otherwise only grows)."""
    table = outbox_table(schema)
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.delete(table).where(table.c.sent_at < sa.func.now() - sa.literal(older_than, sa.Interval))
        )
    return result.rowcount


class OutboxPublishError(Exception):
    """A batch stopped at an event the bus did not confirm; that event stays unsent."""


@dataclass(frozen=True)
class OutboxBacklog:
    """The rows of an outbox not yet published."""

    count: int
    oldest_age_seconds: float
    """0 when there are none."""


class EventPublisher(Protocol):
    """What the relay needs of an :class:`~chromaline.common.bus.base.EventBus`."""

    # The keyword mirrors EventBus.publish, whose confirm wait it bounds.
    async def publish(self, envelope: RawEnvelope, *, timeout: float = ...) -> None: ...  # noqa: ASYNC109


class _Listener(Protocol):
    """The part of an asyncpg connection used to LISTEN."""

    async def add_listener(self, channel: str, callback: Any) -> None: ...

    async def remove_listener(self, channel: str, callback: Any) -> None: ...

    def is_closed(self) -> bool: ...


class OutboxRelay:
    """Publishes one schema's outbox rows through the event bus, forever until stopped.

    Woken at once by NOTIFY when a row is committed, and every ``poll_interval`` seconds anyway
    (a missed notification, or a listening connection that was lost, only costs latency). After a
    failure it backs off from ``retry_initial`` doubling up to ``retry_max`` seconds.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventPublisher,
        schema: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 5.0,
        publish_timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._engine = engine
        self._bus = bus
        self._schema = schema
        self._table = outbox_table(schema)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._wakeup = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._listen_connection: AsyncConnection | None = None
        self._listener: _Listener | None = None

    async def run(self) -> None:
        """Relay until :meth:`stop`; the batch in hand is finished and committed first."""
        failures = 0
        _log.info("outbox.relay_started", schema=self._schema)
        try:
            while not self._stop_requested.is_set():
                await self._ensure_listening()
                self._wakeup.clear()
                try:
                    published = await self.relay_once()
                except Exception as exc:
                    failures += 1
                    delay = backoff_delay(failures, initial=self._retry_initial, maximum=self._retry_max)
                    _log.warning("outbox.relay_failed", schema=self._schema, error=str(exc), retry_in=delay)
                    await self._measure_backlog()
                    await self._wait(self._stop_requested, delay)
                    continue
                failures = 0
                await self._measure_backlog()
                if published < self._batch_size:
                    await self._wait(self._wakeup, self._poll_interval)
        finally:
            await self._stop_listening()
            _log.info("outbox.relay_stopped", schema=self._schema)

    def stop(self) -> None:
        """Ask :meth:`run` to return once the batch in hand is done."""
        self._stop_requested.set()
        self._wakeup.set()

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows in id order; return how many were published.

        Rows confirmed by the bus are marked sent in the same transaction that locked them. The
        batch stops at the first event the bus refuses, so later events do not overtake it; that
        row's attempt is recorded and :class:`OutboxPublishError` raised after the commit.
        """
        table = self._table
        sent_ids: list[int] = []
        failure: Exception | None = None
        async with self._engine.begin() as connection:
            rows = (
                await connection.execute(
                    sa.select(table.c.id, table.c.routing_key, table.c.payload)
                    .where(table.c.sent_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row_id, routing_key, payload in rows:
                try:
                    envelope = RawEnvelope.model_validate(payload)
                    with tracing.publishing(self._schema, envelope) as traced:
                        await self._bus.publish(traced, timeout=self._publish_timeout)
                except Exception as exc:
                    metrics.OUTBOX_PUBLISH_FAILURES.labels(self._schema, routing_key).inc()
                    failure = exc
                    await connection.execute(
                        sa.update(table)
                        .where(table.c.id == row_id)
                        .values(attempts=table.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}")
                    )
                    break
                sent_ids.append(row_id)
                metrics.EVENTS_PUBLISHED.labels(self._schema, routing_key).inc()
            if sent_ids:
                await connection.execute(
                    sa.update(table).where(table.c.id.in_(sent_ids)).values(sent_at=sa.func.now())
                )
        if sent_ids:
            _log.debug("outbox.published", schema=self._schema, count=len(sent_ids))
        if failure is not None:
            raise OutboxPublishError(
                f"publish failed after {len(sent_ids)} of {len(rows)} events: {failure}"
            ) from failure
        return len(sent_ids)

    async def backlog(self) -> OutboxBacklog:
        """Count the rows not yet published and publish the figures as the outbox gauges."""
        table = self._table
        async with self._engine.connect() as connection:
            count, oldest = (
                await connection.execute(
                    sa.select(sa.func.count(), sa.func.min(table.c.created_at)).where(
                        table.c.sent_at.is_(None)
                    )
                )
            ).one()
        age = 0.0 if oldest is None else max((datetime.now(UTC) - oldest).total_seconds(), 0.0)
        metrics.OUTBOX_BACKLOG.labels(self._schema).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(self._schema).set(age)
        return OutboxBacklog(count=count, oldest_age_seconds=age)

    async def _measure_backlog(self) -> None:
        try:
            await self.backlog()
        except Exception as exc:
            _log.warning("outbox.backlog_unmeasured", schema=self._schema, error=str(exc))

    async def _ensure_listening(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._stop_listening()
        connection: AsyncConnection | None = None
        try:
            connection = await self._engine.connect()
            raw = await connection.get_raw_connection()
            listener = cast(_Listener, raw.driver_connection)
            await listener.add_listener(notify_channel(self._schema), self._on_notify)
        except Exception as exc:
            _log.warning("outbox.listen_failed", schema=self._schema, error=str(exc))
            if connection is not None:
                await connection.invalidate()
                await connection.close()
            return
        self._listen_connection = connection
        self._listener = listener

    async def _stop_listening(self) -> None:
        connection, listener = self._listen_connection, self._listener
        self._listen_connection = self._listener = None
        if connection is None or listener is None:
            return
        try:
            if listener.is_closed():
                raise ConnectionError("listening connection lost")
            await listener.remove_listener(notify_channel(self._schema), self._on_notify)
        except Exception:
            await connection.invalidate()
        await connection.close()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
