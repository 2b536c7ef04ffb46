"""A service process started while its database and broker are down stays alive, says it is not
ready, answers 503 to work that needs them, and becomes ready once they answer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chromaline.common.entrypoint import worker_app
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.network import TcpForwarder
from chromaline.detector.service import SPEC
from chromaline.detector.settings import DetectorSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _ready(client: httpx.AsyncClient) -> dict[str, bool]:
    answer = await client.get("/readyz")
    checks: dict[str, bool] = answer.json()["checks"]
    assert (answer.status_code == 200) == all(checks.values())
    return checks


async def _wait_until(client: httpx.AsyncClient, wanted: dict[str, bool]) -> None:
    deadline = time.monotonic() + 30
    while (checks := await _ready(client)) != wanted:
        assert time.monotonic() < deadline, checks
        await asyncio.sleep(0.2)


def _through(url: str, forwarder: TcpForwarder) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{forwarder.port}").geturl()


async def test_a_service_waits_for_its_dependencies_and_becomes_ready(
    service_database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    database = urlsplit(service_database_url)
    broker = urlsplit(amqp_url)
    database_hop = TcpForwarder(database.hostname or "127.0.0.1", database.port or 5432)
    broker_hop = TcpForwarder(broker.hostname or "127.0.0.1", broker.port or 5672)
    settings = DetectorSettings(
        database_url=_through(service_database_url, database_hop),
        bus_url=_through(amqp_url, broker_hop),
        blob_url=f"file://{tmp_path}",
        connect_retry_max_seconds=1.0,
    )
    runtime = ServiceRuntime(SPEC, settings)
    app = worker_app(runtime)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://detector") as client,
        ):
            await asyncio.sleep(1.5)
            assert (await client.get("/healthz")).status_code == 200
            assert await _ready(client) == {"database": False, "bus": False, "blobs": False, "started": False}

            await database_hop.open()
            await _wait_until(client, {"database": True, "bus": False, "blobs": True, "started": False})
            assert (await client.get("/healthz")).status_code == 200

            await broker_hop.open()
            await _wait_until(client, {"database": True, "bus": True, "blobs": True, "started": True})
    finally:
        await database_hop.close()
        await broker_hop.close()
