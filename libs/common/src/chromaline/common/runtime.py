"""What a service needs at run time, wired from its settings: its schema, the bus, the blobs.

A service declares its name, its migrations, the buckets it writes and its subscriptions; the
runtime migrates its schema, ensures the buckets, runs its outbox relay and consumes its queue.
In standalone mode several runtimes share one bus and one blob store, passed in already open.

A service process starts with :meth:`ServiceRuntime.start_in_background`: its HTTP side (health,
readiness, metrics) answers at once while the runtime connects, retrying with backoff and jitter
for as long as a dependency is down. Until it is connected ``/readyz`` says not ready and a
request that needs the database, bus or blobs answers 503; ``/healthz`` stays true, so an
orchestrator waits instead of restarting the process. Once connected, the database pool
(pre-ping), the bus connection (aio-pika's robust connection) and the outbox relay each recover
on their own from a later outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import metrics, pruning, tracing
from chromaline.common.backoff import backoff_delay
from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.bus.base import EventBus, PermanentError, RetryPolicy
from chromaline.common.bus.factory import create_bus
from chromaline.common.db import migrations
from chromaline.common.db.engine import Database, resolve_database_url
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.logging import get_logger
from chromaline.common.outages import DependencyUnavailableError
from chromaline.common.outbox import OutboxRelay
from chromaline.common.periodic import run_periodically
from chromaline.common.settings import ServiceSettings

log = get_logger(__name__)

CONNECT_RETRY_INITIAL_SECONDS = 0.5

RuntimeHandler = Callable[["ServiceRuntime", RawEnvelope], Awaitable[None]]


@dataclass
class ServiceSpec:
    """The static description of a service."""

    name: str
    migrations: Path
    buckets: Sequence[str] = ()
    handlers: Mapping[str, RuntimeHandler] = field(default_factory=dict)
    """Routing key → handler; all of them are consumed from the service's queue (named after it)."""
    requests: Mapping[str, RuntimeHandler] = field(default_factory=dict)
    """Routing key → handler for what someone is waiting for (a report asked for on download):
    consumed from a queue of their own, ``<name>.requests``, one at a time, so that they are
    served beside the backlog of the service's queue instead of behind it."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prefetch: int = 2
    background: Sequence[Callable[[ServiceRuntime], Coroutine[None, None, None]]] = field(
        default_factory=tuple
    )
    idempotency_keys: bool = False
    """Whether its schema keeps ``Idempotency-Key`` responses, pruned with the outbox and inbox."""


def requests_queue(service: str) -> str:
    """The queue of a service's :attr:`ServiceSpec.requests`."""
    return f"{service}.requests"


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
        self._buckets_ready = False
        self._consuming = False
        self._started = False
        self._connecting: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise DependencyUnavailableError("bus", f"{self.name} is not connected to the bus yet")
        return self._bus

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None or not self._buckets_ready:
            raise DependencyUnavailableError("blobs", f"{self.name} has not reached the blob store yet")
        return self._blobs

    @property
    def database(self) -> Database:
        if self._database is None:
            raise DependencyUnavailableError("database", f"{self.name} is not connected to the database yet")
        return self._database

    def session(self) -> AsyncSession:
        return self.database.sessions()

    async def start(self, *, consume: bool = True) -> None:
        """Migrate (if ``migrate_on_start``), connect, start the relay and, if ``consume``, the consumers.

        Raises when a dependency does not answer; called again, it goes on from the step that failed.
        """
        if self._database is None:
            database_url = await resolve_database_url(self.settings.database_url)
            if self.settings.migrate_on_start:
                await migrations.upgrade(database_url, self.spec.name, self.spec.migrations)
            self._database = await Database.open(database_url, schema=self.spec.name)
            metrics.DATABASE_POOLS.watch(self.name, self._database.engine)
            tracing.configure_tracing(self.settings)
        if self._blobs is None:
            self._blobs = create_blob_store(self.settings.blob_url)
        if not self._buckets_ready:
            await self._blobs.ensure_buckets(list(self.spec.buckets))
            self._buckets_ready = True
        if self._bus is None:
            bus = create_bus(self.settings.bus_url, service=self.spec.name)
            try:
                await bus.start()
            except BaseException:
                await asyncio.shield(bus.close())
                raise
            self._bus = bus
        if self._relay_task is None:
            self._relay = OutboxRelay(self._database.engine, self._bus, schema=self.spec.name)
            self._relay_task = asyncio.create_task(self._relay.run(), name=f"{self.name}-outbox-relay")
            for job in (*self.spec.background, pruner):
                self._tasks.append(asyncio.create_task(job(self), name=f"{self.name}-{job.__name__}"))
        if consume and not self._consuming:
            await self.start_consuming()
            self._consuming = True
        self._started = True
        log.info("service.started", service=self.name)

    def start_in_background(self, *, consume: bool = True) -> None:
        """Connect in a task of its own, trying again with backoff and jitter until it succeeds."""
        self._connecting = asyncio.create_task(
            self._connect_until_started(consume), name=f"{self.name}-connect"
        )

    async def _connect_until_started(self, consume: bool) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.start(consume=consume)
                return
            except Exception as error:
                delay = backoff_delay(
                    attempt,
                    initial=CONNECT_RETRY_INITIAL_SECONDS,
                    maximum=self.settings.connect_retry_max_seconds,
                )
                log.warning(
                    "service.dependency_unavailable",
                    service=self.name,
                    attempt=attempt,
                    retry_in=round(delay, 2),
                    error=f"{type(error).__name__}: {error}",
                )
                await asyncio.sleep(delay)

    @property
    def started(self) -> bool:
        """Connected to everything, relaying and (if asked) consuming."""
        return self._started

    async def start_consuming(self) -> None:
        if self.spec.handlers:
            await self.bus.subscribe(
                self.spec.name,
                tuple(self.spec.handlers),
                self._dispatch,
                retry=self.spec.retry,
                prefetch=self.spec.prefetch,
            )
        if self.spec.requests:
            await self.bus.subscribe(
                requests_queue(self.spec.name),
                tuple(self.spec.requests),
                self._dispatch,
                retry=self.spec.retry,
                prefetch=1,
            )

    async def _dispatch(self, envelope: RawEnvelope) -> None:
        with tracing.consuming(self.name, envelope), metrics.consuming(self.name, envelope):
            handler = self.spec.handlers.get(envelope.type) or self.spec.requests.get(envelope.type)
            if handler is None:
                raise PermanentError(f"{self.name} does not handle {envelope.type}")
            await handler(self, envelope)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """A service process's app lifespan: connect in the background (the app serves health and
        readiness meanwhile), stop with the app."""
        self.start_in_background()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Finish in-flight messages, stop the relay and background jobs, release connections."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
            self._connecting = None
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
        """Each dependency answers, and the runtime has started (migrated, relaying, consuming)."""

        async def started() -> bool:
            return self.started

        return {
            "database": lambda: self.database.ping(),
            "bus": lambda: self.bus.ping(),
            "blobs": lambda: self.blobs.ping(),
            "started": started,
        }


async def pruner(runtime: ServiceRuntime) -> None:
    """Prune the runtime's outbox, inbox and idempotency keys every ``prune_interval_seconds``."""
    database = runtime.database
    await run_periodically(
        "pruning",
        runtime.settings.prune_interval_seconds,
        lambda: pruning.prune(
            database.engine,
            runtime.spec.name,
            runtime.settings,
            idempotency_keys=runtime.spec.idempotency_keys,
        ),
    )
