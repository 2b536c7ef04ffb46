"""Envelopes for tests of the bus and the runtime, whose handlers do not read the data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from chromaline.common.events.envelope import RawEnvelope


def bare_envelope(
    event_type: str = "image.uploaded",
    *,
    occurred_at: datetime | None = None,
    schema_version: int = 1,
    **data: object,
) -> RawEnvelope:
    """An envelope of ``event_type`` holding ``data`` as given, with a fresh subject and correlation id."""
    return RawEnvelope(
        type=event_type,
        schema_version=schema_version,
        producer="tests",
        subject=uuid.uuid4().hex,
        correlation_id=uuid.uuid4().hex,
        occurred_at=occurred_at or datetime.now(UTC),
        data=dict(data),
    )
