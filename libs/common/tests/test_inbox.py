import asyncio
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chromaline.common import inbox
from chromaline.common.db.migrations import upgrade
from chromaline.common.events.envelope import RawEnvelope

pytestmark = pytest.mark.integration

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"


@pytest.fixture
async def migrated(postgres_url: str, db_schema: str) -> str:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)
    return db_schema


async def _claim(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID, consumer: str) -> bool:
    async with sessions.begin() as session:
        return await inbox.claim(session, event_id, consumer)


async def test_an_event_is_claimed_once_per_consumer(
    db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    event_id = uuid.uuid4()

    assert await _claim(db_sessions, event_id, "detector")
    assert not await _claim(db_sessions, event_id, "detector")
    assert await _claim(db_sessions, event_id, "reporter")
    assert await _claim(db_sessions, uuid.uuid4(), "detector")


async def test_a_claim_rolled_back_with_its_transaction_can_be_made_again(
    db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    event_id = uuid.uuid4()
    async with db_sessions() as session:
        assert await inbox.claim(session, event_id, "detector", schema=migrated)
        await session.rollback()

    assert await _claim(db_sessions, event_id, "detector")


async def test_a_concurrent_second_claim_waits_for_the_first_and_then_loses(
    db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    event_id = uuid.uuid4()
    async with db_sessions() as first:
        assert await inbox.claim(first, event_id, "detector")
        second = asyncio.create_task(_claim(db_sessions, event_id, "detector"))
        await asyncio.sleep(0.3)
        assert not second.done()
        await first.commit()

    assert await asyncio.wait_for(second, 5) is False


async def test_an_idempotent_handler_applies_each_event_once_and_rolls_back_with_a_failure(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession], migrated: str
) -> None:
    failures = [RuntimeError("transient")]

    async def record(session: AsyncSession, envelope: RawEnvelope) -> None:
        await session.execute(
            sa.text("INSERT INTO counters (name, value) VALUES (:name, 1)"), {"name": envelope.subject}
        )
        if failures:
            raise failures.pop()

    handler = inbox.idempotent_handler(db_sessions, "reporter", record, schema=migrated)
    event = RawEnvelope(
        type="image.corrected",
        schema_version=1,
        producer="corrector",
        subject="job-3",
        correlation_id="c",
        data={},
    )

    with pytest.raises(RuntimeError, match="transient"):
        await handler(event)
    await handler(event)
    await handler(event)

    async with db_engine.connect() as connection:
        rows = (await connection.execute(sa.text("SELECT name, value FROM counters"))).all()
        claims = await connection.scalar(sa.text("SELECT count(*) FROM inbox"))
    assert [tuple(row) for row in rows] == [("job-3", 1)]
    assert claims == 1
