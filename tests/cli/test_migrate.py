"""``chromaline migrate <service>`` and ``migrate_on_start``, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from chromaline.cli.main import app
from chromaline.cli.services import SERVICES
from chromaline.common.db.migrations import alembic_config
from chromaline.common.runtime import ServiceRuntime

pytestmark = pytest.mark.integration
runner = CliRunner()


def code_head(service: str) -> str:
    spec = SERVICES[service].spec
    [head] = ScriptDirectory.from_config(alembic_config(spec.migrations, spec.name)).get_heads()
    return head


async def schema_tables(database_url: str, schema: str) -> set[str]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": schema},
            )
            return {row.table_name for row in rows}
    finally:
        await engine.dispose()


async def recorded_revision(database_url: str, schema: str) -> str:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            revision: str = await connection.scalar(
                sa.text(f"SELECT version_num FROM {schema}.alembic_version")
            )
            return revision
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", list(SERVICES))
def test_migrate_brings_the_schema_to_the_code_revision_once(service: str, service_database_url: str) -> None:
    env = {"CHROMALINE_DATABASE_URL": service_database_url}

    before = runner.invoke(app, ["migrate", service, "--check"], env=env)
    assert before.exit_code == 1, before.output
    assert "no revision" in before.output
    assert asyncio.run(schema_tables(service_database_url, service)) == set()

    first = runner.invoke(app, ["migrate", service], env=env)
    again = runner.invoke(app, ["migrate", service], env=env)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert asyncio.run(recorded_revision(service_database_url, service)) == code_head(service)
    tables = asyncio.run(schema_tables(service_database_url, service))
    assert {"alembic_version", "outbox", "inbox"} <= tables
    after = runner.invoke(app, ["migrate", service, "--check"], env=env)
    assert after.exit_code == 0, after.output
    assert code_head(service) in after.output


def test_migrate_refuses_an_unknown_service() -> None:
    result = runner.invoke(app, ["migrate", "billing"])

    assert result.exit_code == 2
    assert "unknown service 'billing'" in result.output


def test_migrate_says_when_the_database_does_not_answer() -> None:
    env = {"CHROMALINE_DATABASE_URL": "postgresql+asyncpg://chromaline:s3cret-9d1f@127.0.0.1:1/chromaline"}

    result = runner.invoke(app, ["migrate", "auth"], env=env)

    assert result.exit_code == 1
    assert "auth: the database did not answer" in result.output
    assert "s3cret-9d1f" not in result.output


def test_migrate_on_start_is_read_shared_and_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SERVICES["detector"].load_settings().migrate_on_start is True
    monkeypatch.setenv("CHROMALINE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("CHROMALINE_CORRECTOR_MIGRATE_ON_START", "true")

    assert SERVICES["detector"].load_settings().migrate_on_start is False
    assert SERVICES["corrector"].load_settings().migrate_on_start is True


async def test_a_runtime_with_migrate_on_start_off_leaves_the_schema_to_the_migration(
    service_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMALINE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("CHROMALINE_DATABASE_URL", service_database_url)
    monkeypatch.setenv("CHROMALINE_BUS_URL", f"memory://{uuid.uuid4().hex}")
    monkeypatch.setenv("CHROMALINE_BLOB_URL", f"file://{tmp_path / 'blobs'}")
    entry = SERVICES["reporter"]
    runtime = ServiceRuntime(entry.spec, entry.load_settings())

    await runtime.start(consume=False)
    try:
        assert "alembic_version" not in await schema_tables(service_database_url, "reporter")
    finally:
        await runtime.stop()


def test_a_service_package_migrates_its_own_schema_without_the_chromaline_command(
    service_database_url: str,
) -> None:
    command = shutil.which("chromaline-reporter")
    assert command is not None, "the reporter package installs its own entry point"
    env = {**os.environ, "CHROMALINE_DATABASE_URL": service_database_url}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command, *arguments], env=env, capture_output=True, text=True, timeout=120)

    before = run("migrate", "--check")
    upgraded = run("migrate")
    after = run("migrate", "--check")

    assert before.returncode == 1, before.stderr
    assert "no revision" in before.stderr
    assert upgraded.returncode == 0, upgraded.stderr
    assert after.returncode == 0, after.stderr
    assert code_head("reporter") in after.stdout
