"""The event bus on RabbitMQ (aio-pika).

Topology, for exchange ``X`` and a consuming queue ``Q``:

* ``X`` (topic): every event, routed by its type;
* ``Q`` (quorum): bound to ``X`` with the subscribed keys and to ``X.redeliver`` with ``Q``; a
  delivery limit and a dead-letter exchange, so a message that keeps crashing its consumer still
  ends up in the dead-letter queue rather than looping;
* ``Q.retry.<ms>`` (quorum, message TTL): a failed message waits there, then expires back to ``Q``
  through ``X.redeliver`` (direct, keyed by queue name);
* ``Q.dlq`` (quorum): bound to ``X.dead-letter`` (direct) with ``Q``.

Every message carries the publishing connection's user as its AMQP ``user_id``, which the broker
checks; handlers read it with :func:`~chromaline.common.bus.base.current_publisher`. A copy this
adapter republishes keeps the original publisher in a header, trusted only from its own user.

Every publish waits for the broker's confirm and is mandatory, so an unroutable message raises
:class:`PublishError` instead of vanishing. A message is acknowledged only once its handler returned
and, for a failure, once its retry or dead-letter copy was confirmed; if anything in between fails
the message is requeued (at least once, never lost). Broker-side dead-lettering is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
    HeadersType,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelNotFoundEntity, DeliveryError
from aio_pika.exceptions import PublishError as ReturnedError

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

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Set by quorum queues on a redelivered message: how many times it went back unacknowledged."""
_BROKER_HEADER_PREFIXES = (DELIVERY_COUNT_HEADER, "x-death", "x-first-death-", "x-last-death-")
_REPLAY_RESET_HEADERS = frozenset({codec.ATTEMPT_HEADER, codec.REASON_HEADER, codec.DEAD_LETTERED_AT_HEADER})
_BROKER_TIMEOUT = 10.0
"""Seconds to wait for an ack, a cancel or a channel before treating the broker as unreachable."""


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def retry_queue(queue: str, delay: float) -> str:
    return f"{queue}.retry.{_milliseconds(delay)}"


def _milliseconds(delay: float) -> int:
    return max(1, round(delay * 1000))


