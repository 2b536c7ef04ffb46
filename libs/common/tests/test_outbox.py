import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chromaline.common import tracing
from chromaline.common.bus.base import PublishError
from chromaline.common.db.migrations import upgrade
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.inbox import idempotent_handler
from chromaline.common.outbox import OutboxPublishError, OutboxRelay, add_to_outbox, delete_sent, outbox_table
from chromaline.common.testing.spans import span_recorder, spans_named

pytestmark = pytest.mark.integration

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"


class RecordingBus:
    """Confirms every publish, optionally after refusing the first ``refusals`` of them."""

    def __init__(self, *, refusals: int = 0, publish_delay: float = 0.0) -> None:
        self.published: list[RawEnvelope] = []
        self._refusals = refusals
        self._publish_delay = publish_delay
        self._confirmed = asyncio.Event()

    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await asyncio.sleep(self._publish_delay)
        if self._refusals > 0:
            self._refusals -= 1
            raise PublishError("nacked by the broker")
        self.published.append(envelope)
        self._confirmed.set()

    async def wait_for_published(self, count: int, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while len(self.published) < count:
                self._confirmed.clear()
                await self._confirmed.wait()

    @property
    def event_ids(self) -> list[uuid.UUID]:
        return [envelope.event_id for envelope in self.published]


class StallingAfterPublishBus:
    """The broker confirms, then the relay never gets to mark the row (it is killed meanwhile)."""

    def __init__(self) -> None:
        self.published: list[RawEnvelope] = []
        self.confirmed = asyncio.Event()

    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        self.published.append(envelope)
        self.confirmed.set()
        await asyncio.Event().wait()


def _envelope(subject: str = "job-1") -> RawEnvelope:
    return RawEnvelope(
        type="image.uploaded",
        schema_version=1,
        producer="gateway",
        subject=subject,
        correlation_id="corr-1",
        data={"subject": subject},
    )


def _as_stored(published: RawEnvelope) -> RawEnvelope:
    """A published envelope without the trace context of the relay's publish span."""
    return published.model_copy(update={"trace_context": {}})


@pytest.fixture
async def migrated(postgres_url: str, db_schema: str) -> str:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)
    return db_schema


async def _add(sessions: async_sessionmaker[AsyncSession], schema: str, *envelopes: RawEnvelope) -> None:
    async with sessions.begin() as session:
        for envelope in envelopes:
            await add_to_outbox(session, envelope, schema=schema)


async def _unsent(engine: AsyncEngine, schema: str) -> Sequence[sa.Row[Any, Any, Any]]:
    table = outbox_table(schema)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(table.c.event_id, table.c.attempts, table.c.last_error)
            .where(table.c.sent_at.is_(None))
            .order_by(table.c.id)
        )
        return rows.all()


