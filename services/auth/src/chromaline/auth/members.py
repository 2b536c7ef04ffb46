"""An organisation's members and their roles, managed by its admins."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit
from chromaline.auth.accounts import user_by_email
from chromaline.auth.models import Membership, Organisation, User
from chromaline.common.problems import ApiError


async def role_in(session: AsyncSession, user_id: uuid.UUID, organisation_id: uuid.UUID) -> str | None:
    membership = await session.get(Membership, (user_id, organisation_id))
    return membership.role if membership else None


async def require_admin(session: AsyncSession, user_id: uuid.UUID, organisation_id: uuid.UUID) -> None:
    """Lock the organisation until the caller's transaction ends, then check the user is its admin:
    admins' changes to one organisation run one after another, so two admins demoting or removing
    each other at once cannot both pass the last-admin check."""
    await session.get(Organisation, organisation_id, with_for_update=True)
    role = await role_in(session, user_id, organisation_id)
    if role is None:
        raise ApiError(404, "organisation_not_found", f"no organisation {organisation_id}")
    if role != "admin":
        raise ApiError(403, "forbidden", "only an admin of the organisation may do this")


async def list_members(session: AsyncSession, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        sa.select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id == organisation_id)
        .order_by(User.email)
    )
    return [
        {"user_id": str(user.id), "email": user.email, "display_name": user.display_name, "role": role}
        for user, role in rows.all()
    ]


async def memberships_view(session: AsyncSession, user_id: uuid.UUID) -> list[dict[str, str]]:
    rows = await session.execute(
        sa.select(Organisation, Membership.role)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.user_id == user_id)
        .order_by(Organisation.name)
    )
    return [
        {"organisation_id": str(organisation.id), "organisation_name": organisation.name, "role": role}
        for organisation, role in rows.all()
    ]


async def _admins_left_without(session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID) -> int:
    query = sa.select(sa.func.count()).where(
        Membership.organisation_id == organisation_id,
        Membership.role == "admin",
        Membership.user_id != user_id,
    )
    return int((await session.execute(query)).scalar_one())


async def add_member(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    email: str,
    role: str,
    actor_id: uuid.UUID,
    address: str,
) -> dict[str, Any]:
    user = await user_by_email(session, email)
    if user is None:
        raise ApiError(404, "user_not_found", "no account with this email; the person must register first")
    added = await session.execute(
        insert(Membership)
        .values(user_id=user.id, organisation_id=organisation_id, role=role)
        .on_conflict_do_nothing(index_elements=[Membership.user_id, Membership.organisation_id])
        .returning(Membership.user_id)
    )
    if added.first() is None:  # also when a request running alongside this one added them
        raise ApiError(409, "already_member", "this user is already a member")
    await audit.record(
        session,
        "member.added",
        user_id=user.id,
        organisation_id=organisation_id,
        actor_id=actor_id,
        client_address=address,
        role=role,
    )
    return {"user_id": str(user.id), "email": user.email, "display_name": user.display_name, "role": role}


async def change_role(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    actor_id: uuid.UUID,
    address: str,
) -> None:
    membership = await session.get(Membership, (user_id, organisation_id), with_for_update=True)
    if membership is None:
        raise ApiError(404, "member_not_found", f"no member {user_id}")
    if (
        membership.role == "admin"
        and role != "admin"
        and not await _admins_left_without(session, organisation_id, user_id)
    ):
        raise ApiError(409, "last_admin", "an organisation keeps at least one admin")
    previous, membership.role = membership.role, role
    await audit.record(
        session,
        "member.role_changed",
        user_id=user_id,
        organisation_id=organisation_id,
        actor_id=actor_id,
        client_address=address,
        previous=previous,
        role=role,
    )


async def remove_member(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID, actor_id: uuid.UUID, address: str
) -> None:
    membership = await session.get(Membership, (user_id, organisation_id), with_for_update=True)
    if membership is None:
        raise ApiError(404, "member_not_found", f"no member {user_id}")
    if membership.role == "admin" and not await _admins_left_without(session, organisation_id, user_id):
        raise ApiError(409, "last_admin", "an organisation keeps at least one admin")
    await session.delete(membership)
    await audit.record(
        session,
        "member.removed",
        user_id=user_id,
        organisation_id=organisation_id,
        actor_id=actor_id,
        client_address=address,
    )
