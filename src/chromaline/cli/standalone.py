"""Every service in one process on the embedded defaults.

One in-process bus and one blob store are shared by the services; each keeps its own schema in
the embedded Postgres. The code is the distributed code: only the adapters differ. The gateway
reaches the auth service's HTTP API in process too, through an ASGI transport instead of a socket.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from chromaline.auth import service as auth
from chromaline.auth.settings import AuthSettings
from chromaline.cli.services import SERVICES
from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.bus.base import EventBus
from chromaline.common.bus.factory import create_bus
from chromaline.common.db.embedded import EMBEDDED_SCHEME, data_dir_from_url, stop_embedded_postgres
from chromaline.common.logging import configure_logging
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import service as gateway
from chromaline.gateway.settings import GatewaySettings

T = TypeVar("T")


@dataclass
class Standalone:
    """All runtimes of one process, started and stopped together."""

    bus: EventBus
    blobs: BlobStore
    runtimes: dict[str, ServiceRuntime]

    @classmethod
    def build(cls, overrides: Mapping[str, object] | None = None) -> Standalone:
        """Wire every service from its settings, with ``overrides`` (e.g. URLs) applied to all."""
        settings = {
            name: entry.load_settings().model_copy(update=overrides) for name, entry in SERVICES.items()
        }
        shared = settings["gateway"]
        bus = create_bus(shared.bus_url, service="standalone")
        blobs = create_blob_store(shared.blob_url)
        runtimes = {
            name: ServiceRuntime(entry.spec, settings[name], bus=bus, blobs=blobs)
            for name, entry in SERVICES.items()
        }
        return cls(bus=bus, blobs=blobs, runtimes=runtimes)

    async def start(self) -> None:
        await self.bus.start()
        for runtime in self.runtimes.values():
            await runtime.start()

    async def stop(self) -> None:
        """Stop every runtime, then the embedded PostgreSQL when this process started it: here, in
        the server's shutdown, because uvicorn ends the process by re-raising SIGTERM afterwards,
        so exit handlers never run."""
        for runtime in reversed(list(self.runtimes.values())):
            await runtime.stop()
        await self.bus.close()
        await self.blobs.close()
        database_url = self.runtimes["gateway"].settings.database_url
        if database_url.startswith(EMBEDDED_SCHEME):
            await asyncio.to_thread(stop_embedded_postgres, data_dir_from_url(database_url))

    def send_links_to(self, host: str, port: int) -> None:
        """Have the links people are sent (a password reset) lead to this server at ``host:port``,
        unless the public address is configured (``CHROMALINE_PUBLIC_BASE_URL``): the default
        names port 8080, wherever the server listens."""
        runtime = self.runtimes["auth"]
        settings = runtime.settings
        assert isinstance(settings, AuthSettings)
        if settings.public_base_url != AuthSettings.model_fields["public_base_url"].default:
            return
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        address = f"[{shown}]" if ":" in shown else shown
        runtime.settings = settings.model_copy(update={"public_base_url": f"http://{address}:{port}"})

    def auth_app(self) -> FastAPI:
        """The auth service's app, its runtime left to :meth:`start` and :meth:`stop`."""
        settings = self.runtimes["auth"].settings
        assert isinstance(settings, AuthSettings)

        @asynccontextmanager
        async def runtime_started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
            yield

        return auth.build_app(self.runtimes["auth"], settings, lifespan=runtime_started_elsewhere)

    def gateway_app(self) -> FastAPI:
        settings = self.runtimes["gateway"].settings
        assert isinstance(settings, GatewaySettings)
        auth_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.auth_app()),
            base_url="http://auth.in-process",
            timeout=settings.auth_timeout_seconds,
        )

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()
                await auth_client.aclose()

        return gateway.build_app(
            self.runtimes["gateway"], settings, lifespan=lifespan, auth_client=auth_client
        )


class BackgroundServer:
    """uvicorn in a thread of its own, stopped on exit (for the demo and the tests).

    The services' runtimes live on the server's event loop; :meth:`run` hands that loop a
    coroutine from another thread (a test publishing on the in-process bus, a sweep).
    """

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_config=None, log_level="warning")
        )
        self.thread = threading.Thread(target=self._serve, name="chromaline-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_ready = threading.Event()

    def _serve(self) -> None:
        asyncio.run(self._serve_recording_loop())

    async def _serve_recording_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_ready.set()
        await self.server.serve()

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        """Run ``work`` on the server's event loop and wait for its result."""
        if not self._loop_ready.wait(timeout) or self._loop is None:
            raise RuntimeError("the server's event loop did not start")
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def run_standalone(host: str = "127.0.0.1", port: int = 8080) -> None:
    system = Standalone.build()
    system.send_links_to(host, port)
    settings = system.runtimes["gateway"].settings
    configure_logging(settings.log_level, settings.log_format, service="standalone")
    config = uvicorn.Config(
        system.gateway_app(), host=host, port=port, log_config=None, timeout_graceful_shutdown=30
    )
    asyncio.run(uvicorn.Server(config).serve())
