"""The metrics a service exports: event handling on both buses, stages, outbox backlog, DB pool."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chromaline.common import metrics
from chromaline.common.bus.base import EventBus, PermanentError, RetryPolicy
from chromaline.common.bus.memory import MemoryBus
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.db.migrations import upgrade
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.outbox import OutboxRelay, add_to_outbox
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings
from chromaline.common.testing.events import bare_envelope as envelope
from chromaline.common.testing.spans import service_of, span_recorder, spans_named
from chromaline.common.testing.waiting import wait_until

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"
FAST_RETRY = RetryPolicy(max_attempts=2, delays=(0.05,))


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def succeed(runtime: ServiceRuntime, event: RawEnvelope) -> None:
    return None


async def fail(runtime: ServiceRuntime, event: RawEnvelope) -> None:
    raise RuntimeError("the blob store is away")


async def refuse(runtime: ServiceRuntime, event: RawEnvelope) -> None:
    raise PermanentError("not a photo")


class RawPublisher:
    """Puts bytes that are no envelope on the bus, as a broken producer would."""

    def __init__(self, bus: EventBus, amqp_url: str | None) -> None:
        self._bus = bus
        self._amqp_url = amqp_url

    async def __call__(self, routing_key: str, body: bytes) -> None:
        if isinstance(self._bus, MemoryBus):
            await self._bus.publish_raw(routing_key, body)
            return
        assert isinstance(self._bus, RabbitMqBus)
        assert self._amqp_url is not None
        async with await aio_pika.connect(self._amqp_url) as connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(self._bus.exchange)
            await exchange.publish(aio_pika.Message(body), routing_key, mandatory=True)


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.integration)])
async def bus_and_raw(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBus, RawPublisher]]:
    bus: EventBus
    amqp_url: str | None = None
    if request.param == "memory":
        bus = MemoryBus(service="tests", shutdown_grace=5.0)
    else:
        amqp_url = request.getfixturevalue("isolated_amqp_url")
        exchange = f"{request.getfixturevalue('unique_name')}.events"
        bus = RabbitMqBus(amqp_url, service="tests", exchange=exchange, shutdown_grace=5.0)
    await bus.start()
    yield bus, RawPublisher(bus, amqp_url)
    await bus.close()


async def test_each_handling_is_counted_by_outcome_and_dead_letters_by_type(
    bus_and_raw: tuple[EventBus, RawPublisher],
) -> None:
    bus, publish_raw = bus_and_raw
    service = f"svc_{uuid.uuid4().hex[:10]}"
    spec = ServiceSpec(
        name=service,
        migrations=EXAMPLE_MIGRATIONS,
        handlers={"image.uploaded": succeed, "chart.detected": fail, "report.ready": refuse},
        retry=FAST_RETRY,
    )
    runtime = ServiceRuntime(spec, ServiceSettings(), bus=bus)
    await runtime.start_consuming()

    await bus.publish(envelope("image.uploaded", occurred_at=datetime.now(UTC) - timedelta(seconds=90)))
    await bus.publish(envelope("chart.detected"))
    await bus.publish(envelope("report.ready"))
    await publish_raw("image.uploaded", b"not json")

    def consumed(event_type: str, outcome: str) -> float:
        return value("chromaline_events_consumed_total", service=service, type=event_type, outcome=outcome)

    def dead(event_type: str) -> float:
        return value("chromaline_events_dead_lettered_total", service=service, type=event_type)

    await wait_until(lambda: dead("chart.detected") == 1 and dead("report.ready") == 1)
    await wait_until(lambda: dead("image.uploaded") == 1)
    assert consumed("image.uploaded", "success") == 1
    assert consumed("chart.detected", "failed") == FAST_RETRY.max_attempts
    assert consumed("report.ready", "rejected") == 1
    assert consumed("chart.detected", "success") == consumed("report.ready", "success") == 0
    handled = value("chromaline_event_handling_seconds_count", service=service, type="chart.detected")
    assert handled == FAST_RETRY.max_attempts
    lag_labels = {"service": service, "type": "image.uploaded"}
    assert value("chromaline_event_queue_lag_seconds_count", **lag_labels) == 1
    assert value("chromaline_event_queue_lag_seconds_bucket", **lag_labels, le="60.0") == 0
    assert value("chromaline_event_queue_lag_seconds_bucket", **lag_labels, le="120.0") == 1


def test_a_stage_is_timed_and_traced() -> None:
    recorder: InMemorySpanExporter = span_recorder()
    recorder.clear()
    service = f"svc_{uuid.uuid4().hex[:10]}"
    with pytest.raises(ValueError, match="bad pixels"), metrics.stage(service, "decode"):
        raise ValueError("bad pixels")
    with metrics.stage(service, "decode"):
        pass
    metrics.observe_stage_times(service, {"fit": 1500.0})

    assert value("chromaline_stage_seconds_count", service=service, stage="decode") == 2
    assert value("chromaline_stage_seconds_bucket", service=service, stage="fit", le="1.0") == 0
    assert value("chromaline_stage_seconds_bucket", service=service, stage="fit", le="2.5") == 1
    decoded = spans_named(recorder.get_finished_spans(), "decode", service)
    assert len(decoded) == 2
    assert not decoded[0].status.is_ok
    assert {service_of(span) for span in decoded} == {service}


@pytest.mark.integration
async def test_pool_gauges_follow_the_connections_in_use(db_engine: AsyncEngine) -> None:
    service = f"svc_{uuid.uuid4().hex[:10]}"
    metrics.DATABASE_POOLS.watch(service, db_engine)
    try:
        async with db_engine.connect():
            assert value("chromaline_db_pool_checked_out", service=service) == 1
            assert value("chromaline_db_pool_size", service=service) == db_engine.pool.size()
        assert value("chromaline_db_pool_checked_out", service=service) == 0
        connections = [await db_engine.connect() for _ in range(db_engine.pool.size() + 2)]
        try:
            assert value("chromaline_db_pool_overflow", service=service) == 2
        finally:
            for connection in connections:
                await connection.close()
    finally:
        metrics.DATABASE_POOLS.forget(service, db_engine)
    assert REGISTRY.get_sample_value("chromaline_db_pool_size", {"service": service}) is None


class ConfirmingBus:
    def __init__(self) -> None:
        self.published: list[RawEnvelope] = []

    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        self.published.append(envelope)


@pytest.mark.integration
async def test_the_relay_measures_its_backlog_and_counts_what_it_publishes(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], db_schema: str, postgres_url: str
) -> None:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)
    relay = OutboxRelay(db_engine, ConfirmingBus(), db_schema)
    empty = await relay.backlog()
    assert (empty.count, empty.oldest_age_seconds) == (0, 0.0)
    async with db_sessions() as session, session.begin():
        for event_type in ("image.uploaded", "image.uploaded", "chart.detected"):
            await add_to_outbox(session, envelope(event_type), schema=db_schema)

    waiting = await relay.backlog()
    assert waiting.count == 3
    assert waiting.oldest_age_seconds > 0
    assert value("chromaline_outbox_backlog", service=db_schema) == 3
    assert value("chromaline_outbox_oldest_unsent_seconds", service=db_schema) == waiting.oldest_age_seconds

    assert await relay.relay_once() == 3
    assert value("chromaline_events_published_total", service=db_schema, type="image.uploaded") == 2
    assert value("chromaline_events_published_total", service=db_schema, type="chart.detected") == 1
    assert (await relay.backlog()).count == 0
    assert value("chromaline_outbox_backlog", service=db_schema) == 0
    assert value("chromaline_outbox_oldest_unsent_seconds", service=db_schema) == 0


@pytest.mark.integration
async def test_a_running_relay_keeps_the_backlog_gauge_current(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], db_schema: str, postgres_url: str
) -> None:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)
    async with db_sessions() as session, session.begin():
        await add_to_outbox(session, envelope("image.uploaded"), schema=db_schema)
    metrics.OUTBOX_BACKLOG.labels(db_schema).set(-1)
    bus = ConfirmingBus()
    relay = OutboxRelay(db_engine, bus, db_schema, poll_interval=60)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: value("chromaline_outbox_backlog", service=db_schema) == 0)
    finally:
        relay.stop()
        await asyncio.wait_for(running, 5)
    assert len(bus.published) == 1
