"""Upload rate limits hold across gateway replicas: two gateway apps, each with a runtime (and
database pool) of its own, on one database, take from the same bucket per user, whichever API
key they use."""

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
    """Every request is the member named by its ``X-Test-User`` header, with the upload key named
    by ``X-Test-Key`` when there is one (no auth service needed)."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        key = connection.headers.get("X-Test-Key")
        scopes = frozenset({"upload"}) if key else None
        return Principal(connection.headers["X-Test-User"], "org-a", "member", scopes=scopes, api_key_id=key)


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


async def _upload(client: httpx.AsyncClient, user: str, key: str | None = None) -> httpx.Response:
    return await client.post(
        "/api/v1/jobs",
        files=[("files", ("a.png", png(), "image/png"))],
        headers={"X-Test-User": user, **({"X-Test-Key": key} if key else {})},
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


async def test_a_users_api_keys_share_the_users_bucket(service_database_url: str, tmp_path: Path) -> None:
    """Keys cost nothing to make: a bucket per key let one user upload as fast as they had keys."""
    async with replica(service_database_url, tmp_path, rate_per_minute=0.06) as gateway:
        granted = [
            (await _upload(gateway, "user-1", key=f"key-{index}")).status_code for index in range(BURST)
        ]
        assert granted == [202] * BURST
        with_a_new_key = await _upload(gateway, "user-1", key="key-new")
        signed_in = await _upload(gateway, "user-1")
        other_user = await _upload(gateway, "user-2", key="key-of-user-2")
    assert (with_a_new_key.status_code, with_a_new_key.json()["code"]) == (429, "upload_rate_limited")
    assert signed_in.status_code == 429
    assert other_user.status_code == 202


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
