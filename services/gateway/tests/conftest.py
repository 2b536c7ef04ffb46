"""The gateway app in process on the real PostgreSQL, its blobs in a folder, callers named by
the ``X-Test-Org`` header (an admin of that organisation)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.access import Principal, authorize
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient


@asynccontextmanager
async def _started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
    yield


def _caller(request: Request) -> Principal:
    return Principal(f"u-{request.headers['X-Test-Org']}", request.headers["X-Test-Org"], "admin")


@pytest.fixture
async def api_runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://api-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        webhook_allow_private_urls=True,
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


@pytest.fixture
def api_client(api_runtime: ServiceRuntime) -> ApiClient:
    settings = api_runtime.settings
    assert isinstance(settings, GatewaySettings)
    app = build_app(api_runtime, settings, lifespan=_started_elsewhere)
    app.dependency_overrides[authorize] = _caller

    def for_organisation(organisation: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"X-Test-Org": organisation},
        )

    return for_organisation
