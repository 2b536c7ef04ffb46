"""Webhooks: their secrets, which URLs they may call, and the worker that delivers their events.

Deliveries are rows written in the transaction that decided to send them (so none is lost), and
a worker in every gateway replica sends the due ones. A claim takes rows with ``FOR UPDATE SKIP
LOCKED`` and leases them (moves their next attempt past the call's timeout) before any call, so
replicas never send the same attempt twice, and a replica that dies mid-call only delays it.
Each replica runs at most ``webhook_concurrency`` calls at once and one per webhook, each bounded
by ``webhook_timeout_seconds``: a slow or dead endpoint holds one slot, never the others.

SSRF: a webhook URL is checked as :mod:`chromaline.common.public_urls` says (unless
``webhook_allow_private_urls`` is set) when it is added and again before every call, and the call
goes to the very address that was checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.logging import get_logger
from chromaline.common.public_urls import checked_address, pinned_request
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.models import Webhook, WebhookDelivery
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.webhook_signatures import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

log = get_logger(__name__)

EVENT_TYPES = ("job.finished", "job.failed", "job.report_ready", "job.report_failed", "batch.finished")
PING = "ping"
LEASE_MARGIN_SECONDS = 30.0
ERROR_LIMIT = 500


def webhook_secret(signing_secret: str, salt: str) -> str:
    """A webhook's signing secret, derived rather than stored: the database alone never reveals it.

    Changing the gateway's signing secret changes every webhook's secret, so receivers must be
    given the new ones (recreate the webhooks).
    """
    digest = hmac.new(signing_secret.encode(), f"chromaline-webhook:{salt}".encode(), hashlib.sha256)
    return f"whsec_{digest.hexdigest()}"


def new_salt() -> str:
    return secrets.token_hex(16)


async def post_to_checked_address(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], *, allow_private: bool
) -> httpx.Response:
    """POST ``body`` to ``url`` at the address :func:`checked_address` approved (see
    :func:`pinned_request`)."""
    address = await checked_address(url, allow_private=allow_private)
    target, host_headers, extensions = pinned_request(url, address)
    return await client.post(target, content=body, headers={**headers, **host_headers}, extensions=extensions)


async def enqueue(
    session: AsyncSession,
    organisation_id: str,
    event_type: str,
    event_id: uuid.UUID,
    payload: dict[str, Any],
) -> int:
    """Queue ``payload`` for every webhook of the organisation that subscribes to ``event_type``."""
    hooks = (
        (
            await session.execute(
                select(Webhook.id).where(
                    Webhook.organisation_id == organisation_id, Webhook.events.contains([event_type])
                )
            )
        )
        .scalars()
        .all()
    )
    for webhook_id in hooks:
        session.add(new_delivery(webhook_id, event_type, event_id, payload))
    return len(hooks)


def new_delivery(
    webhook_id: uuid.UUID, event_type: str, event_id: uuid.UUID, payload: dict[str, Any]
) -> WebhookDelivery:
    return WebhookDelivery(
        id=uuid.uuid4(),
        webhook_id=webhook_id,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        status="pending",
        attempts=0,
        attempt_log=[],
        next_attempt_at=datetime.now(UTC),
    )


def event_payload(
    event_type: str, event_id: uuid.UUID, organisation_id: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body every webhook receives: the event's identity and its ``data``."""
    return {
        "id": str(event_id),
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "organisation_id": organisation_id,
        "data": data,
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def webhook_view(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": str(webhook.id),
        "url": webhook.url,
        "events": list(webhook.events),
        "owner_id": webhook.owner_id,
        "created_at": webhook.created_at.isoformat() if webhook.created_at else None,
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": str(delivery.id),
        "webhook_id": str(delivery.webhook_id),
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "attempt_log": delivery.attempt_log,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "finished_at": iso(delivery.finished_at),
        "payload": delivery.payload,
    }


@dataclass(frozen=True)
class ClaimedDelivery:
    """What one call needs, read while the delivery was claimed."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    url: str
    secret: str
    event_type: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(settings: GatewaySettings, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    delays = settings.webhook_retry_delays_seconds or (60.0,)
    return timedelta(seconds=delays[min(attempts, len(delays)) - 1])


class DeliveryWorker:
    """Sends due deliveries, a bounded number at a time, and records each attempt."""

    def __init__(
        self,
        sessions: Callable[[], AsyncSession],
        settings: GatewaySettings,
        client: httpx.AsyncClient,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Claim and send until cancelled; in-flight calls are cancelled with it."""
        try:
            while True:
                try:
                    await self.dispatch()
                except Exception:
                    log.exception("webhooks.claim_failed")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_seconds)
        finally:
            for task in self._in_flight.values():
                task.cancel()

    async def dispatch(self) -> list[asyncio.Task[None]]:
        """Start a call for each due delivery that fits in the free slots; the started tasks."""
        free = self._settings.webhook_concurrency - len(self._in_flight)
        if free <= 0:
            return []
        started = []
        for claimed in await self._claim(free):
            task = asyncio.create_task(self._attempt(claimed), name=f"webhook-delivery-{claimed.id}")
            self._in_flight[claimed.webhook_id] = task
            task.add_done_callback(functools.partial(self._done, claimed.webhook_id))
            started.append(task)
        return started

    def _done(self, webhook_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(webhook_id, None)
        self._wake.set()

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        now = datetime.now(UTC)
        lease = timedelta(seconds=self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        query = (
            select(WebhookDelivery, Webhook)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit * 4)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        if self._in_flight:
            query = query.where(WebhookDelivery.webhook_id.not_in(list(self._in_flight)))
        signing_secret = self._settings.signing_secret.get_secret_value()
        claimed: dict[uuid.UUID, ClaimedDelivery] = {}
        async with self._sessions() as session, session.begin():
            for delivery, webhook in (await session.execute(query)).all():
                if webhook.id in claimed or len(claimed) >= limit:
                    continue
                delivery.next_attempt_at = now + lease
                claimed[webhook.id] = ClaimedDelivery(
                    id=delivery.id,
                    webhook_id=webhook.id,
                    url=webhook.url,
                    secret=webhook_secret(signing_secret, webhook.secret_salt),
                    event_type=delivery.event_type,
                    body=body_bytes(delivery.payload),
                )
        return list(claimed.values())

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        try:
            outcome = await self._call(claimed)
            await self._record(claimed, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks.attempt_unrecorded", delivery_id=str(claimed.id))

    async def _call(self, claimed: ClaimedDelivery) -> Outcome:
        started = time.monotonic()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Chromaline-Webhooks/1",
            SIGNATURE_HEADER: sign(claimed.secret, claimed.body),
            EVENT_HEADER: claimed.event_type,
            DELIVERY_HEADER: str(claimed.id),
        }
        try:
            async with asyncio.timeout(self._settings.webhook_timeout_seconds):
                response = await post_to_checked_address(
                    self._client,
                    claimed.url,
                    claimed.body,
                    headers,
                    allow_private=self._settings.webhook_allow_private_urls,
                )
        except TimeoutError:
            late = f"no answer within {self._settings.webhook_timeout_seconds:g} s"
            return Outcome(None, late, time.monotonic() - started)
        except Exception as failure:  # whatever went wrong, the attempt counts towards giving up
            return Outcome(
                None, f"{type(failure).__name__}: {failure}"[:ERROR_LIMIT], time.monotonic() - started
            )
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Outcome(response.status_code, error, time.monotonic() - started)

    async def _record(self, claimed: ClaimedDelivery, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            delivery = await session.get(WebhookDelivery, claimed.id, with_for_update=True)
            if delivery is None:
                return
            delivery.attempts += 1
            delivery.attempt_log = [
                *delivery.attempt_log,
                {
                    "attempt": delivery.attempts,
                    "at": now.isoformat(),
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                    "duration_ms": round(outcome.seconds * 1000),
                },
            ]
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            if outcome.delivered:
                delivery.status = "delivered"
                delivery.finished_at = now
            elif delivery.attempts >= self._settings.webhook_max_attempts:
                delivery.status = "failed"
                delivery.finished_at = now
            else:
                delivery.next_attempt_at = now + retry_delay(self._settings, delivery.attempts)
        log.info(
            "webhooks.attempted",
            delivery_id=str(claimed.id),
            webhook_id=str(claimed.webhook_id),
            event_type=claimed.event_type,
            status=delivery.status,
            status_code=outcome.status_code,
            error=outcome.error,
        )


async def deliver_webhooks(runtime: ServiceRuntime) -> None:
    """The gateway's background delivery worker."""
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    ) as client:
        await DeliveryWorker(runtime.session, settings, client).run()
