"""What only the RabbitMQ adapter has: its wire format, its topology and surviving a lost connection."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import aio_pika
import pytest

from chromaline.common.bus import codec
from chromaline.common.bus.base import PublishError, RetryPolicy
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.testing.events import bare_envelope
from chromaline.common.testing.rabbitmq import RabbitAdmin, RabbitBusFactory, vhost_of
from chromaline.common.testing.waiting import wait_until

WAIT = 30.0


def envelope(event_type: str = "image.uploaded") -> RawEnvelope:
    return bare_envelope(event_type, schema_version=3, n=1)


async def test_published_message_carries_the_envelope_and_its_properties(
    rabbit_bus_factory: RabbitBusFactory, isolated_amqp_url: str
) -> None:
    bus = await rabbit_bus_factory(service="producer")
    sent = envelope()
    async with await aio_pika.connect(isolated_amqp_url) as connection:
        channel = await connection.channel()
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(bus.exchange, "#")

        await bus.publish(sent)

        message = await tap.get(timeout=5)
        await message.ack()
    assert RawEnvelope.model_validate_json(message.body) == sent
    assert message.routing_key == "image.uploaded"
    assert message.content_type == codec.CONTENT_TYPE
    assert message.message_id == str(sent.event_id)
    assert message.type == "image.uploaded"
    assert message.correlation_id == sent.correlation_id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.headers[codec.SCHEMA_VERSION_HEADER] == 3
    assert message.app_id == "producer"


async def test_subscribing_declares_quorum_queues_with_delivery_limit_retries_and_dead_letters(
    rabbit_bus_factory: RabbitBusFactory, rabbitmq_admin: RabbitAdmin, isolated_amqp_url: str
) -> None:
    bus = await rabbit_bus_factory()

    async def ignore(event: RawEnvelope) -> None:
        return None

    await bus.subscribe("detector", ["image.uploaded"], ignore, retry=RetryPolicy(3, (0.05, 0.1)))

    listing = rabbitmq_admin.run(
        ["list_queues", "-p", vhost_of(isolated_amqp_url), "name", "type", "arguments", "--formatter", "json"]
    )
    queues = {
        queue["name"]: (queue["type"], {name: value for name, _, value in queue["arguments"]})
        for queue in json.loads(listing)
    }
    dead_lettering = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    assert queues == {
        "detector": (
            "quorum",
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": 3,
                "x-dead-letter-exchange": f"{bus.exchange}.dead-letter",
                "x-dead-letter-routing-key": "detector",
                **dead_lettering,
            },
        ),
        "detector.dlq": ("quorum", {"x-queue-type": "quorum"}),
        **{
            f"detector.retry.{ttl}": (
                "quorum",
                {
                    "x-queue-type": "quorum",
                    "x-message-ttl": ttl,
                    "x-dead-letter-exchange": f"{bus.exchange}.redeliver",
                    "x-dead-letter-routing-key": "detector",
                    **dead_lettering,
                },
            )
            for ttl in (50, 100)
        },
    }


async def test_message_that_keeps_interrupting_its_consumer_is_dead_lettered_by_the_broker(
    rabbit_bus_factory: RabbitBusFactory,
) -> None:
    bus = await rabbit_bus_factory()
    deliveries = 0

    async def always_interrupted(event: RawEnvelope) -> None:
        nonlocal deliveries
        deliveries += 1
        raise asyncio.CancelledError

    await bus.subscribe("poison", ["image.uploaded"], always_interrupted, retry=RetryPolicy(2, (0.05,)))
    sent = envelope()

    await bus.publish(sent)

    await wait_until(lambda: deliveries >= 3, within=WAIT)
    dead = await bus.dead_letters("poison")
    for _ in range(100):
        if dead:
            break
        await asyncio.sleep(0.05)
        dead = await bus.dead_letters("poison")
    assert [d.id for d in dead] == [str(sent.event_id)]
    assert dead[0].reason == "dead-lettered by the broker: delivery_limit"
    assert dead[0].routing_key == "image.uploaded"
    assert deliveries == 3


async def _publish_until_confirmed(publish: Callable[[], Awaitable[None]], attempts: int = 100) -> None:
    for _ in range(attempts):
        try:
            await publish()
        except PublishError:
            await asyncio.sleep(0.1)
        else:
            return
    raise AssertionError("publish never confirmed")


@pytest.mark.slow
async def test_every_message_is_handled_although_the_broker_closes_the_connections(
    rabbit_bus_factory: RabbitBusFactory, rabbitmq_admin: RabbitAdmin, isolated_amqp_url: str
) -> None:
    consumer = await rabbit_bus_factory(service="consumer", reconnect_interval=0.2)
    producer = await rabbit_bus_factory(service="producer", reconnect_interval=0.2)
    handled: Counter[uuid.UUID] = Counter()

    async def handle(event: RawEnvelope) -> None:
        await asyncio.sleep(0.01)
        handled[event.event_id] += 1

    await consumer.subscribe(
        "stream", ["image.uploaded"], handle, retry=RetryPolicy(10, (0.05,)), prefetch=10
    )
    stream = [envelope() for _ in range(200)]
    connections_closed = asyncio.Event()

    async def publish_stream() -> None:
        """Publishes the second half only once the connections were closed, so they close mid-stream."""
        for position, event in enumerate(stream):
            if position == len(stream) // 2:
                await connections_closed.wait()
            await _publish_until_confirmed(functools.partial(producer.publish, event, timeout=5.0))
            await asyncio.sleep(0.005)

    publishing = asyncio.create_task(publish_stream())
    await wait_until(lambda: len(handled) >= 50, within=WAIT)
    closed = await asyncio.to_thread(rabbitmq_admin.close_connections, vhost_of(isolated_amqp_url), "test")
    connections_closed.set()
    assert closed == 2

    await publishing
    await wait_until(lambda: len(handled) == len(stream), within=60)
    assert set(handled) == {event.event_id for event in stream}
    assert await consumer.dead_letters("stream") == []
