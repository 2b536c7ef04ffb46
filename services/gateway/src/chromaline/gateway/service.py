"""The gateway: public API over the job records it keeps, following the pipeline's events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chromaline.common.blobs import buckets
from chromaline.common.bus.base import RetryPolicy
from chromaline.common.http import create_app
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.gateway.api import build_router
from chromaline.gateway.handlers import FOLLOWED_EVENTS, on_pipeline_event, watchdog
from chromaline.gateway.problems import install_problem_handlers
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.web import mount_web

NAME = "gateway"
SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    buckets=(buckets.ORIGINALS, buckets.CORRECTED, buckets.REPORTS),
    handlers=dict.fromkeys(FOLLOWED_EVENTS, on_pipeline_event),
    retry=RetryPolicy(max_attempts=8),
    prefetch=16,
    background=(watchdog,),
)


def load_settings() -> GatewaySettings:
    return GatewaySettings.for_service(NAME)


def build_app(
    runtime: ServiceRuntime,
    settings: GatewaySettings,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The gateway's FastAPI app; by default its lifespan starts and stops ``runtime``."""

    @asynccontextmanager
    async def own_runtime(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = create_app(
        NAME, readiness=runtime.readiness(), lifespan=lifespan or own_runtime, title="Chromaline API"
    )
    install_problem_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Correlation-ID"],
        )
    app.include_router(build_router(runtime, settings))
    mount_web(app)
    return app
