"""Handlers learn who published the message they handle, through retries and replays alike."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import aio_pika
import pytest

from chromaline.common.bus.base import PUBLISHER_HEADER, RetryPolicy, current_publisher
from chromaline.common.bus.memory import LOCAL_USER, InMemoryBroker, MemoryBus
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.testing.rabbitmq import RabbitAdmin, vhost_of

FAST_RETRY = RetryPolicy(max_attempts=3, delays=(0.05, 0.1))
WAIT = 20.0


def envelope() -> RawEnvelope:
    return RawEnvelope(
        type="image.uploaded",
        schema_version=1,
        producer="tests",
        subject=uuid.uuid4().hex,
        correlation_id=uuid.uuid4().hex,
        data={},
    )


class Recorder:
    """A handler that fails its first ``failures`` deliveries and records each delivery's publisher."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.publishers: list[str | None] = []
        self.settled = asyncio.Event()

    async def __call__(self, envelope: RawEnvelope) -> None:
        self.publishers.append(current_publisher())
        if len(self.publishers) <= self.failures:
            raise RuntimeError("not yet")
        self.settled.set()


async def test_the_memory_bus_names_its_own_user_as_publisher() -> None:
    bus = MemoryBus(service="test", broker=InMemoryBroker())
    recorder = Recorder()
    await bus.subscribe("detector", ["image.uploaded"], recorder, retry=FAST_RETRY)
    await bus.publish(envelope())
    await asyncio.wait_for(recorder.settled.wait(), WAIT)
    await bus.close()
    assert recorder.publishers == [LOCAL_USER]
    assert current_publisher() is None


async def test_a_foreign_publisher_is_kept_through_retries_dead_letters_and_replays() -> None:
    bus = MemoryBus(service="test", broker=InMemoryBroker())
    recorder = Recorder(failures=FAST_RETRY.max_attempts)
    await bus.subscribe("detector", ["image.uploaded"], recorder, retry=FAST_RETRY)
    message_id = await bus.publish_raw(
        "image.uploaded", envelope().model_dump_json().encode(), publisher="acme"
    )
    for _ in range(200):
        if await bus.dead_letters("detector"):
            break
        await asyncio.sleep(0.02)
    [letter] = await bus.dead_letters("detector")
    assert letter.id == message_id
    assert await bus.replay_dead_letter("detector", message_id)
    await asyncio.wait_for(recorder.settled.wait(), WAIT)
    await bus.close()
    assert recorder.publishers == ["acme"] * (FAST_RETRY.max_attempts + 1)


@pytest.fixture
async def partner_user(rabbitmq_admin: RabbitAdmin, isolated_amqp_url: str) -> AsyncIterator[str]:
    """A broker user of its own on the test's virtual host; its URL, with its password in it."""
    name = f"partner-{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(12)
    rabbitmq_admin.run(["add_user", name, password])
    rabbitmq_admin.run(["set_permissions", "-p", vhost_of(isolated_amqp_url), name, ".*", ".*", ".*"])
    parts = urlsplit(isolated_amqp_url)
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    yield parts._replace(netloc=netloc).geturl()
    rabbitmq_admin.run(["delete_user", name])


async def _publish_as(url: str, exchange: str, *, user_id: str | None, headers: dict[str, str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange)
        await target.publish(
            aio_pika.Message(envelope().model_dump_json().encode(), user_id=user_id, headers=dict(headers)),
            "image.uploaded",
            mandatory=True,
        )


@pytest.mark.integration
async def test_rabbitmq_hands_handlers_the_broker_checked_user_id_through_retries(
    isolated_amqp_url: str, partner_user: str, unique_name: str
) -> None:
    bus = RabbitMqBus(
        isolated_amqp_url, service="detector", exchange=f"{unique_name}.events", shutdown_grace=5
    )
    await bus.start()
    try:
        recorder = Recorder(failures=1)
        await bus.subscribe(unique_name, ["image.uploaded"], recorder, retry=FAST_RETRY)
        partner = urlsplit(partner_user).username
        await _publish_as(partner_user, bus.exchange, user_id=partner, headers={PUBLISHER_HEADER: "globex"})
        await asyncio.wait_for(recorder.settled.wait(), WAIT)
        assert recorder.publishers == [partner, partner]

        unnamed = Recorder(failures=1)
        await bus.subscribe(f"{unique_name}-b", ["image.uploaded"], unnamed, retry=FAST_RETRY)
        await bus.publish(envelope())
        await asyncio.wait_for(unnamed.settled.wait(), WAIT)
        assert unnamed.publishers == [bus.user, bus.user]
    finally:
        await bus.close()


@pytest.mark.integration
async def test_a_message_without_user_id_cannot_borrow_an_identity_through_the_header(
    isolated_amqp_url: str, unique_name: str
) -> None:
    bus = RabbitMqBus(
        isolated_amqp_url, service="detector", exchange=f"{unique_name}.events", shutdown_grace=5
    )
    await bus.start()
    try:
        recorder = Recorder(failures=1)
        await bus.subscribe(unique_name, ["image.uploaded"], recorder, retry=FAST_RETRY)
        await _publish_as(isolated_amqp_url, bus.exchange, user_id=None, headers={PUBLISHER_HEADER: "acme"})
        await asyncio.wait_for(recorder.settled.wait(), WAIT)
        assert recorder.publishers == [None, None]
    finally:
        await bus.close()
