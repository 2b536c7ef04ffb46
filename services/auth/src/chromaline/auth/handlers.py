"""The auth service's event handlers: deliver reset links, audit refused bus messages, expired
jobs and custom charts created or deleted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from chromaline.auth import audit, throttle
from chromaline.auth.context import utcnow
from chromaline.auth.settings import AuthSettings
from chromaline.auth.signing_keys import KeyRing, rotate_signing_keys
from chromaline.auth.sinks import sink_named
from chromaline.common import inbox
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import (
    ChartCreated,
    ChartDeleted,
    PartnerRejected,
    PasswordResetRequested,
    UnknownEventError,
    parse_data,
)
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.logging import get_logger
from chromaline.common.retention import accept_internal_event, accept_job_expired
from chromaline.common.runtime import ServiceRuntime

NAME = "auth"
MAINTENANCE_INTERVAL = timedelta(minutes=5)
log = get_logger(__name__)


def _settings(runtime: ServiceRuntime) -> AuthSettings:
    settings = runtime.settings
    assert isinstance(settings, AuthSettings)
    return settings


def _parse(envelope: RawEnvelope) -> object:
    try:
        return parse_data(envelope)
    except (UnknownEventError, ValidationError) as error:
        raise PermanentError(f"invalid {envelope.type}: {error}") from error


async def on_password_reset_requested(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Hand the link to the configured sink. Delivery is at least once: a retry may send it again."""
    event = _parse(envelope)
    assert isinstance(event, PasswordResetRequested)
    await sink_named(_settings(runtime).reset_sink).deliver(event)


async def on_partner_rejected(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    event = _parse(envelope)
    assert isinstance(event, PartnerRejected)
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        await audit.record(
            session,
            "partner.rejected",
            publisher=event.publisher,
            routing_key=event.routing_key,
            event_id=str(event.event_id),
            consumer=event.consumer,
            reason=event.reason,
        )


def _organisation(organisation_id: str | None) -> uuid.UUID | None:
    """The gateway names organisations by the ids given here; anything else is no organisation."""
    try:
        return uuid.UUID(organisation_id) if organisation_id else None
    except ValueError:
        return None


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Audit a job's expiry (``job.expired``) or its deletion on request (``job.deleted``, by
    whom and with which API key) once: what it deleted, what a saved profile keeps, and why."""
    event = accept_job_expired(envelope, runtime.settings)
    kept = {(ref.bucket, ref.key) for ref in event.kept}
    deleted = [
        f"{ref.bucket}/{ref.key}"
        for ref in ([event.original] if event.original else []) + list(event.results.values())
        if (ref.bucket, ref.key) not in kept
    ]
    common: dict[str, Any] = {
        "organisation_id": _organisation(event.organisation_id),
        "job_id": str(event.job_id),
        "filename": event.filename,
        "deleted": sorted(deleted),
        "kept": sorted(f"{bucket}/{key}" for bucket, key in kept),
    }
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        if event.reason == "deleted_on_request":
            await audit.record(
                session,
                "job.deleted",
                actor_id=event.deleted_by,
                api_key_id=str(event.api_key_id) if event.api_key_id else None,
                deleted_at=event.expired_at.isoformat(),
                **common,
            )
            return
        await audit.record(
            session,
            "job.expired",
            retention_days=event.retention_days,
            cutoff=event.cutoff.isoformat() if event.cutoff else None,
            expired_at=event.expired_at.isoformat(),
            **common,
        )


async def on_chart_changed(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Audit a custom chart's creation (``chart.created``) or deletion (``chart.deleted``) once,
    for the chart's organisation: who did it, with which API key, and which chart. Only our own
    services may say so; a partner's or stranger's message is dead-lettered."""
    event = accept_internal_event(envelope, runtime.settings)
    if not isinstance(event, ChartCreated | ChartDeleted):
        raise PermanentError(f"{envelope.type} is not chart.created or chart.deleted")
    when: dict[str, Any] = (
        {"created_at": event.created_at.isoformat()}
        if isinstance(event, ChartCreated)
        else {"deleted_at": event.deleted_at.isoformat()}
    )
    async with runtime.session() as session, session.begin():
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        await audit.record(
            session,
            envelope.type,
            organisation_id=_organisation(event.organisation_id),
            actor_id=event.actor_id,
            api_key_id=str(event.api_key_id) if event.api_key_id else None,
            chart_id=str(event.chart_id),
            name=event.name,
            rows=event.rows,
            columns=event.columns,
            patch_count=event.patch_count,
            **when,
        )


async def ensure_signing_key(runtime: ServiceRuntime, ring: KeyRing) -> None:
    """Make the first signing key, or the next one when the current one is due for rotation."""
    async with runtime.session() as session, session.begin():
        made = await rotate_signing_keys(session, ring, _settings(runtime), utcnow())
    if made is not None:
        log.info("signing_key.created", kid=made.kid)


async def maintenance(runtime: ServiceRuntime) -> None:
    """Rotate the signing key when due and forget sign-in failures older than the throttle window."""
    settings = _settings(runtime)
    ring = KeyRing(settings)
    while True:
        try:
            await ensure_signing_key(runtime, ring)
            async with runtime.session() as session, session.begin():
                await throttle.prune(session, settings, utcnow())
        except Exception:
            log.exception("auth.maintenance_failed")
        await asyncio.sleep(MAINTENANCE_INTERVAL.total_seconds())
