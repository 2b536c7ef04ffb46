"""How one service runs as its own process: ``chromaline-<service> serve`` or ``… migrate``.

Every service package exposes this entry point for its own :class:`ServiceEntry`, so that a
service's image needs only that service's package (and the libraries it uses), not the
``chromaline`` command that knows every service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import uvicorn
from fastapi import FastAPI

from chromaline.common.http import create_app
from chromaline.common.logging import configure_logging
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class ServiceEntry(Generic[SettingsT]):
    """A service as a process: what it is, how it reads its settings and, for services with an
    API of their own, how its app is built (workers get :func:`worker_app`)."""

    spec: ServiceSpec
    load_settings: Callable[[], SettingsT]
    build_app: Callable[[ServiceRuntime, SettingsT], FastAPI] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def app(self, runtime: ServiceRuntime, settings: SettingsT) -> FastAPI:
        return worker_app(runtime) if self.build_app is None else self.build_app(runtime, settings)


def worker_app(runtime: ServiceRuntime) -> FastAPI:
    """A worker's HTTP surface: health, readiness and metrics around its consuming runtime."""

    return create_app(runtime.name, readiness=runtime.readiness(), lifespan=runtime.lifespan)


def serve(entry: ServiceEntry[Any], host: str | None = None, port: int | None = None) -> None:
    """Run one service until it is stopped (the entry point of its container)."""
    settings = entry.load_settings()
    configure_logging(settings.log_level, settings.log_format, service=entry.name)
    runtime = ServiceRuntime(entry.spec, settings)
    app = entry.app(runtime, settings)
    bind_port = port or int(getattr(settings, "port", 8080))
    uvicorn.run(app, host=host or "0.0.0.0", port=bind_port, log_config=None, timeout_graceful_shutdown=30)


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


async def schema_state(entry: ServiceEntry[Any]) -> SchemaState:
    """Read, without changing anything, which revisions the service's schema is at."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from chromaline.common.db import migrations
    from chromaline.common.db.engine import resolve_database_url

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


async def upgrade_schema(entry: ServiceEntry[Any]) -> SchemaState:
    """Apply the service's migrations to its schema (serialised with any other migrator)."""
    from chromaline.common.db import migrations
    from chromaline.common.db.engine import resolve_database_url

    url = await resolve_database_url(entry.load_settings().database_url)
    await migrations.upgrade(url, entry.spec.name, entry.spec.migrations)
    return await schema_state(entry)


def migrate(entry: ServiceEntry[Any], *, check: bool) -> int:
    """Upgrade the service's schema (or with ``check`` only compare it); the exit status."""
    from sqlalchemy.exc import DBAPIError

    try:
        state = asyncio.run(schema_state(entry) if check else upgrade_schema(entry))
    except (OSError, DBAPIError) as error:
        print(f"{entry.name}: the database did not answer: {error}", file=sys.stderr)
        return 1
    print(state.describe(), file=sys.stdout if state.is_current else sys.stderr)
    return 0 if state.is_current else 1


def main(entry: ServiceEntry[Any], argv: Sequence[str] | None = None) -> int:
    """``chromaline-<service> serve [--host H] [--port P]`` or ``… migrate [--check]``."""
    parser = argparse.ArgumentParser(
        prog=f"chromaline-{entry.name}", description=f"The {entry.name} service."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="Run the service until it is stopped.")
    serve_command.add_argument("--host", help="Bind address (default 0.0.0.0).")
    serve_command.add_argument("--port", type=int, help="Port (default from the service's settings).")
    migrate_command = commands.add_parser("migrate", help="Upgrade the service's schema, then exit.")
    migrate_command.add_argument(
        "--check", action="store_true", help="Change nothing; exit 1 unless the schema is up to date."
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "migrate":
        return migrate(entry, check=arguments.check)
    serve(entry, arguments.host, arguments.port)
    return 0