async def test_rows_of_a_rolled_back_transaction_are_never_published(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    async with db_sessions() as session:
        await add_to_outbox(session, _envelope(), schema=migrated)
        await session.rollback()
    bus = RecordingBus()

    assert await OutboxRelay(db_engine, bus, migrated).relay_once() == 0
    assert bus.published == []
    assert await _unsent(db_engine, migrated) == []


async def test_committed_rows_are_published_in_order_once_each(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    envelopes = [_envelope(f"job-{number}") for number in range(5)]
    await _add(db_sessions, migrated, *envelopes)
    bus = RecordingBus()
    relay = OutboxRelay(db_engine, bus, migrated, batch_size=2)

    assert [await relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [_as_stored(envelope) for envelope in bus.published] == envelopes
    assert await _unsent(db_engine, migrated) == []


async def test_a_running_relay_is_woken_by_a_commit_and_stops_when_asked(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(db_engine, bus, migrated, poll_interval=60)
    running = asyncio.create_task(relay.run())
    first, second = _envelope("job-1"), _envelope("job-2")
    await _add(db_sessions, migrated, first)
    await bus.wait_for_published(1)

    async with db_sessions.begin() as session:
        await add_to_outbox(session, second)
    await bus.wait_for_published(2)

    relay.stop()
    await asyncio.wait_for(running, 5)
    assert bus.event_ids == [first.event_id, second.event_id]


async def test_a_refused_event_stays_unsent_and_blocks_the_events_after_it(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    envelopes = [_envelope(f"job-{number}") for number in range(3)]
    await _add(db_sessions, migrated, *envelopes)

    with pytest.raises(OutboxPublishError):
        await OutboxRelay(db_engine, RecordingBus(refusals=1), migrated).relay_once()

    unsent = await _unsent(db_engine, migrated)
    assert [row.event_id for row in unsent] == [envelope.event_id for envelope in envelopes]
    assert unsent[0].attempts == 1
    assert unsent[0].last_error == "PublishError: nacked by the broker"
    assert [row.attempts for row in unsent[1:]] == [0, 0]


async def test_a_running_relay_retries_refused_events_until_the_bus_confirms(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    envelopes = [_envelope(f"job-{number}") for number in range(3)]
    await _add(db_sessions, migrated, *envelopes)
    bus = RecordingBus(refusals=3)
    relay = OutboxRelay(db_engine, bus, migrated, poll_interval=60, retry_initial=0.01, retry_max=0.05)
    running = asyncio.create_task(relay.run())

    await bus.wait_for_published(3)
    relay.stop()
    await asyncio.wait_for(running, 5)
    assert [_as_stored(envelope) for envelope in bus.published] == envelopes
    assert await _unsent(db_engine, migrated) == []


async def _count_once(session: AsyncSession, envelope: RawEnvelope) -> None:
    counters = sa.table("counters", sa.column("name"), sa.column("value"))
    statement = insert(counters).values(name=envelope.subject, value=1)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})
    )


async def test_a_relay_killed_between_confirm_and_mark_republishes_and_the_inbox_applies_once(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    event = _envelope("job-7")
    await _add(db_sessions, migrated, event)
    stalling = StallingAfterPublishBus()
    killed = asyncio.create_task(OutboxRelay(db_engine, stalling, migrated).run())
    await asyncio.wait_for(stalling.confirmed.wait(), 5)
    killed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killed
    assert [row.event_id for row in await _unsent(db_engine, migrated)] == [event.event_id]

    bus = RecordingBus()
    assert await OutboxRelay(db_engine, bus, migrated).relay_once() == 1
    deliveries = stalling.published + bus.published
    assert [delivered.event_id for delivered in deliveries] == [event.event_id, event.event_id]

    consume = idempotent_handler(db_sessions, "counter", _count_once, schema=migrated)
    for delivered in deliveries:
        await consume(delivered)
    async with db_engine.connect() as connection:
        applied = await connection.scalar(sa.text("SELECT value FROM counters WHERE name = 'job-7'"))
    assert applied == 1


async def test_two_relays_on_one_outbox_publish_each_row_once(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    envelopes = [_envelope(f"job-{number}") for number in range(120)]
    await _add(db_sessions, migrated, *envelopes)
    buses = [RecordingBus(publish_delay=0.002), RecordingBus(publish_delay=0.002)]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(OutboxRelay(db_engine, bus, migrated, batch_size=10)) for bus in buses))

    published = Counter(event_id for bus in buses for event_id in bus.event_ids)
    assert published == Counter(envelope.event_id for envelope in envelopes)
    assert all(bus.published for bus in buses)
    assert await _unsent(db_engine, migrated) == []


async def test_published_rows_are_deleted_once_old_enough_and_unsent_ones_never(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    old, recent, unsent = _envelope("job-old"), _envelope("job-recent"), _envelope("job-unsent")
    await _add(db_sessions, migrated, old, recent)
    await OutboxRelay(db_engine, RecordingBus(), migrated).relay_once()
    await _add(db_sessions, migrated, unsent)
    table = outbox_table(migrated)
    async with db_engine.begin() as connection:
        await connection.execute(
            sa.update(table)
            .where(table.c.event_id == old.event_id)
            .values(sent_at=sa.func.now() - sa.text("interval '2 days'"))
        )

    assert await delete_sent(db_engine, migrated, older_than=timedelta(days=1)) == 1

    async with db_engine.connect() as connection:
        remaining = set(await connection.scalars(sa.select(table.c.event_id)))
    assert remaining == {recent.event_id, unsent.event_id}


async def test_each_event_is_published_in_a_span_continuing_the_work_that_made_it(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    recorder = span_recorder()
    recorder.clear()
    with tracing.tracer("gateway").start_as_current_span("upload") as upload:
        made = _envelope().model_copy(update={"trace_context": tracing.current_trace_context()})
    await _add(db_sessions, migrated, made)
    bus = RecordingBus()

    await OutboxRelay(db_engine, bus, migrated).relay_once()

    (publish,) = spans_named(recorder.get_finished_spans(), "publish image.uploaded", migrated)
    assert publish.kind == SpanKind.PRODUCER
    assert publish.context is not None
    assert publish.parent is not None
    assert publish.context.trace_id == upload.get_span_context().trace_id
    assert publish.parent.span_id == upload.get_span_context().span_id
    (sent,) = bus.published
    carried = trace.get_current_span(tracing.context_from(sent.trace_context)).get_span_context()
    assert carried.span_id == publish.context.span_id
