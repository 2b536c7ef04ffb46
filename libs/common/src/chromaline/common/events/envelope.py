"""The one envelope every event travels in.

The envelope's ``type`` is also the RabbitMQ routing key; ``schema_version`` is the version of the
``data`` model, bumped on any incompatible change so consumers can refuse what they do not know.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from chromaline.common import correlation, tracing

DataT = TypeVar("DataT")


class Envelope(BaseModel, Generic[DataT]):
    """An event: identity, routing, tracing, and its typed payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique id; consumers dedupe on it.")
    type: str = Field(description="Event type, also the routing key, e.g. image.uploaded.")
    schema_version: int = Field(ge=1, description="Version of the data model.")
    occurred_at: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When the fact happened (UTC)."
    )
    producer: str = Field(description="Service or partner that produced the event.")
    subject: str = Field(description="The job id the event is about.")
    correlation_id: str = Field(description="Shared by every event of one piece of work.")
    causation_id: str | None = Field(default=None, description="event_id of the event that caused this one.")
    trace_context: dict[str, str] = Field(
        default_factory=dict,
        description="W3C trace context (traceparent, tracestate) of the work that produced the event; "
        "empty or absent when untraced.",
    )
    data: DataT


RawEnvelope = Envelope[dict[str, Any]]
"""An envelope as it arrives off the wire, before its data is validated against its type's model."""


def make_envelope(producer: str, subject: str, data: BaseModel) -> RawEnvelope:
    """Wrap ``data`` in an envelope that inherits the correlation, causation and trace of the work in hand."""
    from chromaline.common.events.contracts import spec_for_model

    spec = spec_for_model(type(data))
    return RawEnvelope(
        type=spec.routing_key,
        schema_version=spec.version,
        producer=producer,
        subject=subject,
        correlation_id=correlation.current_correlation_id() or correlation.new_correlation_id(),
        causation_id=correlation.current_causation_id(),
        trace_context=tracing.current_trace_context(),
        data=data.model_dump(mode="json"),
    )
