"""The event bus port: publish envelopes, consume them with at-least-once delivery.

Delivery rules shared by every adapter (and checked by one contract test suite):

* a message is acknowledged only after its handler returns, i.e. after the handler's transaction
  committed; a crash before that redelivers it;
* a handler raising :class:`PermanentError` sends the message straight to the dead-letter queue;
* any other exception is retried after ``RetryPolicy.delays`` and dead-lettered once
  ``RetryPolicy.max_attempts`` deliveries failed;
* a message that cannot be decoded into an envelope goes straight to the dead-letter queue.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from chromaline.common.events.envelope import RawEnvelope

Handler = Callable[[RawEnvelope], Awaitable[None]]

PUBLISHER_HEADER = "x-chromaline-publisher"
"""On a copy a service republishes (retry, dead letter, replay): who published the original."""

_publisher: ContextVar[str | None] = ContextVar("chromaline_bus_publisher", default=None)


def current_publisher() -> str | None:
    """Who published the message being handled: on RabbitMQ the AMQP ``user_id``, which the broker
    checks against the publishing connection's user; ``None`` when the message carried none."""
    return _publisher.get()


@contextlib.contextmanager
def delivered_by(publisher: str | None) -> Iterator[None]:
    """Adapters run each handler inside this, so :func:`current_publisher` names the message's publisher."""
    token = _publisher.set(publisher)
    try:
        yield
    finally:
        _publisher.reset(token)


class PermanentError(Exception):
    """The message can never be handled; retrying is pointless. It is dead-lettered at once."""


class PublishError(Exception):
    """The broker did not confirm a publish (nacked, unroutable or timed out)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    delays: tuple[float, ...] = (1.0, 5.0, 30.0)

    def delay_for(self, attempt: int) -> float:
        """Delay before delivery number ``attempt + 1``, ``attempt`` counting from 1."""
        return self.delays[min(attempt, len(self.delays)) - 1]


@dataclass(frozen=True)
class DeadLetter:
    """A message parked in a dead-letter queue, as an operator sees it."""

    id: str
    queue: str
    routing_key: str
    reason: str
    body: bytes
    dead_lettered_at: datetime | None = None
    headers: dict[str, str] = field(default_factory=dict)


class EventBus(abc.ABC):
    """Publish to one topic exchange; consume through one durable queue per consuming service."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish, then disconnect."""

    @abc.abstractmethod
    async def publish(self, envelope: RawEnvelope, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Publish persistently and wait for the broker's confirm; raise :class:`PublishError` otherwise."""

    @abc.abstractmethod
    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = RetryPolicy(),
        prefetch: int = 4,
    ) -> None:
        """Declare ``queue`` (and its retry and dead-letter queues), bind it and start consuming."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """List the messages parked in ``<queue>.dlq`` without removing them."""

    @abc.abstractmethod
    async def replay_dead_letter(self, queue: str, dead_letter_id: str) -> bool:
        """Move one dead letter back onto ``queue``; False when it is no longer there."""

    @abc.abstractmethod
    async def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each queue (for statistics)."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the bus answers (readiness)."""
