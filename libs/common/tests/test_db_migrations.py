import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from chromaline.common.db.migrations import alembic_config, downgrade, upgrade
from chromaline.common.inbox import inbox_table
from chromaline.common.outbox import outbox_table

pytestmark = pytest.mark.integration

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"


async def _tables(engine: AsyncEngine, schema: str) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names(schema=schema))
    return set(names)


async def _versions(engine: AsyncEngine, schema: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text(f"SELECT version_num FROM {schema}.alembic_version"))
        return [version for (version,) in rows]


async def _nullable_columns(engine: AsyncEngine, schema: str, table_name: str) -> dict[str, bool]:
    def inspect(connection: sa.Connection) -> dict[str, bool]:
        columns = sa.inspect(connection).get_columns(table_name, schema=schema)
        return {column["name"]: column["nullable"] for column in columns}

    async with engine.connect() as connection:
        return await connection.run_sync(inspect)


async def test_upgrade_creates_the_tables_and_the_version_table_in_the_schema(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)

    assert await _tables(db_engine, db_schema) == {"alembic_version", "outbox", "inbox", "counters"}
    assert await _versions(db_engine, db_schema) == ["0002"]


async def test_downgrade_removes_the_tables_step_by_step(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)

    await downgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS, "0001")
    assert await _tables(db_engine, db_schema) == {"alembic_version", "outbox", "inbox"}
    assert await _versions(db_engine, db_schema) == ["0001"]

    await downgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS)
    assert await _tables(db_engine, db_schema) == {"alembic_version"}
    assert await _versions(db_engine, db_schema) == []


async def test_replicas_upgrading_at_once_apply_each_migration_once(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    await asyncio.gather(*(upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS) for _ in range(3)))

    assert await _versions(db_engine, db_schema) == ["0002"]


async def test_an_upgrade_waits_for_another_replica_migrating_the_schema(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    async with db_engine.connect() as other_replica, other_replica.begin():
        await other_replica.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"chromaline.migrations.{db_schema}"},
        )
        waiting = asyncio.create_task(upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        assert await _tables(db_engine, db_schema) == set()
    await asyncio.wait_for(waiting, 10)
    assert await _versions(db_engine, db_schema) == ["0002"]


async def test_migrated_outbox_and_inbox_match_their_table_definitions(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    await upgrade(postgres_url, db_schema, EXAMPLE_MIGRATIONS, "0001")

    for table in (outbox_table(db_schema), inbox_table(db_schema)):
        defined = {column.name: column.nullable for column in table.columns}
        assert await _nullable_columns(db_engine, db_schema, table.name) == defined, table.name


def test_migrations_refuse_to_run_without_a_connection_from_upgrade(db_schema: str) -> None:
    with pytest.raises(RuntimeError, match="upgrade"):
        command.upgrade(alembic_config(EXAMPLE_MIGRATIONS, db_schema), "head")
