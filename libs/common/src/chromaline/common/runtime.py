"""What a service needs at run time, wired from its settings: its schema, the bus, the blobs.

A service declares its name, its migrations, the buckets it writes and its subscriptions; the
runtime migrates its schema, ensures the buckets, runs its outbox relay and consumes its queue.
In standalone mode several runtimes share one bus and one blob store, passed in already open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import metrics, tracing
from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.bus.base import EventBus, PermanentError, RetryPolicy
from chromaline.common.bus.factory import create_bus
from chromaline.common.db import migrations
from chromaline.common.db.engine import Database, resolve_database_url
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.logging import get_logger
from chromaline.common.outbox import OutboxRelay
from chromaline.common.settings import ServiceSettings

log = get_logger(__name__)

RuntimeHandler = Callable[["ServiceRuntime", RawEnvelope], Awaitable[None]]


@dataclass
class ServiceSpec:
    """The static description of a service."""

    name: str
    migrations: Path
    buckets: Sequence[str] = ()
    handlers: Mapping[str, RuntimeHandler] = field(default_factory=dict)
    """Routing key → handler; all of them are consumed from the service's one queue."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prefetch: int = 2
    background: Sequence[Callable[[ServiceRuntime], Coroutine[None, None, None]]] = field(
        default_factory=tuple
    )


class ServiceRuntime:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: ServiceSettings,
        *,
        bus: EventBus | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self._shared_bus = bus
        self._shared_blobs = blobs
        self._database: Database | None = None
        self._bus: EventBus | None = bus
        self._blobs: BlobStore | None = blobs
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def bus(self) -> EventBus:
        assert self._bus is not None, "runtime not started"
        return self._bus

    @property
    def blobs(self) -> BlobStore:
        assert self._blobs is not None, "runtime not started"
        return self._blobs

    @property
    def database(self) -> Database:
        assert self._database is not None, "runtime not started"
        return self._database

    def session(self) -> AsyncSession:
        return self.database.sessions()

    async def start(self, *, consume: bool = True) -> None:
        """Migrate (if ``migrate_on_start``), connect, start the relay and, if ``consume``, the consumers."""
        database_url = await resolve_database_url(self.settings.database_url)
        if self.settings.migrate_on_start:
            await migrations.upgrade(database_url, self.spec.name, self.spec.migrations)
        self._database = await Database.open(database_url, schema=self.spec.name)
        metrics.DATABASE_POOLS.watch(self.name, self._database.engine)
        tracing.configure_tracing(self.settings)
        if self._blobs is None:
            self._blobs = create_blob_store(self.settings.blob_url)
        await self._blobs.ensure_buckets(list(self.spec.buckets))
        if self._bus is None:
            self._bus = create_bus(self.settings.bus_url, service=self.spec.name)
            await self._bus.start()
        self._relay = OutboxRelay(self._database.engine, self._bus, schema=self.spec.name)
        self._relay_task = asyncio.create_task(self._relay.run(), name=f"{self.name}-outbox-relay")
        for job in self.spec.background:
            self._tasks.append(asyncio.create_task(job(self), name=f"{self.name}-{job.__name__}"))
        if consume:
            await self.start_consuming()
        log.info("service.started", service=self.name)

    async def start_consuming(self) -> None:
        if not self.spec.handlers:
            return
        await self.bus.subscribe(
            self.spec.name,
            tuple(self.spec.handlers),
            self._dispatch,
            retry=self.spec.retry,
            prefetch=self.spec.prefetch,
        )

    async def _dispatch(self, envelope: RawEnvelope) -> None:
        with tracing.consuming(self.name, envelope), metrics.consuming(self.name, envelope):
            handler = self.spec.handlers.get(envelope.type)
            if handler is None:
                raise PermanentError(f"{self.name} does not handle {envelope.type}")
            await handler(self, envelope)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """An app lifespan that starts this runtime and stops it with the app."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Finish in-flight messages, stop the relay and background jobs, release connections."""
        if self._relay is not None and self._relay_task is not None:
            self._relay.stop()
            await self._relay_task
        if self._bus is not None and self._shared_bus is None:
            await self._bus.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._blobs is not None and self._shared_blobs is None:
            await self._blobs.close()
        if self._database is not None:
            metrics.DATABASE_POOLS.forget(self.name, self._database.engine)
            await self._database.dispose()
        log.info("service.stopped", service=self.name)

    def readiness(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        return {
            "database": lambda: self.database.ping(),
            "bus": lambda: self.bus.ping(),
            "blobs": lambda: self.blobs.ping(),
        }
