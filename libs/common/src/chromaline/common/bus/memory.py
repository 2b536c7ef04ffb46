"""The event bus inside one process, with the same delivery rules as RabbitMQ.

Used when every service runs in one process (``memory://``) and by unit tests. Messages travel as
bytes exactly as on RabbitMQ, so an undecodable body is dead-lettered here too. Nothing survives the
process: queues live in an :class:`InMemoryBroker`, shared by the buses created with the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from chromaline.common import metrics
from chromaline.common.bus import codec
from chromaline.common.bus.base import (
    PUBLISHER_HEADER,
    DeadLetter,
    EventBus,
    Handler,
    PermanentError,
    PublishError,
    RetryPolicy,
    delivered_by,
)
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.logging import get_logger

log = get_logger(__name__)

DELIVERY_LIMIT_REASON = "dead-lettered by the broker: delivery_limit"
LOCAL_USER = "chromaline"
"""The publisher a :class:`MemoryBus` stamps on its messages unless told another."""


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` stands for exactly one dot-separated word, ``#`` for zero or more."""
    return _words_match(pattern.split("."), routing_key.split("."))


def _words_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _words_match(rest, words[1:])


@dataclass(frozen=True)
class _Message:
    body: bytes
    routing_key: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    publisher: str | None = None


class _MemoryQueue:
    """A durable queue's ready messages and its dead-letter queue."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bindings: set[str] = set()
        self.ready: deque[_Message] = deque()
        self.dead: list[DeadLetter] = []
        self._watchers: set[Callable[[], None]] = set()

    def put(self, message: _Message) -> None:
        self.ready.append(message)
        for wake in list(self._watchers):
            wake()

    def watch(self, wake: Callable[[], None]) -> None:
        self._watchers.add(wake)

    def unwatch(self, wake: Callable[[], None]) -> None:
        self._watchers.discard(wake)

    def dead_letter(self, message: _Message, reason: str) -> None:
        self.dead.append(
            DeadLetter(
                id=message.message_id,
                queue=self.name,
                routing_key=message.routing_key,
                reason=reason,
                body=message.body,
                dead_lettered_at=datetime.now(UTC),
                headers=_headers_naming_publisher(message),
            )
        )
        metrics.EVENTS_DEAD_LETTERED.labels(self.name, message.routing_key).inc()
        log.warning("bus.dead_lettered", queue=self.name, message_id=message.message_id, reason=reason)


def _headers_naming_publisher(message: _Message) -> dict[str, str]:
    headers = {name: value for name, value in message.headers.items() if name != PUBLISHER_HEADER}
    if message.publisher is not None:
        headers[PUBLISHER_HEADER] = message.publisher
    return headers


class InMemoryBroker:
    """One topic exchange and its queues, shared by every :class:`MemoryBus` built on it."""

    def __init__(self) -> None:
        self.queues: dict[str, _MemoryQueue] = {}

    @classmethod
    def named(cls, name: str) -> InMemoryBroker:
        """The broker every ``memory://<name>`` bus of this process shares."""
        return _named_brokers.setdefault(name, cls())

    def declare(self, name: str, routing_keys: Sequence[str]) -> _MemoryQueue:
        queue = self.queues.setdefault(name, _MemoryQueue(name))
        queue.bindings.update(routing_keys)
        return queue

    def route(self, message: _Message) -> None:
        targets = [
            queue
            for queue in self.queues.values()
            if any(topic_matches(pattern, message.routing_key) for pattern in queue.bindings)
        ]
        if not targets:
            raise PublishError(f"no queue is bound for routing key {message.routing_key!r}")
        for queue in targets:
            queue.put(message)


_named_brokers: dict[str, InMemoryBroker] = {}
"""The process-wide registry behind ``memory://<name>``."""


