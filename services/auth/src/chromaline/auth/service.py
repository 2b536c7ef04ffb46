"""The auth service: accounts, organisations and roles, tokens, API keys and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import FastAPI

from chromaline.auth.api import build_router
from chromaline.auth.context import AuthContext
from chromaline.auth.handlers import (
    NAME,
    maintenance,
    on_chart_changed,
    on_job_expired,
    on_partner_rejected,
    on_password_reset_requested,
)
from chromaline.auth.settings import AuthSettings
from chromaline.common.entrypoint import ServiceEntry
from chromaline.common.http import create_app
from chromaline.common.request_guard import RequestGuard
from chromaline.common.runtime import ServiceRuntime, ServiceSpec

SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    handlers={
        "user.password_reset_requested": on_password_reset_requested,
        "partner.rejected": on_partner_rejected,
        "job.expired": on_job_expired,
        "chart.created": on_chart_changed,
        "chart.deleted": on_chart_changed,
    },
    background=(maintenance,),
    idempotency_keys=True,
)


def load_settings() -> AuthSettings:
    return AuthSettings.for_service(NAME)


def build_app(
    runtime: ServiceRuntime,
    settings: AuthSettings,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The auth service's FastAPI app; by default its lifespan starts and stops ``runtime``."""

    app = create_app(
        NAME, readiness=runtime.readiness(), lifespan=lifespan or runtime.lifespan, title="Chromaline auth"
    )
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_request_body_bytes)
    app.include_router(build_router(runtime, AuthContext.from_settings(settings)))
    return app


ENTRY = ServiceEntry(SPEC, load_settings, build_app)
