"""Chaos through separate processes: workers and the gateway killed (-9), the broker node and the
database cluster restarted, while clients upload with an Idempotency-Key and retry what failed.

Everything runs on servers of the test's own on 127.0.0.1 (a PostgreSQL cluster and a RabbitMQ
node on free ports, a moto S3 server), never on the machine's shared ones, which other tests use.
Afterwards every upload has exactly one job and it ended (a chart photo corrected, a photo
without a chart failed as such), no original is left without its job, no client saw a 500, and
every service is ready again.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chromaline.cli.processes import ServiceProcess, free_port, wait_ready
from chromaline.common.blobs import buckets
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.testing.private_servers import PrivatePostgres, PrivateRabbitNode
from chromaline.common.testing.s3 import moto_server
from chromaline.engine.synthetic import render_scene

from .conftest import SERVICES, TEST_SECRET, sign_up

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

UPLOADS = 25
CHART_EVERY = 3
"""Every third upload is a photo with a chart (corrected); the others have none (they fail)."""
UPLOAD_GAP_SECONDS = 0.3
OUTAGE_SECONDS = 4.0
SCENE_SIZE = (1200, 900)
UPLOAD_DEADLINE_SECONDS = 600.0
SETTLE_SECONDS = 300.0
LOGS = Path(__file__).resolve().parents[2] / "artifacts" / "chaos"
"""Each service's log of the last run, kept for reading after a failure."""
READY_TIMEOUT_SECONDS = 420.0
"""Generous: a service process imports the whole colour engine, which takes minutes when many
processes compete for a few cores (five start at once here)."""


@cache
def _photo(with_chart: bool) -> bytes:
    return render_scene(7, chart="classic24" if with_chart else None, size=SCENE_SIZE).image_bytes


@dataclass
class Upload:
    """One client upload and everything it was answered, retries included."""

    index: int
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    statuses: list[int] = field(default_factory=list)
    transport_errors: int = 0
    batch_id: str | None = None
    job_id: str | None = None

    @property
    def with_chart(self) -> bool:
        return self.index % CHART_EVERY == 0


def _upload(base_url: str, token: str, upload: Upload) -> Upload:
    """POST the photo until it is accepted, retrying transport errors, 503s and a key in use."""
    deadline = time.monotonic() + UPLOAD_DEADLINE_SECONDS
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": upload.key}
    photo = _photo(upload.with_chart)
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(
                f"{base_url}/api/v1/jobs",
                files=[("files", (f"shot-{upload.index}.jpg", photo, "image/jpeg"))],
                headers=headers,
                timeout=30,
            )
        except httpx.TransportError:
            upload.transport_errors += 1
            time.sleep(0.5)
            continue
        upload.statuses.append(answer.status_code)
        if answer.status_code == 202:
            batch = answer.json()
            upload.batch_id = batch["id"]
            [job] = batch["jobs"]
            upload.job_id = job["id"]
            return upload
        if answer.status_code in (409, 503):
            time.sleep(float(answer.headers.get("Retry-After", "1")) * random.uniform(0.5, 1.0))
            continue
        return upload
    return upload


@dataclass
class ChaosSystem:
    postgres: PrivatePostgres
    rabbit: PrivateRabbitNode
    blob_url: str
    processes: dict[str, ServiceProcess]

    @property
    def base_url(self) -> str:
        return self.processes["gateway"].url

    def kill_and_restart(self, name: str) -> None:
        process = self.processes[name]
        process.kill()
        if process.log is not None:
            process.log.close()
        process.start()


@pytest.fixture(scope="module")
def chaos_system() -> Iterator[ChaosSystem]:
    postgres = PrivatePostgres()
    rabbit = PrivateRabbitNode()
    try:
        postgres.create()
        rabbit.create()
        postgres.start()
        rabbit.start()
        with moto_server() as blob_url:
            env = {
                **os.environ,
                "CHROMALINE_ENVIRONMENT": "test",
                "CHROMALINE_SIGNING_SECRET": TEST_SECRET,
                "CHROMALINE_BUS_URL": rabbit.url,
                "CHROMALINE_DATABASE_URL": postgres.url,
                "CHROMALINE_BLOB_URL": blob_url,
                "CHROMALINE_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                "CHROMALINE_CONNECT_RETRY_MAX_SECONDS": "2",
                "CHROMALINE_GATEWAY_UPLOAD_BURST": "1000",
                "CHROMALINE_GATEWAY_ORPHAN_GRACE_SECONDS": "30",
                "CHROMALINE_GATEWAY_ORPHAN_SWEEP_INTERVAL_SECONDS": "3",
            }
            LOGS.mkdir(parents=True, exist_ok=True)
            for previous in LOGS.glob("*.log"):
                previous.unlink()
            processes = {
                name: ServiceProcess(name, free_port(), env, LOGS / f"{name}.log") for name in SERVICES
            }
            env["CHROMALINE_GATEWAY_AUTH_URL"] = processes["auth"].url
            try:
                starting = time.monotonic()
                for process in processes.values():
                    process.start()
                for process in processes.values():
                    wait_ready(process.url, READY_TIMEOUT_SECONDS, process.process)
                print(f"chaos: five services ready in {time.monotonic() - starting:.1f} s")
                yield ChaosSystem(postgres, rabbit, blob_url, processes)
            finally:
                for process in processes.values():
                    process.stop()
    finally:
        rabbit.remove()
        postgres.remove()


