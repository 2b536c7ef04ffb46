"""The retention sweep as the CronJob runs it (``chromaline-retention-sweep``, from the gateway's
image) and as ``chromaline retention sweep``: its own process, the gateway's settings from the
environment, the real RabbitMQ, PostgreSQL and S3."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chromaline.cli.processes import free_port
from chromaline.common.blobs import buckets
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.events.contracts import BlobRef, JobOptions
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.postgres import fresh_database
from chromaline.gateway import jobs
from chromaline.gateway.models import Job
from chromaline.gateway.retention_sweep import unpublished_events, wait_until_published
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OBSERVER = "retention-observer"
BIN = Path(sys.executable).parent
CRONJOB_COMMAND = [str(BIN / "chromaline-retention-sweep")]
CLI_COMMAND = [str(BIN / "chromaline"), "retention", "sweep"]


@dataclass(frozen=True)
class Deployment:
    env: dict[str, str]
    settings: GatewaySettings


@pytest.fixture
def deployment(postgres_url: str, isolated_amqp_url: str, s3_url: str) -> Iterator[Deployment]:
    with fresh_database(postgres_url) as database_url:
        variables = {
            "CHROMALINE_DATABASE_URL": database_url,
            "CHROMALINE_BUS_URL": isolated_amqp_url,
            "CHROMALINE_BLOB_URL": s3_url,
            "CHROMALINE_LOG_FORMAT": "json",
        }
        settings = GatewaySettings(database_url=database_url, bus_url=isolated_amqp_url, blob_url=s3_url)
        yield Deployment({**os.environ, **variables}, settings)


async def _collect(amqp_url: str, seconds: float) -> list[RawEnvelope]:
    """What reached the observer's queue (bound to image.uploaded and job.expired) so far."""
    heard: list[RawEnvelope] = []

    async def keep(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    bus = RabbitMqBus(amqp_url, service="observer")
    await bus.start()
    try:
        await bus.subscribe(OBSERVER, ["image.uploaded", "job.expired"], keep)
        await asyncio.sleep(seconds)
    finally:
        await bus.close()
    return heard


async def _old_job(settings: GatewaySettings) -> Job:
    """A job that ended 400 days ago (the default period is 365), its original stored."""
    await _collect(settings.bus_url, 0)
    runtime = ServiceRuntime(SPEC, settings.model_copy(update={"retention_sweep_interval_seconds": 0}))
    await runtime.start(consume=False)
    try:
        original = BlobRef(bucket=buckets.ORIGINALS, key=f"{uuid.uuid4()}/old.jpg")
        await runtime.blobs.put_bytes(original.bucket, original.key, b"photo")
        async with runtime.session() as session, session.begin():
            _, [job] = await jobs.create_batch(
                session, "org-cron", [("old.jpg", "image/jpeg", 5, original)], JobOptions()
            )
            job.state = "done"
            job.finished_at = datetime.now(UTC) - timedelta(days=400)
        await wait_until_published(runtime, 30)
    finally:
        await runtime.stop()
    return job


async def _after_the_sweep(settings: GatewaySettings, job: Job) -> tuple[Job | None, bool, int]:
    runtime = ServiceRuntime(SPEC, settings.model_copy(update={"retention_sweep_interval_seconds": 0}))
    await runtime.start(consume=False)
    try:
        async with runtime.session() as session:
            found = await session.get(Job, job.id)
        return (
            found,
            await runtime.blobs.exists(buckets.ORIGINALS, job.original["key"]),
            await unpublished_events(runtime),
        )
    finally:
        await runtime.stop()


def _sweep(env: dict[str, str], command: list[str] = CRONJOB_COMMAND) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "--publish-timeout", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_sweep_expires_what_is_due_publishes_it_and_says_how_many(deployment: Deployment) -> None:
    job = asyncio.run(_old_job(deployment.settings))

    swept = _sweep(deployment.env)

    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.strip() == "1 job expired"
    found, original_left, unpublished = asyncio.run(_after_the_sweep(deployment.settings, job))
    assert found is not None
    assert (found.state, found.original, original_left, unpublished) == ("expired", {}, False, 0)
    heard = asyncio.run(_collect(deployment.settings.bus_url, 1.0))
    assert [(event.type, event.subject) for event in heard if event.type == "job.expired"] == [
        ("job.expired", str(job.id))
    ]


@pytest.mark.parametrize("command", [CRONJOB_COMMAND, CLI_COMMAND], ids=["cronjob", "cli"])
def test_the_sweep_fails_loudly_when_the_database_cannot_be_reached(
    deployment: Deployment, command: list[str]
) -> None:
    unreachable = {
        **deployment.env,
        "CHROMALINE_DATABASE_URL": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing",
    }
    swept = _sweep(unreachable, command)
    assert swept.returncode == 1
    assert "retention sweep failed" in swept.stderr
    assert swept.stdout == ""