def _int_header(headers: HeadersType, name: str, default: int) -> int:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_header(headers: HeadersType, name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _delivery_number(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is: retries counted in our header plus the queue's redeliveries."""
    return _int_header(message.headers, codec.ATTEMPT_HEADER, 1) + _int_header(
        message.headers, DELIVERY_COUNT_HEADER, 0
    )


def _last_death(headers: HeadersType) -> dict[str, Any]:
    """The broker's record of the latest time it dead-lettered a message (``x-death`` lists it first)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _original_routing_key(message: AbstractIncomingMessage) -> str:
    """The key the event was published with, though retries and dead-lettering route it by queue name."""
    own = _str_header(message.headers, codec.ROUTING_KEY_HEADER)
    if own:
        return own
    keys = _last_death(message.headers).get("routing-keys")
    if isinstance(keys, list) and keys:
        return str(keys[0])
    return message.routing_key or ""


def _publisher_of(message: AbstractIncomingMessage, own_user: str) -> str | None:
    """The broker-checked publisher; for a copy made by a bus of our own user, the original's
    (an empty header: the original named no publisher)."""
    if message.user_id == own_user:
        copied = _str_header(message.headers, PUBLISHER_HEADER)
        return own_user if copied is None else copied or None
    return message.user_id


def _copy(
    message: AbstractIncomingMessage, headers: HeadersType, user: str, message_id: str | None = None
) -> aio_pika.Message:
    """A persistent copy of ``message`` with ``headers``, for a retry, dead-letter or replay queue,
    published as ``user`` and naming the original publisher in a header."""
    headers = {**headers, PUBLISHER_HEADER: _publisher_of(message, user) or ""}
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id or message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        app_id=message.app_id,
        user_id=user,
    )


def _own_headers(message: AbstractIncomingMessage) -> HeadersType:
    """The headers without those the broker sets, which would be wrong on a copy."""
    return {
        name: value for name, value in message.headers.items() if not name.startswith(_BROKER_HEADER_PREFIXES)
    }


def _dead_letter_id(message: AbstractIncomingMessage) -> str:
    return message.message_id or hashlib.sha256(message.body).hexdigest()[:32]


def _describe_dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    broker_reason = _last_death(message.headers).get("reason")
    reason = _str_header(message.headers, codec.REASON_HEADER) or (
        f"dead-lettered by the broker: {broker_reason}" if broker_reason else "unknown"
    )
    stamped = _str_header(message.headers, codec.DEAD_LETTERED_AT_HEADER)
    return DeadLetter(
        id=_dead_letter_id(message),
        queue=queue,
        routing_key=_original_routing_key(message),
        reason=reason,
        body=message.body,
        dead_lettered_at=datetime.fromisoformat(stamped) if stamped else None,
        headers={
            name: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            for name, value in _own_headers(message).items()
            if isinstance(value, str | bytes | int | float)
        },
    )


class _Consumer:
    """Runs the handler for each message of one queue and settles the message afterwards."""

    def __init__(self, bus: RabbitMqBus, queue: str, handler: Handler, retry: RetryPolicy) -> None:
        self._bus = bus
        self._queue = queue
        self._handler = handler
        self._retry = retry

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Hand the message to a task of our own, so a lost channel does not cancel a running handler."""
        self._bus.track(asyncio.create_task(self._process(message)))

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = codec.decode(message.body)
        except codec.UndecodableMessage as error:
            await self._dead_letter(message, codec.failure_reason(error))
            return
        attempt = _delivery_number(message)
        try:
            with codec.handling(envelope), delivered_by(_publisher_of(message, self._bus.user)):
                await self._handler(envelope)
        except asyncio.CancelledError:
            await self._settle(message.nack(requeue=True))
            raise
        except PermanentError as error:
            await self._dead_letter(message, codec.failure_reason(error))
        except Exception as error:
            reason = codec.failure_reason(error)
            if attempt >= self._retry.max_attempts:
                await self._dead_letter(message, f"{reason} (after {attempt} attempts)")
            else:
                await self._schedule_retry(message, attempt, reason)
        else:
            await self._settle(message.ack())

    async def _schedule_retry(self, message: AbstractIncomingMessage, attempt: int, reason: str) -> None:
        delay = self._retry.delay_for(attempt)
        headers = _own_headers(message) | {
            codec.ATTEMPT_HEADER: attempt + 1,
            codec.ROUTING_KEY_HEADER: _original_routing_key(message),
        }
        log.info("bus.retry_scheduled", queue=self._queue, attempt=attempt, delay=delay, reason=reason)
        await self._move(
            message, _copy(message, headers, self._bus.user), retry_queue(self._queue, delay), default=True
        )

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        routing_key = _original_routing_key(message)
        headers = _own_headers(message) | {
            codec.REASON_HEADER: reason,
            codec.ROUTING_KEY_HEADER: routing_key,
            codec.DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
        }
        message_id = message.message_id or uuid.uuid4().hex
        log.warning("bus.dead_lettered", queue=self._queue, message_id=message_id, reason=reason)
        moved = await self._move(
            message, _copy(message, headers, self._bus.user, message_id), self._queue, default=False
        )
        if moved:
            metrics.EVENTS_DEAD_LETTERED.labels(self._queue, routing_key).inc()

    async def _move(
        self, message: AbstractIncomingMessage, copy: aio_pika.Message, routing_key: str, *, default: bool
    ) -> bool:
        """Publish ``copy`` (to a retry queue or the dead-letter exchange), then ack the original;
        False when the copy was not confirmed and the original went back to its queue."""
        try:
            await self._bus.publish_to(copy, routing_key, default_exchange=default)
        except PublishError as error:
            log.warning("bus.move_failed", queue=self._queue, error=str(error))
            await self._settle(message.nack(requeue=True))
            return False
        await self._settle(message.ack())
        return True

    async def _settle(self, settling: Awaitable[None]) -> None:
        """Ack or nack; on a lost channel the broker redelivers the message anyway."""
        try:
            async with asyncio.timeout(_BROKER_TIMEOUT):
                await settling
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as error:
            log.warning("bus.settle_failed", queue=self._queue, error=repr(error))


class RabbitMqBus(EventBus):
    """RabbitMQ adapter of the bus port; see the module docstring for the topology."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        exchange: str = "chromaline",
        shutdown_grace: float = 30.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.user = unquote(urlsplit(url).username or "guest")
        """The broker user of this bus's connection, stamped on everything it publishes."""
        self.service = service
        self.exchange = exchange
        self.dead_letter_exchange = f"{exchange}.dead-letter"
        self.redeliver_exchange = f"{exchange}.redeliver"
        self._shutdown_grace = shutdown_grace
        self._reconnect_interval = reconnect_interval * random.uniform(1.0, 1.5)
        """Jittered, so that services which lost the broker together do not all return at once."""
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumers: list[tuple[AbstractQueue, ConsumerTag]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.url,
            reconnect_interval=self._reconnect_interval,
            client_properties={"connection_name": f"chromaline-{self.service}"},
        )
        self._publisher = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchanges = {
            self.exchange: await self._publisher.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            ),
            self.dead_letter_exchange: await self._publisher.declare_exchange(
                self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            ),
            self.redeliver_exchange: await self._publisher.declare_exchange(
                self.redeliver_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            ),
        }

    async def close(self) -> None:
        for queue, tag in self._consumers:
            with contextlib.suppress(TimeoutError, *CONNECTION_EXCEPTIONS):
                await queue.cancel(tag, timeout=_BROKER_TIMEOUT)
        self._consumers.clear()
        await self._finish_in_flight()
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._publisher = None

    async def _finish_in_flight(self) -> None:
        deadline = asyncio.get_running_loop().time() + self._shutdown_grace
        while self._in_flight:
            remaining = deadline - asyncio.get_running_loop().time()
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=max(remaining, 0))
            if unfinished and remaining <= 0:
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)

    def track(self, task: asyncio.Task[None]) -> None:
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - the port's signature
        message = aio_pika.Message(
            codec.encode(envelope),
            headers={codec.SCHEMA_VERSION_HEADER: envelope.schema_version},
            content_type=codec.CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.event_id),
            type=envelope.type,
            correlation_id=envelope.correlation_id,
            timestamp=envelope.occurred_at,
            app_id=self.service,
            user_id=self.user,
        )
        await self.publish_to(message, envelope.type, exchange=self.exchange, timeout=timeout)

    async def publish_to(
        self,
        message: aio_pika.Message,
        routing_key: str,
        *,
        exchange: str | None = None,
        default_exchange: bool = False,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline per publish, turned into PublishError
    ) -> None:
        """Publish mandatorily and wait for the confirm; to the dead-letter exchange unless told otherwise."""
        if self._publisher is None:
            raise PublishError("the bus is not started")
        target = (
            self._publisher.default_exchange
            if default_exchange
            else self._exchanges[exchange or self.dead_letter_exchange]
        )
        try:
            async with asyncio.timeout(timeout):
                await target.publish(message, routing_key, mandatory=True)
        except TimeoutError as error:
            raise PublishError(f"no confirm for {routing_key!r} within {timeout}s") from error
        except ReturnedError as error:
            raise PublishError(
                f"unroutable: no queue bound for {routing_key!r} on {target.name!r}"
            ) from error
        except DeliveryError as error:
            raise PublishError(f"the broker refused {routing_key!r}: {error!r}") from error
        except CONNECTION_EXCEPTIONS as error:
            raise PublishError(f"publishing {routing_key!r} failed: {error!r}") from error

    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = codec.DEFAULT_RETRY_POLICY,
        prefetch: int = 4,
    ) -> None:
        channel = await self._require_connection().channel()
        await channel.set_qos(prefetch_count=prefetch)
        main = await channel.declare_queue(
            queue, durable=True, arguments=self._main_queue_arguments(queue, retry)
        )
        for key in routing_keys:
            await main.bind(self.exchange, key)
        await main.bind(self.redeliver_exchange, queue)
        dead = await channel.declare_queue(
            dead_letter_queue(queue), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(self.dead_letter_exchange, queue)
        for delay in sorted({retry.delay_for(attempt) for attempt in range(1, retry.max_attempts)}):
            await channel.declare_queue(
                retry_queue(queue, delay), durable=True, arguments=self._retry_queue_arguments(queue, delay)
            )
        consumer = _Consumer(self, queue, handler, retry)
        self._consumers.append((main, await main.consume(consumer.on_message)))

    def _main_queue_arguments(self, queue: str, retry: RetryPolicy) -> dict[str, str | int]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": retry.max_attempts,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def _retry_queue_arguments(self, queue: str, delay: float) -> dict[str, str | int]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": _milliseconds(delay),
            "x-dead-letter-exchange": self.redeliver_exchange,
            "x-dead-letter-routing-key": queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the bus is not started")
        return self._connection

    @contextlib.asynccontextmanager
    async def _short_lived_channel(self) -> AsyncIterator[AbstractChannel]:
        """A plain (not robust) channel for one operation: a broker error closes it and nothing reopens it."""
        connection = self._require_connection()
        async with asyncio.timeout(_BROKER_TIMEOUT):
            await connection.ready()
        channel = aio_pika.Channel(connection)
        await channel.initialize(timeout=_BROKER_TIMEOUT)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _existing_queue(self, channel: AbstractChannel, name: str) -> AbstractQueue | None:
        try:
            return await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return None

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Browse ``<queue>.dlq``: take up to ``limit`` messages unacknowledged, then requeue them all.

        While a browse runs the messages it holds are invisible to another browse or a replay.
        """
        async with self._short_lived_channel() as channel:
            dlq = await self._existing_queue(channel, dead_letter_queue(queue))
            if dlq is None:
                return []
            held: list[AbstractIncomingMessage] = []
            try:
                while len(held) < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
                    held.append(message)
                return [_describe_dead_letter(queue, message) for message in held]
            finally:
                for message in held:
                    await message.nack(requeue=True)

    async def replay_dead_letter(self, queue: str, dead_letter_id: str) -> bool:
        """Republish one dead letter to ``queue`` as a first attempt, then remove it from the DLQ."""
        async with self._short_lived_channel() as channel:
            dlq = await self._existing_queue(channel, dead_letter_queue(queue))
            if dlq is None:
                return False
            held: list[AbstractIncomingMessage] = []
            try:
                while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                    if _dead_letter_id(message) != dead_letter_id:
                        held.append(message)
                        continue
                    headers = {
                        name: value
                        for name, value in _own_headers(message).items()
                        if name not in _REPLAY_RESET_HEADERS
                    }
                    try:
                        await self.publish_to(
                            _copy(message, headers, self.user), queue, exchange=self.redeliver_exchange
                        )
                    except PublishError:
                        held.append(message)
                        raise
                    await message.ack()
                    log.info("bus.dead_letter_replayed", queue=queue, message_id=dead_letter_id)
                    return True
                return False
            finally:
                for message in held:
                    await message.nack(requeue=True)

    async def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Ready messages per queue, read with passive declares; a queue that does not exist holds 0."""
        depths: dict[str, int] = {}
        for name in queues:
            async with self._short_lived_channel() as channel:
                declared = await self._existing_queue(channel, name)
                depths[name] = 0 if declared is None else declared.declaration_result.message_count or 0
        return depths

    async def ping(self) -> bool:
        if self._connection is None or self._connection.is_closed:
            return False
        try:
            async with asyncio.timeout(5), self._short_lived_channel():
                return True
        except (TimeoutError, *CONNECTION_EXCEPTIONS):
            return False
