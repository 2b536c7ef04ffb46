"""Reliability through the real broker: partners on the bus, killed workers, dead letters."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aio_pika
import aiormq
import asyncpg
import httpx
import pytest

from chromaline.common.blobs import buckets
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.events.contracts import BlobRef, ImageUploaded, JobOptions
from chromaline.common.events.envelope import make_envelope

from .test_pipeline import chart_photo, upload, wait_batch

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(600)]

EXCHANGE = "chromaline"


def _partner(system: Any, kind: str) -> tuple[str, str]:
    """The broker user and AMQP URL of the system's partner (or stranger) of this ``kind``."""
    [(name, url)] = [(name, url) for name, url in system.partners.items() if name.startswith(f"{kind}-")]
    return name, url


async def _publish_as_partner(
    system: Any, photo: bytes, job_id: uuid.UUID, results: list[dict[str, Any]]
) -> None:
    """Store the photo, publish image.uploaded straight to RabbitMQ as a partner, collect the outcomes."""
    partner, partner_url = _partner(system, "acme")
    store = create_blob_store(system.blob_url)
    key = f"{partner}/{job_id}.jpg"
    await store.put_bytes(buckets.ORIGINALS, key, photo, content_type="image/jpeg")
    await store.close()
    event = ImageUploaded(
        job_id=job_id, filename="partner.jpg", original=BlobRef(bucket=buckets.ORIGINALS, key=key)
    )
    envelope = make_envelope("partner-acme", str(job_id), event)
    connection = await aio_pika.connect_robust(partner_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        queue = await channel.declare_queue(f"{partner}.results", exclusive=True)
        for key_name in ("image.corrected", "report.ready", "processing.failed"):
            await queue.bind(exchange, key_name)
        await exchange.publish(
            aio_pika.Message(
                envelope.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(envelope.event_id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=partner,
            ),
            routing_key="image.uploaded",
            timeout=10,
        )
        deadline = time.monotonic() + 180
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    body = json.loads(message.body)
                    if body["subject"] == str(job_id):
                        results.append(body)
                if any(item["type"] in ("report.ready", "processing.failed") for item in results):
                    return
                if time.monotonic() > deadline:
                    return


def test_a_partner_publishes_on_the_bus_and_consumes_the_results(distributed_system: Any) -> None:
    job_id = uuid.uuid4()
    results: list[dict[str, Any]] = []
    asyncio.run(
        asyncio.wait_for(_publish_as_partner(distributed_system, chart_photo(20), job_id, results), 200)
    )
    types = [item["type"] for item in results]
    assert types == ["image.corrected", "report.ready"], results
    corrected = results[0]
    assert corrected["data"]["delta_e2000_after"]["mean"] < corrected["data"]["delta_e2000_before"]["mean"]
    assert corrected["correlation_id"] == results[1]["correlation_id"]


async def _duplicates(database_url: str) -> dict[str, list[Any]]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        found = {}
        for schema, routing_key in (
            ("detector", "chart.detected"),
            ("corrector", "image.corrected"),
            ("reporter", "report.ready"),
        ):
            rows = await connection.fetch(
                f"SELECT payload->>'subject' AS job, count(*) FROM {schema}.outbox "
                "WHERE routing_key = $1 GROUP BY 1 HAVING count(*) > 1",
                routing_key,
            )
            found[schema] = [dict(row) for row in rows]
        return found
    finally:
        await connection.close()


def _wait_for_state(
    client: httpx.Client, batch_id: str, states: tuple[str, ...], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.get(f"/api/v1/batches/{batch_id}").json()
        if any(job["state"] in states for job in batch["jobs"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no job reached {states}")


def test_workers_killed_mid_batch_lose_nothing_and_do_nothing_twice(distributed_system: Any) -> None:
    processes = distributed_system.processes
    with distributed_system.client() as client:
        batch = upload(client, [(f"kill-{seed}.jpg", chart_photo(200 + seed)) for seed in range(8)])
        _wait_for_state(client, batch["id"], ("correcting", "done"))
        processes["detector"].kill()
        processes["corrector"].kill()
        time.sleep(1.0)
        for name in ("detector", "corrector"):
            processes[name].start()
        _wait_for_state(client, batch["id"], ("done",))
        processes["reporter"].kill()
        processes["reporter"].start()
        for name in ("detector", "corrector", "reporter"):
            processes[name].wait_ready()
        finished = wait_batch(client, batch["id"], timeout=400)
    assert finished["states"] == {"done": 8}, finished["states"]
    assert [job["report"]["state"] for job in finished["jobs"]] == ["ready"] * 8
    assert asyncio.run(_duplicates(distributed_system.database_url)) == {
        "detector": [],
        "corrector": [],
        "reporter": [],
    }


def test_a_platform_operator_lists_and_replays_dead_letters(distributed_system: Any) -> None:
    async def publish_garbage() -> str:
        connection = await aio_pika.connect_robust(distributed_system.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.get_exchange(EXCHANGE)
            message_id = uuid.uuid4().hex
            await exchange.publish(
                aio_pika.Message(b"{not json", message_id=message_id),
                routing_key="image.uploaded",
                timeout=10,
            )
            return message_id

    message_id = asyncio.run(publish_garbage())
    with distributed_system.client() as organisation_admin:
        refused = organisation_admin.get("/api/v1/admin/dead-letters")
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    with distributed_system.client(distributed_system.platform_operator()) as client:
        deadline = time.monotonic() + 60
        letters: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            items = client.get("/api/v1/admin/dead-letters").json()["items"]
            letters = [item for item in items if item["id"] == message_id]
            if letters:
                break
            time.sleep(0.5)
        assert letters, "the undecodable message never reached a dead-letter queue"
        letter = letters[0]
        assert letter["queue"] == "detector"
        assert letter["routing_key"] == "image.uploaded"
        assert letter["body"] == "{not json"
        assert letter["reason"]
        replayed = client.post(f"/api/v1/admin/dead-letters/{letter['queue']}/{letter['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        missing = client.post(f"/api/v1/admin/dead-letters/detector/{uuid.uuid4().hex}/replay")
        assert missing.status_code == 404
        assert missing.json()["code"] == "dead_letter_not_found"


async def _publish_uploaded(
    url: str, user_id: str | None, routing_key: str = "image.uploaded", profile: BlobRef | None = None
) -> uuid.UUID:
    """Publish an image.uploaded envelope through ``url``'s connection, stamped with ``user_id``."""
    job_id = uuid.uuid4()
    event = ImageUploaded(
        job_id=job_id,
        filename="x.jpg",
        original=BlobRef(bucket=buckets.ORIGINALS, key=f"{job_id}/x.jpg"),
        options=JobOptions(profile=profile),
    )
    envelope = make_envelope("partner", str(job_id), event)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                envelope.model_dump_json().encode(), message_id=str(envelope.event_id), user_id=user_id
            ),
            routing_key=routing_key,
            timeout=10,
        )
    return envelope.event_id


def test_the_broker_refuses_a_partner_posing_as_another(distributed_system: Any) -> None:
    _, acme_url = _partner(distributed_system, "acme")
    globex, _ = _partner(distributed_system, "globex")
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="user_id"):
        asyncio.run(_publish_uploaded(acme_url, globex))


def test_a_partner_may_publish_only_image_uploaded(distributed_system: Any) -> None:
    acme, acme_url = _partner(distributed_system, "acme")
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        asyncio.run(_publish_uploaded(acme_url, acme, routing_key="report.ready"))


async def _audited_rejections(database_url: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await connection.fetch("SELECT details FROM auth.audit_log WHERE action = 'partner.rejected'")
        return [json.loads(row["details"]) for row in rows]
    finally:
        await connection.close()


def test_a_photo_from_no_known_partner_is_dead_lettered_and_audited(distributed_system: Any) -> None:
    stranger, stranger_url = _partner(distributed_system, "stranger")
    event_id = asyncio.run(_publish_uploaded(stranger_url, stranger))
    with distributed_system.client(distributed_system.platform_operator()) as client:
        deadline = time.monotonic() + 60
        letters: list[dict[str, Any]] = []
        audited: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not (letters and audited):
            items = client.get("/api/v1/admin/dead-letters").json()["items"]
            letters = [item for item in items if item["id"] == str(event_id)]
            audited = [
                entry
                for entry in asyncio.run(_audited_rejections(distributed_system.database_url))
                if entry["event_id"] == str(event_id)
            ]
            time.sleep(0.5)
    assert letters, "the stranger's photo never reached a dead-letter queue"
    assert letters[0]["queue"] == "detector"
    assert stranger in letters[0]["reason"]
    assert audited, "no partner.rejected entry in the audit log"
    assert audited[0]["publisher"] == stranger


def test_a_profile_job_from_no_known_partner_is_refused_by_every_consumer(distributed_system: Any) -> None:
    """Profile jobs skip the detector's work but not its check: the corrector refuses them too."""
    stranger, stranger_url = _partner(distributed_system, "stranger")
    profile = BlobRef(bucket=buckets.CORRECTED, key="any/profile.json")
    event_id = asyncio.run(_publish_uploaded(stranger_url, stranger, profile=profile))
    with distributed_system.client(distributed_system.platform_operator()) as client:
        deadline = time.monotonic() + 60
        queues: set[str] = set()
        while time.monotonic() < deadline and queues != {"detector", "corrector"}:
            items = client.get("/api/v1/admin/dead-letters").json()["items"]
            queues = {item["queue"] for item in items if item["id"] == str(event_id)}
            time.sleep(0.5)
    assert queues == {"detector", "corrector"}