def _chaos_steps(system: ChaosSystem) -> list[tuple[str, Callable[[], None]]]:
    """What goes wrong, in order; each step comes while a few uploads are in flight."""

    def restart_gateway() -> None:
        system.kill_and_restart("gateway")
        gateway = system.processes["gateway"]
        wait_ready(gateway.url, READY_TIMEOUT_SECONDS, gateway.process)

    def restart_rabbitmq() -> None:
        system.rabbit.stop()
        time.sleep(OUTAGE_SECONDS)
        system.rabbit.start()

    def restart_postgres() -> None:
        system.postgres.stop()
        time.sleep(OUTAGE_SECONDS)
        system.postgres.start()

    return [
        ("kill -9 detector", lambda: system.kill_and_restart("detector")),
        ("kill -9 gateway", restart_gateway),
        ("restart RabbitMQ", restart_rabbitmq),
        ("restart PostgreSQL", restart_postgres),
        ("kill -9 corrector", lambda: system.kill_and_restart("corrector")),
    ]


def _jobs(base_url: str, token: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{base_url}/api/v1/jobs",
        params={"page_size": 200},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _job_originals(postgres_url: str) -> set[str]:
    connection = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT original->>'key' AS key FROM gateway.jobs")
    finally:
        await connection.close()
    return {row["key"] for row in rows}


async def _stored_originals(blob_url: str) -> set[str]:
    store = create_blob_store(blob_url)
    try:
        return {stored.key async for stored in store.list_objects(buckets.ORIGINALS)}
    finally:
        await store.close()


def test_killed_processes_and_restarted_servers_lose_duplicate_or_orphan_nothing(
    chaos_system: ChaosSystem,
) -> None:
    began = time.monotonic()
    token = sign_up(chaos_system.base_url, "Chaos")["access_token"]
    uploads = [Upload(index) for index in range(UPLOADS)]
    for with_chart in (True, False):
        _photo(with_chart)
    started = time.monotonic()
    chaos: list[str] = []
    steps = _chaos_steps(chaos_system)
    batches = [uploads[start :: len(steps)] for start in range(len(steps))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures: list[Future[Upload]] = []
        for (what, action), batch in zip(steps, batches, strict=True):
            for upload in batch:
                futures.append(pool.submit(_upload, chaos_system.base_url, token, upload))
                time.sleep(UPLOAD_GAP_SECONDS)
            action()
            chaos.append(f"{time.monotonic() - started:.1f} s {what}")
        for future in futures:
            future.result()
    uploaded_in = time.monotonic() - started

    for process in chaos_system.processes.values():
        wait_ready(process.url, READY_TIMEOUT_SECONDS, process.process)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        jobs = _jobs(chaos_system.base_url, token)
        if all(job["state"] in ("done", "failed") for job in jobs) or time.monotonic() > deadline:
            break
        time.sleep(1)
    while True:
        originals = asyncio.run(_stored_originals(chaos_system.blob_url))
        referenced = asyncio.run(_job_originals(chaos_system.postgres.url))
        if originals == referenced or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(
        f"chaos: {chaos}; uploads answered in {uploaded_in:.1f} s, settled after "
        f"{time.monotonic() - began:.1f} s; retried: "
        f"{sum(len(upload.statuses) + upload.transport_errors - 1 for upload in uploads)}"
    )

    assert [upload.index for upload in uploads if upload.job_id is None] == [], [
        (upload.index, upload.statuses, upload.transport_errors) for upload in uploads
    ]
    assert [
        status for upload in uploads for status in upload.statuses if status >= 500 and status != 503
    ] == []
    assert sorted(job["id"] for job in jobs) == sorted(str(upload.job_id) for upload in uploads)
    outcomes = {job["id"]: (job["state"], job.get("reason")) for job in jobs}
    assert [
        (upload.index, outcomes[str(upload.job_id)])
        for upload in uploads
        if outcomes[str(upload.job_id)] != (("done", None) if upload.with_chart else ("failed", "no_chart"))
    ] == []
    assert originals == referenced
    for process in chaos_system.processes.values():
        assert httpx.get(f"{process.url}/readyz", timeout=5).status_code == 200, process.name
