"""Engines and sessions bound to one service's own schema, chosen by URL.

``postgresql+asyncpg://...`` is used as given; ``embedded://<dir>`` first starts (or joins) the
embedded server on ``<dir>``. Every connection's ``search_path`` is the service's schema, so a
service's unqualified tables live there and never meet another service's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from chromaline.common.db.embedded import EMBEDDED_SCHEME, data_dir_from_url, start_embedded_postgres
from chromaline.common.db.locks import hold_transaction_lock

ASYNCPG_SCHEME = "postgresql+asyncpg://"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(schema: str) -> str:
    """Schema names are plain lower-case identifiers, so they never need quoting anywhere."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower-case letters, digits and _")
    return schema


async def resolve_database_url(url: str) -> str:
    """The ``postgresql+asyncpg://`` URL behind ``url``, starting the embedded server if asked."""
    if url.startswith(ASYNCPG_SCHEME):
        return url
    if url.startswith(EMBEDDED_SCHEME):
        return await start_embedded_postgres(data_dir_from_url(url))
    raise ValueError(f"unsupported database URL {url!r}: use postgresql+asyncpg:// or embedded://<dir>")


async def create_engine_for(url: str, *, schema: str, **engine_options: Any) -> AsyncEngine:
    """An engine whose connections see ``schema`` first; the schema is created if missing."""
    check_schema_name(schema)
    engine = create_async_engine(
        await resolve_database_url(url),
        connect_args={"server_settings": {"search_path": schema}},
        **engine_options,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    try:
        async with engine.begin() as connection:
            # Serialised, as two replicas creating the schema at once would collide in the catalog.
            await hold_transaction_lock(connection, f"chromaline.schema.{schema}")
            await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no pooled connection the server has closed (a restart, an idle timeout): the pool
    drops it and checks out another.

    This replaces SQLAlchemy's ``pool_pre_ping``, which sends three statements (begin, ping,
    rollback) to the server before every session: as many round trips as a job-status request's
    own begin, query and commit. A server that goes away closes its sockets, and the driver
    notices at once.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no implicit reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """A service's engine and session factory, opened from its settings' ``database_url``."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    schema: str

    @classmethod
    async def open(cls, url: str, *, schema: str) -> Database:
        engine = await create_engine_for(url, schema=schema)
        return cls(engine=engine, sessions=session_factory(engine), schema=schema)

    async def ping(self) -> bool:
        """True when the database answers a query (readiness)."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