class _Consumer:
    """Takes messages off one queue, at most ``prefetch`` in flight, and settles each after its handler."""

    def __init__(
        self,
        queue: _MemoryQueue,
        handler: Handler,
        retry: RetryPolicy,
        prefetch: int,
        in_flight: set[asyncio.Task[None]],
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._retry = retry
        self._slots = asyncio.Semaphore(prefetch)
        self._wakeup = asyncio.Event()
        self._in_flight = in_flight

    async def run(self) -> None:
        self._queue.watch(self._wakeup.set)
        try:
            while True:
                await self._slots.acquire()
                while not self._queue.ready:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                message = self._queue.ready.popleft()
                task = asyncio.create_task(self._deliver(message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            self._queue.unwatch(self._wakeup.set)

    async def _deliver(self, message: _Message) -> None:
        try:
            await self._handle(message)
        finally:
            self._slots.release()

    async def _handle(self, message: _Message) -> None:
        try:
            envelope = codec.decode(message.body)
        except codec.UndecodableMessage as error:
            self._queue.dead_letter(message, codec.failure_reason(error))
            return
        try:
            with codec.handling(envelope), delivered_by(message.publisher):
                await self._handler(envelope)
        except asyncio.CancelledError:
            self._redeliver(message)
            raise
        except PermanentError as error:
            self._queue.dead_letter(message, codec.failure_reason(error))
        except Exception as error:
            self._retry_or_dead_letter(message, error)

    def _redeliver(self, message: _Message) -> None:
        """A handler interrupted before it finished: the message goes back, as RabbitMQ requeues it,
        until it went back more often than the delivery limit (``max_attempts``)."""
        if message.attempt > self._retry.max_attempts:
            self._queue.dead_letter(message, DELIVERY_LIMIT_REASON)
        else:
            self._queue.put(replace(message, attempt=message.attempt + 1))

    def _retry_or_dead_letter(self, message: _Message, error: Exception) -> None:
        reason = codec.failure_reason(error)
        if message.attempt >= self._retry.max_attempts:
            self._queue.dead_letter(message, f"{reason} (after {message.attempt} attempts)")
            return
        delay = self._retry.delay_for(message.attempt)
        log.info("bus.retry_scheduled", queue=self._queue.name, attempt=message.attempt, delay=delay)
        retry = replace(message, attempt=message.attempt + 1)
        asyncio.get_running_loop().call_later(delay, self._queue.put, retry)


class MemoryBus(EventBus):
    """In-process adapter of the bus port; see the module docstring."""

    def __init__(
        self,
        *,
        service: str,
        broker: InMemoryBroker | None = None,
        shutdown_grace: float = 30.0,
        user: str = LOCAL_USER,
    ) -> None:
        self.service = service
        self.user = user
        self.broker = broker if broker is not None else InMemoryBroker()
        self._shutdown_grace = shutdown_grace
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        for consumer in self._consumers:
            consumer.cancel()
        for consumer in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        self._consumers.clear()
        if self._in_flight:
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=self._shutdown_grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        self._closed = True

    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - the port's signature
        self._publish_message(
            _Message(
                body=codec.encode(envelope),
                routing_key=envelope.type,
                message_id=str(envelope.event_id),
                headers={codec.SCHEMA_VERSION_HEADER: str(envelope.schema_version)},
                publisher=self.user,
            )
        )

    async def publish_raw(self, routing_key: str, body: bytes, *, publisher: str | None = None) -> str:
        """Publish bytes that need not be an envelope, as a foreign producer (``publisher``) could;
        returns the message id."""
        message_id = uuid.uuid4().hex
        self._publish_message(
            _Message(body=body, routing_key=routing_key, message_id=message_id, publisher=publisher)
        )
        return message_id

    def _publish_message(self, message: _Message) -> None:
        if self._closed:
            raise PublishError("the bus is closed")
        self.broker.route(message)

    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = codec.DEFAULT_RETRY_POLICY,
        prefetch: int = 4,
    ) -> None:
        declared = self.broker.declare(queue, routing_keys)
        consumer = _Consumer(declared, handler, retry, prefetch, self._in_flight)
        self._consumers.append(asyncio.create_task(consumer.run(), name=f"bus-consumer-{queue}"))

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        declared = self.broker.queues.get(queue)
        return [] if declared is None else declared.dead[:limit]

    async def replay_dead_letter(self, queue: str, dead_letter_id: str) -> bool:
        declared = self.broker.queues.get(queue)
        if declared is None:
            return False
        for index, dead in enumerate(declared.dead):
            if dead.id == dead_letter_id:
                del declared.dead[index]
                declared.put(
                    _Message(
                        body=dead.body,
                        routing_key=dead.routing_key,
                        message_id=dead.id,
                        headers={
                            name: value for name, value in dead.headers.items() if name != PUBLISHER_HEADER
                        },
                        publisher=dead.headers.get(PUBLISHER_HEADER),
                    )
                )
                return True
        return False

    async def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        return {
            name: len(self.broker.queues[name].ready) if name in self.broker.queues else 0 for name in queues
        }

    async def ping(self) -> bool:
        return not self._closed
