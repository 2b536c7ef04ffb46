"""Upload rate limits hold across gateway replicas: two gateway apps, each with a runtime (and
database pool) of its own, on one database, take from the same bucket per user or API key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import HTTPConnection

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.access import Principal
from chromaline.gateway.rate_limit import UploadBuckets
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings

from .conftest import png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BURST = 3


class SignedIn:
    """Every request is the member named by its ``X-Test-User`` header (no auth service needed)."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        return Principal(connection.headers["X-Test-User"], "org-a", "member")


@asynccontextmanager
async def _started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def replica(database_url: str, blobs: Path, rate_per_minute: float) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        database_url=database_url,
        bus_url=f"memory://replica-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{blobs}",
        upload_burst=BURST,
        upload_rate_per_minute=rate_per_minute,
    )
    runtime = ServiceRuntime(SPEC, settings)
    await runtime.start(consume=False)
    app = build_app(runtime, settings, lifespan=_started_elsewhere)
    app.state.access.authenticator = SignedIn()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            yield client
    finally:
        await runtime.stop()


async def _upload(client: httpx.AsyncClient, user: str) -> httpx.Response:
    return await client.post(
        "/api/v1/jobs", files=[("files", ("a.png", png(), "image/png"))], headers={"X-Test-User": user}
    )


async def test_the_burst_is_shared_by_every_replica(service_database_url: str, tmp_path: Path) -> None:
    async with (
        replica(service_database_url, tmp_path, rate_per_minute=0.06) as first,
        replica(service_database_url, tmp_path, rate_per_minute=0.06) as second,
    ):
        answers = await asyncio.gather(*(_upload(client, "user-1") for client in (first, second) * BURST))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [202] * BURST + [429] * BURST, [answer.text[:100] for answer in answers]
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert refused.json()["code"] == "upload_rate_limited"
        assert int(refused.headers["Retry-After"]) > 60, "one token per 1000 s: the wait is long"
        assert (await _upload(second, "user-2")).status_code == 202, "each user has a bucket of their own"


async def test_a_bucket_refills_by_the_databases_clock(service_database_url: str, tmp_path: Path) -> None:
    runtime = ServiceRuntime(
        SPEC,
        GatewaySettings(
            database_url=service_database_url, bus_url="memory://refill", blob_url=f"file://{tmp_path}"
        ),
    )
    await runtime.start(consume=False)
    try:
        buckets = UploadBuckets(runtime, rate_per_second=10.0, burst=2)
        assert [await buckets.take("user:a") for _ in range(2)] == [0.0, 0.0]
        wait = await buckets.take("user:a")
        assert 0 < wait <= 0.1
        await asyncio.sleep(wait + 0.05)
        assert await buckets.take("user:a") == 0.0
        assert await buckets.take("key:b") == 0.0
        await asyncio.sleep(0.3)
        assert await buckets.forget_full() == 2, "both buckets refilled: their rows go"
    finally:
        await runtime.stop()
