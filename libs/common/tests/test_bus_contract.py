"""The delivery rules of the bus port, checked against every adapter (in-memory and RabbitMQ)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import pytest
import structlog

from chromaline.common import correlation
from chromaline.common.bus.base import DeadLetter, EventBus, PermanentError, PublishError, RetryPolicy
from chromaline.common.bus.memory import InMemoryBroker, MemoryBus
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.testing.events import bare_envelope as envelope
from chromaline.common.testing.waiting import wait_until

FAST_RETRY = RetryPolicy(max_attempts=3, delays=(0.05, 0.1))
WAIT = 20.0


@dataclass
class Harness:
    """Starts buses of one adapter kind sharing one broker, and injects raw bytes as a foreign producer."""

    kind: str
    amqp_url: str = ""
    prefix: str = ""
    broker: InMemoryBroker = field(default_factory=InMemoryBroker)
    buses: list[EventBus] = field(default_factory=list)

    def queue(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def new_bus(self, service: str = "test") -> EventBus:
        bus: EventBus
        if self.kind == "memory":
            bus = MemoryBus(service=service, broker=self.broker, shutdown_grace=5.0)
        else:
            bus = RabbitMqBus(
                self.amqp_url, service=service, exchange=f"{self.prefix}events", shutdown_grace=5.0
            )
        await bus.start()
        self.buses.append(bus)
        return bus

    async def publish_raw(self, bus: EventBus, routing_key: str, body: bytes) -> None:
        if isinstance(bus, MemoryBus):
            await bus.publish_raw(routing_key, body)
            return
        assert isinstance(bus, RabbitMqBus)
        async with await aio_pika.connect(self.amqp_url) as connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(bus.exchange)
            await exchange.publish(aio_pika.Message(body), routing_key, mandatory=True)

    async def close_all(self) -> None:
        for bus in self.buses:
            await bus.close()


@pytest.fixture(params=["memory", "rabbitmq"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        built = Harness("memory")
    else:
        prefix = f"{request.getfixturevalue('unique_name')}."
        built = Harness("rabbitmq", amqp_url=request.getfixturevalue("isolated_amqp_url"), prefix=prefix)
    yield built
    await built.close_all()


class Recorder:
    """A handler that records what it saw and fails as told."""

    def __init__(self, failures: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.seen: list[RawEnvelope] = []
        self.handled: list[RawEnvelope] = []
        self.bound_ids: list[tuple[str | None, str | None]] = []
        self.log_context: list[tuple[object, object, object]] = []

    async def __call__(self, event: RawEnvelope) -> None:
        self.seen.append(event)
        self.bound_ids.append((correlation.current_correlation_id(), correlation.current_causation_id()))
        bound = structlog.contextvars.get_contextvars()
        self.log_context.append((bound.get("correlation_id"), bound.get("event_id"), bound.get("event_type")))
        if len(self.seen) <= self.failures:
            raise self.error(f"failure {len(self.seen)} of {event.type}")
        self.handled.append(event)


async def test_published_event_reaches_its_subscriber_with_correlation_bound(harness: Harness) -> None:
    consumer = await harness.new_bus("consumer")
    producer = await harness.new_bus("producer")
    recorder = Recorder()
    await consumer.subscribe(harness.queue("detector"), ["image.uploaded"], recorder, retry=FAST_RETRY)
    sent = envelope(filename="a.jpg")

    await producer.publish(sent)

    await wait_until(lambda: len(recorder.handled) == 1)
    assert recorder.handled == [sent]
    assert recorder.bound_ids == [(sent.correlation_id, str(sent.event_id))]
    assert recorder.log_context == [(sent.correlation_id, str(sent.event_id), "image.uploaded")]
    assert correlation.current_correlation_id() is None


async def test_topic_patterns_route_each_key_to_the_matching_queues(harness: Harness) -> None:
    bus = await harness.new_bus()
    exact, one_word, any_words = Recorder(), Recorder(), Recorder()
    await bus.subscribe(harness.queue("exact"), ["image.detected"], exact)
    await bus.subscribe(harness.queue("one"), ["image.*"], one_word)
    await bus.subscribe(harness.queue("many"), ["report.#"], any_words)

    for key in ("image.uploaded", "image.detected", "report", "report.ready.pdf"):
        await bus.publish(envelope(key))
    with pytest.raises(PublishError):
        await bus.publish(envelope("image.detected.late"), timeout=5.0)

    await wait_until(lambda: len(exact.handled) + len(one_word.handled) + len(any_words.handled) == 5)
    assert [e.type for e in exact.handled] == ["image.detected"]
    assert sorted(e.type for e in one_word.handled) == ["image.detected", "image.uploaded"]
    assert sorted(e.type for e in any_words.handled) == ["report", "report.ready.pdf"]


async def test_unroutable_publish_raises(harness: Harness) -> None:
    bus = await harness.new_bus()
    await bus.subscribe(harness.queue("detector"), ["image.uploaded"], Recorder())

    with pytest.raises(PublishError):
        await bus.publish(envelope("nobody.listens"), timeout=5.0)


async def test_failing_handler_is_retried_then_dead_lettered_and_replayed(harness: Harness) -> None:
    bus = await harness.new_bus()
    queue = harness.queue("corrector")
    recorder = Recorder(failures=FAST_RETRY.max_attempts)
    await bus.subscribe(queue, ["image.detected"], recorder, retry=FAST_RETRY)
    sent = envelope("image.detected")

    await bus.publish(sent)

    await wait_until(lambda: len(recorder.seen) == FAST_RETRY.max_attempts)
    dead = await _await_dead_letters(bus, queue, count=1)
    assert [(d.id, d.queue, d.routing_key) for d in dead] == [(str(sent.event_id), queue, "image.detected")]
    assert "RuntimeError: failure 3 of image.detected" in dead[0].reason
    assert RawEnvelope.model_validate_json(dead[0].body) == sent
    assert await bus.dead_letters(queue) == dead, "listing must not remove dead letters"
    assert recorder.handled == []

    assert await bus.replay_dead_letter(queue, dead[0].id)

    await wait_until(lambda: len(recorder.handled) == 1)
    assert recorder.handled == [sent]
    assert len(recorder.seen) == FAST_RETRY.max_attempts + 1
    assert await bus.dead_letters(queue) == []
    assert not await bus.replay_dead_letter(queue, dead[0].id)


async def test_permanent_error_is_dead_lettered_at_once(harness: Harness) -> None:
    bus = await harness.new_bus()
    queue = harness.queue("reporter")
    recorder = Recorder(failures=10, error=PermanentError)
    await bus.subscribe(queue, ["image.corrected"], recorder, retry=FAST_RETRY)

    await bus.publish(envelope("image.corrected"))
    await bus.publish(envelope("image.corrected"))

    dead = await _await_dead_letters(bus, queue, count=2)
    assert len(recorder.seen) == 2
    assert sorted(d.reason for d in dead) == [
        "PermanentError: failure 1 of image.corrected",
        "PermanentError: failure 2 of image.corrected",
    ]
    assert len(await bus.dead_letters(queue, limit=1)) == 1


async def test_undecodable_message_is_dead_lettered_without_reaching_the_handler(harness: Harness) -> None:
    bus = await harness.new_bus()
    queue = harness.queue("detector")
    recorder = Recorder()
    await bus.subscribe(queue, ["image.uploaded"], recorder, retry=FAST_RETRY)

    await harness.publish_raw(bus, "image.uploaded", b"\xff not an envelope")

    dead = await _await_dead_letters(bus, queue, count=1)
    assert dead[0].body == b"\xff not an envelope"
    assert dead[0].routing_key == "image.uploaded"
    assert dead[0].reason.startswith("UndecodableMessage")
    assert recorder.seen == []


async def test_interrupted_handler_gets_the_message_again(harness: Harness) -> None:
    bus = await harness.new_bus()
    deliveries: Counter[uuid.UUID] = Counter()
    completed: list[uuid.UUID] = []

    async def interrupted_once(event: RawEnvelope) -> None:
        deliveries[event.event_id] += 1
        if deliveries[event.event_id] == 1:
            raise asyncio.CancelledError
        completed.append(event.event_id)

    await bus.subscribe(harness.queue("gateway"), ["image.uploaded"], interrupted_once, retry=FAST_RETRY)
    sent = envelope()

    await bus.publish(sent)

    await wait_until(lambda: completed == [sent.event_id])
    assert deliveries[sent.event_id] == 2


async def test_close_waits_for_the_running_handler_which_is_then_acknowledged(harness: Harness) -> None:
    consumer = await harness.new_bus("consumer")
    observer = await harness.new_bus("observer")
    queue = harness.queue("slow")
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: RawEnvelope) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    await consumer.subscribe(queue, ["image.uploaded"], slow, retry=FAST_RETRY)
    await observer.publish(envelope())
    await asyncio.wait_for(started.wait(), WAIT)

    await consumer.close()

    assert finished.is_set()
    assert await observer.queue_depths([queue]) == {queue: 0}


async def test_prefetch_bounds_the_handlers_running_at_once(harness: Harness) -> None:
    bus = await harness.new_bus()
    running = 0
    most_at_once = 0
    handled = 0

    async def tracked(event: RawEnvelope) -> None:
        nonlocal running, most_at_once, handled
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.05)
        running -= 1
        handled += 1

    await bus.subscribe(harness.queue("bounded"), ["image.uploaded"], tracked, prefetch=2)
    for _ in range(8):
        await bus.publish(envelope())

    await wait_until(lambda: handled == 8)
    assert 1 <= most_at_once <= 2


async def test_queue_depths_count_waiting_messages(harness: Harness) -> None:
    bus = await harness.new_bus()
    queue = harness.queue("depth")
    release = asyncio.Event()
    handled = 0

    async def blocked(event: RawEnvelope) -> None:
        nonlocal handled
        await release.wait()
        handled += 1

    await bus.subscribe(queue, ["image.uploaded"], blocked, prefetch=1)
    for _ in range(3):
        await bus.publish(envelope())

    missing = harness.queue("missing")
    assert await _await_depth(bus, queue, 2) == {queue: 2}
    assert await bus.queue_depths([missing]) == {missing: 0}
    release.set()
    await wait_until(lambda: handled == 3)
    assert await bus.queue_depths([queue]) == {queue: 0}


async def test_ping_answers_while_started(harness: Harness) -> None:
    bus = await harness.new_bus()

    assert await bus.ping()
    await bus.close()
    assert not await bus.ping()


async def _await_dead_letters(bus: EventBus, queue: str, count: int) -> list[DeadLetter]:
    deadline = time.monotonic() + WAIT
    while True:
        dead = await bus.dead_letters(queue)
        if len(dead) >= count or time.monotonic() > deadline:
            assert len(dead) == count
            return dead
        await asyncio.sleep(0.05)


async def _await_depth(bus: EventBus, queue: str, depth: int) -> dict[str, int]:
    deadline = time.monotonic() + WAIT
    while True:
        depths = await bus.queue_depths([queue])
        if depths[queue] == depth or time.monotonic() > deadline:
            return depths
        await asyncio.sleep(0.05)
