"""API keys for machines: ``clk_<prefix>_<secret>``, shown once, stored as a digest.

The prefix is kept in clear to find the row (and to let people tell their keys apart); the
whole key is compared by digest. A key acts for its user in one organisation, with the user's
current role there, narrowed by its scopes.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit
from chromaline.auth.digests import digest, new_secret, same_digest
from chromaline.auth.models import ApiKey, Membership
from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.problems import ApiError

KEY_MARK = "clk_"
MAX_LIVE_KEYS_PER_USER = 50
"""Unrevoked, unexpired keys one user may hold in one organisation: keys cost nothing to make and
are listed whole."""
LAST_USED_RESOLUTION = timedelta(seconds=60)
"""``last_used_at`` is written at most this often per key, so busy keys do not write on every call."""


@dataclass(frozen=True)
class VerifiedKey:
    key_id: uuid.UUID
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str
    scopes: list[str]

    def view(self) -> dict[str, Any]:
        return {
            "key_id": str(self.key_id),
            "user_id": str(self.user_id),
            "organisation_id": str(self.organisation_id),
            "role": self.role,
            "scopes": self.scopes,
        }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": f"{KEY_MARK}{key.prefix}",
        "scopes": key.scopes,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


async def create(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    organisation_id: uuid.UUID,
    name: str,
    scopes: list[str],
    expires_at: datetime,
    now: datetime,
    client_address: str,
) -> tuple[ApiKey, str]:
    """A new key and its clear text, which is never available again; 409 ``too_many_api_keys``
    when the user holds :data:`MAX_LIVE_KEYS_PER_USER` live keys in the organisation already
    (keys made at once are counted one after another)."""
    await hold_transaction_lock(session, f"chromaline.api_keys.{user_id}.{organisation_id}")
    live = await session.scalar(
        sa.select(sa.func.count()).where(
            ApiKey.user_id == user_id,
            ApiKey.organisation_id == organisation_id,
            ApiKey.revoked_at.is_(None),
            sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    if (live or 0) >= MAX_LIVE_KEYS_PER_USER:
        raise ApiError(
            409,
            "too_many_api_keys",
            f"you hold {MAX_LIVE_KEYS_PER_USER} live API keys in this organisation; revoke one first",
            limit=MAX_LIVE_KEYS_PER_USER,
        )
    prefix = secrets.token_hex(4)
    clear = f"{KEY_MARK}{prefix}_{new_secret()}"
    key = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        organisation_id=organisation_id,
        name=name,
        prefix=prefix,
        key_hash=digest(clear),
        scopes=sorted(set(scopes)),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(key)
    await audit.record(
        session,
        "api_key.created",
        user_id=user_id,
        organisation_id=organisation_id,
        actor_id=user_id,
        client_address=client_address,
        key_id=str(key.id),
        scopes=key.scopes,
    )
    return key, clear


async def list_for(session: AsyncSession, user_id: uuid.UUID, organisation_id: uuid.UUID) -> list[ApiKey]:
    rows = await session.execute(
        sa.select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.organisation_id == organisation_id)
        .order_by(ApiKey.created_at.desc())
    )
    return list(rows.scalars())


async def revoke(
    session: AsyncSession,
    key_id: uuid.UUID,
    *,
    actor_id: uuid.UUID,
    organisation_id: uuid.UUID,
    actor_is_admin: bool,
    now: datetime,
    client_address: str,
) -> bool:
    """Revoke a key of the actor's (or, for an admin, any key of the organisation); False if none."""
    key = await session.get(ApiKey, key_id, with_for_update=True)
    if (
        key is None
        or key.organisation_id != organisation_id
        or (key.user_id != actor_id and not actor_is_admin)
    ):
        return False
    if key.revoked_at is None:
        key.revoked_at = now
        await audit.record(
            session,
            "api_key.revoked",
            user_id=key.user_id,
            organisation_id=key.organisation_id,
            actor_id=actor_id,
            client_address=client_address,
            key_id=str(key.id),
        )
    return True


def _prefix_of(clear: str) -> str | None:
    if not clear.startswith(KEY_MARK):
        return None
    prefix, separator, _ = clear[len(KEY_MARK) :].partition("_")
    return prefix if separator and len(prefix) == 8 else None


async def verify(session: AsyncSession, clear: str, now: datetime) -> VerifiedKey | None:
    """The key's grant when it is genuine, unexpired, unrevoked and its user still a member."""
    prefix = _prefix_of(clear)
    if prefix is None:
        return None
    key = (await session.execute(sa.select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
    if key is None or not same_digest(clear, key.key_hash) or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    role = (
        await session.execute(
            sa.select(Membership.role).where(
                Membership.user_id == key.user_id, Membership.organisation_id == key.organisation_id
            )
        )
    ).scalar_one_or_none()
    if role is None:
        return None
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION:
        key.last_used_at = now
    return VerifiedKey(key.id, key.user_id, key.organisation_id, role, list(key.scopes))
