"""The gateway: public API over the job records it keeps, following the pipeline's events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chromaline.common import tracing
from chromaline.common.blobs import buckets
from chromaline.common.bus.base import RetryPolicy
from chromaline.common.entrypoint import ServiceEntry
from chromaline.common.http import create_app
from chromaline.common.request_guard import RequestGuard
from chromaline.common.runtime import ServiceRuntime, ServiceSpec
from chromaline.gateway.access import Access, AdmitUploadersFirst, Authenticator, authorize
from chromaline.gateway.api import MULTIPART_UPLOAD_ROUTES, STREAMED_UPLOAD_ROUTES, build_router
from chromaline.gateway.charts import build_charts_router
from chromaline.gateway.concurrency import UserSlots
from chromaline.gateway.handlers import (
    FOLLOWED_EVENTS,
    on_pipeline_event,
    on_report_html_ready,
    on_report_pdf_ready,
    on_retention_changed,
    watchdog,
)
from chromaline.gateway.headers import SecurityHeaders
from chromaline.gateway.notifications_api import build_notifications_router
from chromaline.gateway.organisation_settings import build_organisation_router
from chromaline.gateway.orphans import orphan_sweeper
from chromaline.gateway.rate_limit import upload_bucket_pruner, upload_buckets
from chromaline.gateway.retention import retention_sweeper
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.web import mount_web
from chromaline.gateway.webhooks import deliver_webhooks

NAME = "gateway"
SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    buckets=(buckets.ORIGINALS, buckets.CORRECTED, buckets.REPORTS),
    handlers={
        **dict.fromkeys(FOLLOWED_EVENTS, on_pipeline_event),
        "report.pdf_ready": on_report_pdf_ready,
        "report.html_ready": on_report_html_ready,
        "organisation.retention_changed": on_retention_changed,
    },
    retry=RetryPolicy(max_attempts=8),
    prefetch=16,
    background=(watchdog, deliver_webhooks, retention_sweeper, orphan_sweeper, upload_bucket_pruner),
    idempotency_keys=True,
)


def load_settings() -> GatewaySettings:
    return GatewaySettings.for_service(NAME)


def build_app(
    runtime: ServiceRuntime,
    settings: GatewaySettings,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    auth_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The gateway's FastAPI app; by default its lifespan starts and stops ``runtime``.

    ``auth_client`` reaches the auth service (its base URL set); by default a client of
    ``settings.auth_url``, closed with the app. The standalone system passes one that calls the
    auth app in process. Either way its requests carry the trace context, so auth continues the trace.
    """
    client = tracing.propagate_trace(
        auth_client or httpx.AsyncClient(base_url=settings.auth_url, timeout=settings.auth_timeout_seconds)
    )

    @asynccontextmanager
    async def with_auth_client(app: FastAPI) -> AsyncIterator[None]:
        async with (lifespan or runtime.lifespan)(app):
            try:
                yield
            finally:
                if auth_client is None:
                    await client.aclose()

    app = create_app(
        NAME,
        readiness=runtime.readiness(),
        lifespan=with_auth_client,
        title="Chromaline API",
        metrics_dependencies=[Depends(authorize)],
    )
    app.state.access = Access(
        Authenticator(settings, client),
        upload_buckets(runtime),
        UserSlots(settings.max_uploads_in_progress_per_user),
        settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        metrics_without_token=settings.environment != "production",
    )
    app.add_middleware(AdmitUploadersFirst, routes=MULTIPART_UPLOAD_ROUTES | STREAMED_UPLOAD_ROUTES)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_request_body_bytes,
        unlimited=STREAMED_UPLOAD_ROUTES,
        route_limits=dict.fromkeys(MULTIPART_UPLOAD_ROUTES, settings.max_batch_upload_bytes),
    )
    if settings.security_headers:
        app.add_middleware(SecurityHeaders, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Correlation-ID",
                "X-Organisation-ID",
                "X-API-Key",
            ],
            expose_headers=["Retry-After", "X-Correlation-ID"],
        )
    app.include_router(build_router(runtime, settings, client))
    app.include_router(build_notifications_router(runtime, settings))
    app.include_router(build_organisation_router(runtime))
    app.include_router(build_charts_router(runtime))
    mount_web(app)
    return app


ENTRY = ServiceEntry(SPEC, load_settings, build_app)
