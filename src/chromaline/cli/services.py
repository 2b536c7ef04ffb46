"""The services this installation can run, by name, and how to start them as processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from chromaline.auth import service as auth
from chromaline.auth.settings import AuthSettings
from chromaline.common.http import create_app
from chromaline.common.logging import configure_logging
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings
from chromaline.corrector import service as corrector
from chromaline.detector import service as detector
from chromaline.gateway import service as gateway
from chromaline.gateway.settings import GatewaySettings
from chromaline.reporter import service as reporter


@dataclass(frozen=True)
class ServiceEntry:
    spec: ServiceSpec
    load_settings: Callable[[], ServiceSettings]


SERVICES: dict[str, ServiceEntry] = {
    "gateway": ServiceEntry(gateway.SPEC, gateway.load_settings),
    "auth": ServiceEntry(auth.SPEC, auth.load_settings),
    "detector": ServiceEntry(detector.SPEC, detector.load_settings),
    "corrector": ServiceEntry(corrector.SPEC, corrector.load_settings),
    "reporter": ServiceEntry(reporter.SPEC, reporter.load_settings),
}


def worker_app(runtime: ServiceRuntime) -> FastAPI:
    """A worker's HTTP surface: health, readiness and metrics around its consuming runtime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    return create_app(runtime.name, readiness=runtime.readiness(), lifespan=lifespan)


def serve(name: str, host: str | None = None, port: int | None = None) -> None:
    """Run one service as its own process (the entry point of its container)."""
    entry = SERVICES[name]
    settings = entry.load_settings()
    configure_logging(settings.log_level, settings.log_format, service=name)
    runtime = ServiceRuntime(entry.spec, settings)
    if name == "gateway":
        assert isinstance(settings, GatewaySettings)
        app = gateway.build_app(runtime, settings)
    elif name == "auth":
        assert isinstance(settings, AuthSettings)
        app = auth.build_app(runtime, settings)
    else:
        app = worker_app(runtime)
    bind_port = port or int(getattr(settings, "port", 8080))
    uvicorn.run(app, host=host or "0.0.0.0", port=bind_port, log_config=None, timeout_graceful_shutdown=30)
