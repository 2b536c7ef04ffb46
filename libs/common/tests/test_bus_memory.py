"""The in-memory adapter's own parts: topic matching, the named brokers behind memory:// and the factory."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from chromaline.common.bus.base import PublishError, RetryPolicy
from chromaline.common.bus.factory import create_bus
from chromaline.common.bus.memory import DELIVERY_LIMIT_REASON, InMemoryBroker, MemoryBus, topic_matches
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.events.envelope import RawEnvelope


def envelope(event_type: str = "image.uploaded") -> RawEnvelope:
    return RawEnvelope(
        type=event_type,
        schema_version=1,
        producer="tests",
        subject="job",
        correlation_id=uuid.uuid4().hex,
        data={},
    )


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("image.uploaded", "image.uploaded", True),
        ("image.uploaded", "image.detected", False),
        ("image.*", "image.uploaded", True),
        ("image.*", "image", False),
        ("image.*", "image.uploaded.late", False),
        ("*.uploaded", "image.uploaded", True),
        ("#", "image.uploaded", True),
        ("#", "", True),
        ("image.#", "image", True),
        ("image.#", "image.uploaded.late", True),
        ("image.#", "report.ready", False),
        ("#.failed", "job.failed", True),
        ("#.failed", "job.failed.now", False),
        ("image.#.late", "image.late", True),
        ("image.#.late", "image.a.b.late", True),
        ("*.*", "image", False),
    ],
)
def test_topic_matching_follows_amqp_rules(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


async def test_buses_created_with_the_same_memory_url_share_their_queues() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    consumer = create_bus(f"memory://{name}", service="consumer")
    producer = create_bus(f"memory://{name}", service="producer")
    stranger = create_bus(f"memory://other-{name}", service="stranger")
    received: list[RawEnvelope] = []

    async def record(event: RawEnvelope) -> None:
        received.append(event)

    for bus in (consumer, producer, stranger):
        await bus.start()
    await consumer.subscribe("detector", ["image.uploaded"], record)
    sent = envelope()

    await producer.publish(sent)
    with pytest.raises(PublishError):
        await stranger.publish(envelope())

    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == [sent]
    for bus in (consumer, producer, stranger):
        await bus.close()


def test_factory_chooses_the_adapter_by_url_scheme() -> None:
    assert isinstance(create_bus("memory://", service="s"), MemoryBus)
    for url in ("amqp://guest:guest@127.0.0.1:5672/", "amqps://broker.example/"):
        bus = create_bus(url, service="s", exchange="events")
        assert isinstance(bus, RabbitMqBus)
        assert bus.exchange == "events"
    with pytest.raises(ValueError, match="kafka"):
        create_bus("kafka://broker", service="s")


async def test_message_that_keeps_interrupting_its_handler_is_dead_lettered() -> None:
    bus = MemoryBus(service="s", broker=InMemoryBroker())
    deliveries = 0

    async def always_interrupted(event: RawEnvelope) -> None:
        nonlocal deliveries
        deliveries += 1
        raise asyncio.CancelledError

    await bus.subscribe("poison", ["image.uploaded"], always_interrupted, retry=RetryPolicy(2, (0.01,)))
    await bus.publish(envelope())

    for _ in range(100):
        if await bus.dead_letters("poison"):
            break
        await asyncio.sleep(0.01)
    dead = await bus.dead_letters("poison")
    assert [d.reason for d in dead] == [DELIVERY_LIMIT_REASON]
    assert deliveries == 3
    await bus.close()


async def test_closed_bus_refuses_to_publish() -> None:
    bus = MemoryBus(service="s", broker=InMemoryBroker())
    await bus.start()
    await bus.close()

    with pytest.raises(PublishError, match="closed"):
        await bus.publish(envelope())
