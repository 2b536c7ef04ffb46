"""``chromaline migrate <service>``: upgrade one service's schema and exit.

Where the services start with ``migrate_on_start`` off (Kubernetes), a Job runs this before the
rollout, and each pod's init container runs it with ``--check`` so that no pod starts on a schema
older than its code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer


@dataclass(frozen=True)
class SchemaState:
    """The revisions a service's schema is at and the ones its code brings."""

    schema: str
    current: frozenset[str]
    heads: frozenset[str]

    @property
    def is_current(self) -> bool:
        return self.current == self.heads

    def describe(self) -> str:
        current = ", ".join(sorted(self.current)) or "no revision"
        return f"schema {self.schema} is at {current}; the code needs {', '.join(sorted(self.heads))}"


async def schema_state(service: str) -> SchemaState:
    """Read, without changing anything, which revisions ``service``'s schema is at."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from chromaline.cli.services import SERVICES
    from chromaline.common.db import migrations
    from chromaline.common.db.engine import resolve_database_url

    entry = SERVICES[service]
    schema = entry.spec.name
    config = migrations.alembic_config(entry.spec.migrations, schema)
    heads = frozenset(ScriptDirectory.from_config(config).get_heads())

    def current_revisions(connection: Connection) -> frozenset[str]:
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
        return frozenset(context.get_current_heads())

    url = await resolve_database_url(entry.load_settings().database_url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(current_revisions)
    finally:
        await engine.dispose()
    return SchemaState(schema, current, heads)


async def upgrade_schema(service: str) -> SchemaState:
    """Apply ``service``'s migrations to its schema (serialised with any other migrator)."""
    from chromaline.cli.services import SERVICES
    from chromaline.common.db import migrations
    from chromaline.common.db.engine import resolve_database_url

    entry = SERVICES[service]
    url = await resolve_database_url(entry.load_settings().database_url)
    await migrations.upgrade(url, entry.spec.name, entry.spec.migrations)
    return await schema_state(service)


def migrate(
    service: Annotated[str, typer.Argument(help="gateway, auth, detector, corrector or reporter")],
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 unless the schema is up to date.")
    ] = False,
) -> None:
    """Upgrade one service's database schema to the code's revision, then exit."""
    from sqlalchemy.exc import DBAPIError

    from chromaline.cli.services import SERVICES

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    try:
        state = asyncio.run(schema_state(service) if check else upgrade_schema(service))
    except (OSError, DBAPIError) as error:
        typer.echo(f"{service}: the database did not answer: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(state.describe(), err=not state.is_current)
    if not state.is_current:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
