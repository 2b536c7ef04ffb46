"""What every bus adapter shares: the wire format, the handler's context and dead-letter reasons.

On the wire a message body is the envelope as JSON; its AMQP properties repeat what a broker tool
needs without parsing it (``message_id`` = event id, ``type`` = event type, ``correlation_id``) and
the ``schema_version`` travels as a header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog
from pydantic import ValidationError

from chromaline.common import correlation
from chromaline.common.bus.base import RetryPolicy
from chromaline.common.events.envelope import RawEnvelope

CONTENT_TYPE = "application/json"
SCHEMA_VERSION_HEADER = "schema_version"
ATTEMPT_HEADER = "x-chromaline-attempt"
"""Which delivery of an event this is, across retries through the delay queues (1 for the first)."""
REASON_HEADER = "x-chromaline-dead-letter-reason"
ROUTING_KEY_HEADER = "x-chromaline-routing-key"
"""The routing key a message was first published with, kept when it moves to a retry or dead-letter queue."""
DEAD_LETTERED_AT_HEADER = "x-chromaline-dead-lettered-at"

MAX_REASON_LENGTH = 500

DEFAULT_RETRY_POLICY = RetryPolicy()


class UndecodableMessage(Exception):
    """A body that is not an envelope: it can never be handled."""


def encode(envelope: RawEnvelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(body: bytes) -> RawEnvelope:
    try:
        return RawEnvelope.model_validate_json(body)
    except ValidationError as error:
        raise UndecodableMessage(f"not an envelope: {error.error_count()} validation error(s)") from error


def failure_reason(error: BaseException) -> str:
    """``ExceptionType: message``, truncated so it fits in a header."""
    text = f"{type(error).__name__}: {error}"
    if len(text) > MAX_REASON_LENGTH:
        return text[: MAX_REASON_LENGTH - 1] + "…"
    return text


@contextlib.contextmanager
def handling(envelope: RawEnvelope) -> Iterator[None]:
    """Context of a running handler: events it publishes inherit the correlation and name this event as cause."""
    with (
        correlation.bound(envelope.correlation_id, causation_id=str(envelope.event_id)),
        structlog.contextvars.bound_contextvars(event_id=str(envelope.event_id), event_type=envelope.type),
    ):
        yield
