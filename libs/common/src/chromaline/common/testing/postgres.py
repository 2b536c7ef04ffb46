"""Pytest fixtures for tests against a real PostgreSQL.

``postgres_url`` finds a server once per test session (see :mod:`chromaline.common.testing.services`
for the order); ``db_schema`` gives each test a schema of its own, dropped afterwards, so tests
never see each other's rows and need no database of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from chromaline.common.db.engine import create_engine_for, session_factory
from chromaline.common.testing.services import docker_engine_answers, missing_service, port_answers

URL_VARIABLE = "CHROMALINE_TEST_DATABASE_URL"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
LOCAL_DATABASE = "test"
LOCAL_ROLES = ("root", "postgres")


async def _local_url() -> str | None:
    """The URL of the local server as the first role it knows, creating the test database if needed."""
    for role in LOCAL_ROLES:
        server = f"postgresql+asyncpg://{role}@{LOCAL_HOST}:{LOCAL_PORT}"
        engine = create_async_engine(f"{server}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                exists = await connection.scalar(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": LOCAL_DATABASE}
                )
                if not exists:
                    await connection.execute(sa.text(f"CREATE DATABASE {LOCAL_DATABASE}"))
        except (OSError, sa.exc.DBAPIError):
            continue
        finally:
            await engine.dispose()
        return f"{server}/{LOCAL_DATABASE}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql+asyncpg://`` URL of a server the tests may create schemas in."""
    explicit = os.environ.get(URL_VARIABLE)
    if explicit:
        yield explicit
        return
    if docker_engine_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
        return
    if not port_answers(LOCAL_HOST, LOCAL_PORT):
        missing_service("PostgreSQL", f"set {URL_VARIABLE}, run Docker, or serve {LOCAL_HOST}:{LOCAL_PORT}")
    url = asyncio.run(_local_url())
    if url is None:
        missing_service("PostgreSQL", f"no role among {', '.join(LOCAL_ROLES)} may connect to {LOCAL_HOST}")
    yield url


@pytest.fixture
async def db_schema(postgres_url: str) -> AsyncIterator[str]:
    """A unique schema name for one test; the schema is dropped with everything in it afterwards."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield schema
    engine = create_async_engine(postgres_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
async def db_engine(postgres_url: str, db_schema: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose connections work in ``db_schema`` (created)."""
    engine = await create_engine_for(postgres_url, schema=db_schema)
    yield engine
    await engine.dispose()


@pytest.fixture
def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(db_engine)


async def _execute_autocommit(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A database of its own, dropped afterwards, for whole services (their schema names are fixed)."""
    name = f"chromaline_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute_autocommit(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute_autocommit(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def service_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database for one test that runs whole services."""
    with fresh_database(postgres_url) as url:
        yield url
