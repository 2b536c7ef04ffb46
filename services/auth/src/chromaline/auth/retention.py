"""An organisation's retention period: read by its members, changed by its admins.

A change is audited (``organisation.retention_changed``, with the old and the new value) and
published as ``organisation.retention_changed`` in the transaction that makes it; the gateway
keeps its own copy of every organisation's period and applies it when it sweeps.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit
from chromaline.auth.context import AuthContext
from chromaline.auth.models import Organisation
from chromaline.common.events.contracts import RETENTION_DAYS_MAX, OrganisationRetentionChanged
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import add_to_outbox
from chromaline.common.problems import ApiError

PRODUCER = "auth"


def check_days(days: int | None, default_days: int) -> None:
    """Refuse a period outside 1 … RETENTION_DAYS_MAX days (None asks for the default)."""
    if days is not None and not 1 <= days <= RETENTION_DAYS_MAX:
        raise ApiError(
            422,
            "invalid_retention_days",
            f"days must be a whole number from 1 to {RETENTION_DAYS_MAX}, "
            f"or null for the default of {default_days} days",
        )


def retention_view(organisation: Organisation, default_days: int) -> dict[str, Any]:
    return {
        "organisation_id": str(organisation.id),
        "days": organisation.retention_days,
        "default_days": default_days,
        "effective_days": organisation.retention_days or default_days,
    }


async def organisation_retention(
    session: AsyncSession, organisation_id: uuid.UUID, default_days: int
) -> dict[str, Any]:
    organisation = await session.get(Organisation, organisation_id)
    if organisation is None:
        raise ApiError(404, "organisation_not_found", f"no organisation {organisation_id}")
    return retention_view(organisation, default_days)


async def change_retention(
    session: AsyncSession,
    context: AuthContext,
    organisation_id: uuid.UUID,
    days: int | None,
    *,
    actor_id: uuid.UUID,
    client_address: str,
) -> dict[str, Any]:
    """Set the period (the caller is an admin of the organisation); no-op when it is unchanged."""
    default_days = context.settings.retention_default_days
    check_days(days, default_days)
    organisation = await session.get(Organisation, organisation_id, with_for_update=True)
    if organisation is None:
        raise ApiError(404, "organisation_not_found", f"no organisation {organisation_id}")
    previous = organisation.retention_days
    if previous == days:
        return retention_view(organisation, default_days)
    organisation.retention_days = days
    await audit.record(
        session,
        "organisation.retention_changed",
        organisation_id=organisation_id,
        actor_id=actor_id,
        client_address=client_address,
        previous_days=previous,
        days=days,
        default_days=default_days,
    )
    event = OrganisationRetentionChanged(
        organisation_id=organisation_id,
        days=days,
        previous_days=previous,
        changed_by=actor_id,
        changed_at=context.clock(),
    )
    await add_to_outbox(session, make_envelope(PRODUCER, str(organisation_id), event))
    return retention_view(organisation, default_days)
