"""Each service's Alembic migrations, run from code, with the version table in the service's schema.

A service keeps ``migrations/env.py`` and ``migrations/versions/`` next to its code, and no
``alembic.ini``. Its ``env.py`` is three lines::

    from chromaline.common.db.migrations import run_migrations_in_env

    run_migrations_in_env()

and it migrates at start-up with ``await upgrade(settings.database_url, "detector", MIGRATIONS_DIR)``.
Replicas starting together are serialised by an advisory lock per schema. Alembic keeps its
migration context in module globals, so within one process migrations run one at a time too.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import SchemaItem

from chromaline.common.db.engine import check_schema_name, create_engine_for
from chromaline.common.db.locks import hold_transaction_lock

_CONNECTION_KEY = "chromaline.connection"
_SCHEMA_KEY = "chromaline.schema"

_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def alembic_config(script_location: str | Path, schema: str) -> Config:
    """An in-memory Alembic configuration for the migrations in ``script_location``."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes[_SCHEMA_KEY] = check_schema_name(schema)
    return config


async def upgrade(url: str, schema: str, script_location: str | Path, revision: str = "head") -> None:
    """Apply the migrations in ``script_location`` to ``schema`` up to ``revision``."""
    await _run_locked(url, schema, script_location, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, schema: str, script_location: str | Path, revision: str = "base") -> None:
    """Revert the migrations of ``schema`` down to ``revision`` (everything by default)."""
    await _run_locked(url, schema, script_location, lambda config: command.downgrade(config, revision))


async def _run_locked(
    url: str, schema: str, script_location: str | Path, action: Callable[[Config], None]
) -> None:
    config = alembic_config(script_location, schema)
    process_lock = _process_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    engine = await create_engine_for(url, schema=schema, poolclass=NullPool)
    try:
        async with process_lock, engine.connect() as connection, connection.begin():
            await hold_transaction_lock(connection, f"chromaline.migrations.{schema}")
            await connection.run_sync(_run_with_connection, config, action)
    finally:
        await engine.dispose()


def _run_with_connection(connection: Connection, config: Config, action: Callable[[Config], None]) -> None:
    config.attributes[_CONNECTION_KEY] = connection
    action(config)


def run_migrations_in_env(target_metadata: sa.MetaData | None = None) -> None:
    """The body of a service's ``migrations/env.py``; ``target_metadata`` serves autogenerate."""
    connection = context.config.attributes.get(_CONNECTION_KEY)
    if connection is None:
        raise RuntimeError("run these migrations with chromaline.common.db.migrations.upgrade()/downgrade()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=context.config.attributes[_SCHEMA_KEY],
    )
    with context.begin_transaction():
        context.run_migrations()


def migration_schema() -> str:
    """The schema being migrated, for a revision's ``upgrade()``/``downgrade()``."""
    schema: str = context.config.attributes[_SCHEMA_KEY]
    return schema


class SchemaOperations(Protocol):
    """The part of ``alembic.op`` the outbox and inbox migrations use."""

    def create_table(self, table_name: str, *columns: SchemaItem, **kw: Any) -> sa.Table: ...

    def create_index(
        self,
        index_name: str | None,
        table_name: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> None: ...

    def drop_table(self, table_name: str, *, schema: str | None = None, **kw: Any) -> None: ...


def create_outbox_and_inbox(op: SchemaOperations, schema: str) -> None:
    """Create the outbox and inbox tables, for a service's first migration.

    These are the tables as of their first version, spelt out here rather than taken from
    :mod:`chromaline.common.outbox`, so that an applied migration never changes after the fact;
    a later change to either table comes with a new function of its own.
    """
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_unsent", "outbox", ["id"], schema=schema, postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )


def drop_outbox_and_inbox(op: SchemaOperations, schema: str) -> None:
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox", schema=schema)


def create_idempotency_keys(op: SchemaOperations, schema: str) -> None:
    """Create the table of remembered ``Idempotency-Key`` responses (:mod:`chromaline.common.idempotency`)."""
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("redacted", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], schema=schema)
