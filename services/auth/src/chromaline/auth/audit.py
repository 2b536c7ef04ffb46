"""The audit log: written in the transaction of the change it records, never changed afterwards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth.models import AuditEntry, Membership
from chromaline.common.logging import get_logger

log = get_logger(__name__)


async def record(
    session: AsyncSession,
    action: str,
    *,
    user_id: uuid.UUID | None = None,
    organisation_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    client_address: str | None = None,
    **details: Any,
) -> None:
    """Add an entry to the audit log, in the caller's transaction."""
    session.add(
        AuditEntry(
            action=action,
            user_id=user_id,
            organisation_id=organisation_id,
            actor_id=actor_id,
            client_address=client_address,
            details=details,
        )
    )
    log.info(
        "audit.recorded",
        audit=True,
        action=action,
        user_id=str(user_id) if user_id else None,
        organisation_id=str(organisation_id) if organisation_id else None,
    )


@dataclass(frozen=True)
class AuditQuery:
    organisation_id: uuid.UUID
    action: str | None = None
    user_id: uuid.UUID | None = None
    since: datetime | None = None
    page: int = 1
    page_size: int = 50


async def search(session: AsyncSession, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
    """An organisation's entries, newest first: those about it and those about its members'
    accounts (sign-in failures, password changes), never what a member did in another organisation."""
    members = sa.select(Membership.user_id).where(Membership.organisation_id == query.organisation_id)
    statement = sa.select(AuditEntry).where(
        sa.or_(
            AuditEntry.organisation_id == query.organisation_id,
            sa.and_(AuditEntry.organisation_id.is_(None), AuditEntry.user_id.in_(members)),
        )
    )
    if query.action:
        statement = statement.where(AuditEntry.action == query.action)
    if query.user_id:
        statement = statement.where(AuditEntry.user_id == query.user_id)
    if query.since:
        statement = statement.where(AuditEntry.occurred_at >= query.since)
    total = (await session.execute(sa.select(sa.func.count()).select_from(statement.subquery()))).scalar_one()
    rows = (
        await session.execute(
            statement.order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
            .offset((query.page - 1) * query.page_size)
            .limit(query.page_size)
        )
    ).scalars()
    return total, list(rows)
