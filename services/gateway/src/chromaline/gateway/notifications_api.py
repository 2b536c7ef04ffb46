"""The notifications and webhooks API, under ``/api/v1``.

Notifications and preferences are the caller's own: another user's notification answers 404,
even in the same organisation. Webhooks belong to the organisation (every member with write
access manages them); another organisation's webhook answers 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, field_validator
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import idempotency, public_urls
from chromaline.common.client_models import ClientModel
from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.idempotency import json_part
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import notifications, webhooks
from chromaline.gateway.access import CurrentPrincipal, Principal, authorize
from chromaline.gateway.models import Notification, Webhook, WebhookDelivery
from chromaline.gateway.organisation_limits import refuse_past_limit
from chromaline.gateway.settings import GatewaySettings

MAX_WEBHOOKS_PER_ORGANISATION = 20
MAX_PENDING_PINGS = 10
"""Pings of one webhook waiting to be delivered (each is retried for hours); one more answers 429."""
PING_RETRY_AFTER_SECONDS = 60


class PreferencesUpdate(ClientModel):
    """Only the flags sent change."""

    in_app: bool | None = None
    webhooks: bool | None = None
    job_finished: bool | None = None
    job_failed: bool | None = None
    batch_finished: bool | None = None


class WebhookCreate(ClientModel):
    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(webhooks.EVENT_TYPES), min_length=1)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(webhooks.EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown events {unknown}; choose from {list(webhooks.EVENT_TYPES)}")
        return sorted(set(events))


def build_notifications_router(runtime: ServiceRuntime, settings: GatewaySettings) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    def own(principal: Principal) -> ColumnElement[bool]:
        return (Notification.user_id == principal.user_id) & (
            Notification.organisation_id == principal.organisation_id
        )

    @router.get("/notifications", summary="Your notifications, newest first")
    async def list_notifications(
        principal: CurrentPrincipal,
        unread: bool = False,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        query = select(Notification).where(own(principal))
        if unread:
            query = query.where(Notification.read_at.is_(None))
        async with runtime.session() as session:
            rows = (
                (await session.execute(query.order_by(Notification.created_at.desc()).limit(limit)))
                .scalars()
                .all()
            )
            unread_count = (
                await session.execute(
                    select(func.count()).where(own(principal), Notification.read_at.is_(None))
                )
            ).scalar_one()
        return {"items": [notifications.notification_view(row) for row in rows], "unread": unread_count}

    @router.post("/notifications/{notification_id}/read", summary="Mark one notification read")
    async def mark_read(notification_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session, session.begin():
            notification = await session.get(Notification, notification_id, with_for_update=True)
            if (
                notification is None
                or notification.user_id != principal.user_id
                or notification.organisation_id != principal.organisation_id
            ):
                raise ApiError(404, "notification_not_found", f"no notification {notification_id}")
            notification.read_at = notification.read_at or datetime.now(UTC)
        return notifications.notification_view(notification)

    @router.post("/notifications/read-all", summary="Mark all your notifications read")
    async def mark_all_read(principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session, session.begin():
            result = await session.execute(
                update(Notification)
                .where(own(principal), Notification.read_at.is_(None))
                .values(read_at=datetime.now(UTC))
            )
        return {"marked": int(getattr(result, "rowcount", 0) or 0)}

    @router.get("/notifications/preferences", summary="What you hear of, and how")
    async def get_preferences(principal: CurrentPrincipal) -> dict[str, bool]:
        async with runtime.session() as session:
            return (await notifications.preferences_of(session, principal.user_id)).as_dict()

    @router.put("/notifications/preferences", summary="Change what you hear of, and how")
    async def put_preferences(body: PreferencesUpdate, principal: CurrentPrincipal) -> dict[str, bool]:
        changes = body.model_dump(exclude_none=True)
        async with runtime.session() as session, session.begin():
            saved = await notifications.save_preferences(session, principal.user_id, changes)
        return saved.as_dict()

    async def load_webhook(
        session: AsyncSession, webhook_id: uuid.UUID, organisation_id: str, *, kept: bool = False
    ) -> Webhook:
        """The organisation's webhook (404 otherwise); ``kept``: not deleted until the transaction ends."""
        webhook = await session.get(
            Webhook, webhook_id, with_for_update={"read": True, "key_share": True} if kept else None
        )
        if webhook is None or webhook.organisation_id != organisation_id:
            raise ApiError(404, "webhook_not_found", f"no webhook {webhook_id}")
        return webhook

    @router.get("/webhooks", summary="The organisation's webhooks")
    async def list_webhooks(principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session:
            rows = (
                (
                    await session.execute(
                        select(Webhook)
                        .where(Webhook.organisation_id == principal.organisation_id)
                        .order_by(Webhook.created_at, Webhook.id)
                    )
                )
                .scalars()
                .all()
            )
        return {"items": [webhooks.webhook_view(row) for row in rows]}

    @router.post("/webhooks", status_code=201, summary="Add a webhook; its signing secret is shown this once")
    async def create_webhook(
        body: WebhookCreate, principal: CurrentPrincipal, request: Request
    ) -> dict[str, Any]:
        idempotent = idempotency.from_request(request, principal.organisation_id, json_part(body))
        async with runtime.session() as session:
            await idempotency.replay_if_known(session, idempotent)
        try:
            public_urls.check_url(body.url, allow_private=settings.webhook_allow_private_urls)
        except public_urls.UnsafeUrlError as error:
            raise ApiError(422, "webhook_url_refused", str(error)) from None
        webhook = Webhook(
            id=uuid.uuid4(),
            organisation_id=principal.organisation_id,
            owner_id=principal.user_id,
            url=body.url,
            events=body.events,
            secret_salt=webhooks.new_salt(),
            created_at=datetime.now(UTC),
        )
        async with runtime.session() as session, session.begin():
            await refuse_past_limit(
                session,
                Webhook.organisation_id,
                principal.organisation_id,
                limit=MAX_WEBHOOKS_PER_ORGANISATION,
                things="webhooks",
            )
            session.add(webhook)
            secret = webhooks.webhook_secret(settings.signing_secret.get_secret_value(), webhook.secret_salt)
            view = {**webhooks.webhook_view(webhook), "secret": secret}
            await idempotency.remember(session, idempotent, 201, view, redact=("secret",))
        return view

    @router.delete("/webhooks/{webhook_id}", status_code=204, summary="Remove a webhook and its deliveries")
    async def delete_webhook(webhook_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        async with runtime.session() as session, session.begin():
            await session.delete(await load_webhook(session, webhook_id, principal.organisation_id))

    @router.get("/webhooks/{webhook_id}/deliveries", summary="A webhook's deliveries, newest first")
    async def list_deliveries(
        webhook_id: uuid.UUID,
        principal: CurrentPrincipal,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        async with runtime.session() as session:
            await load_webhook(session, webhook_id, principal.organisation_id)
            query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
            if status:
                query = query.where(WebhookDelivery.status == status)
            rows = (
                (await session.execute(query.order_by(WebhookDelivery.created_at.desc()).limit(limit)))
                .scalars()
                .all()
            )
        return {"items": [webhooks.delivery_view(row) for row in rows]}

    @router.post("/webhooks/{webhook_id}/test", status_code=202, summary="Send the webhook a ping")
    async def test_webhook(webhook_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        event_id = uuid.uuid4()
        async with runtime.session() as session, session.begin():
            webhook = await load_webhook(session, webhook_id, principal.organisation_id, kept=True)
            await hold_transaction_lock(session, f"chromaline.webhook_pings.{webhook.id}")
            pending = await session.scalar(
                select(func.count()).where(
                    WebhookDelivery.webhook_id == webhook.id,
                    WebhookDelivery.event_type == webhooks.PING,
                    WebhookDelivery.status == "pending",
                )
            )
            if (pending or 0) >= MAX_PENDING_PINGS:
                raise ApiError(
                    429,
                    "too_many_pings",
                    f"{MAX_PENDING_PINGS} pings of this webhook are still being delivered; see its deliveries",
                    headers={"Retry-After": str(PING_RETRY_AFTER_SECONDS)},
                )
            payload = webhooks.event_payload(
                webhooks.PING, event_id, principal.organisation_id, {"webhook_id": str(webhook.id)}
            )
            delivery = webhooks.new_delivery(webhook.id, webhooks.PING, event_id, payload)
            session.add(delivery)
        return webhooks.delivery_view(delivery)

    return router
