"""Platform operators: who may operate the whole deployment (dead letters, queues, system figures).

Apart from organisation roles: being admin of an organisation, which every sign-up is of its own,
gives nothing here. The first operator is named with ``chromaline platform grant <email>``;
afterwards operators may also name and remove each other through the API. Every change is audited.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit
from chromaline.auth.models import User
from chromaline.common.problems import ApiError


async def is_platform_operator(session: AsyncSession, user_id: uuid.UUID) -> bool:
    user = await session.get(User, user_id)
    return user is not None and user.platform_operator


async def require_platform_operator(session: AsyncSession, user_id: uuid.UUID) -> None:
    if not await is_platform_operator(session, user_id):
        raise ApiError(403, "not_a_platform_operator", "only a platform operator may do this")


async def set_platform_operator(
    session: AsyncSession,
    user: User | None,
    granted: bool,
    *,
    actor_id: uuid.UUID | None,
    client_address: str | None,
) -> User:
    """Grant (or revoke) the platform role; 404 when there is no such account."""
    if user is None:
        raise ApiError(404, "user_not_found", "no such account")
    if user.platform_operator != granted:
        user.platform_operator = granted
        await audit.record(
            session,
            "platform.operator_granted" if granted else "platform.operator_revoked",
            user_id=user.id,
            actor_id=actor_id,
            client_address=client_address,
        )
    return user
