"""Registration, sign-in, refresh-token rotation, sign-out and password changes.

Refresh tokens are random strings stored as digests. Each sign-in starts a family; every refresh
spends the presented token and issues the next of its family. Presenting a spent token again
means it was copied: the whole family is revoked and the caller has to sign in again.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit, throttle
from chromaline.auth.access_tokens import AccessGrant, issue_access_token
from chromaline.auth.context import AuthContext
from chromaline.auth.digests import digest, new_secret
from chromaline.auth.models import Membership, Organisation, PasswordReset, RefreshToken, User
from chromaline.auth.signing_keys import key_to_sign_with
from chromaline.common.problems import ApiError


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def view(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def normalise_email(email: str) -> str:
    """One spelling per address: ``é`` typed as one character or as ``e`` and an accent is one."""
    return unicodedata.normalize("NFC", email).strip().lower()


def check_password_policy(context: AuthContext, password: str) -> None:
    if len(password) < context.passwords.min_length:
        raise ApiError(
            422, "weak_password", f"a password needs at least {context.passwords.min_length} characters"
        )


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> dict[str, str]:
    rows = await session.execute(
        sa.select(Membership.organisation_id, Membership.role).where(Membership.user_id == user_id)
    )
    return {str(organisation): role for organisation, role in rows.all()}


async def first_joined(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    """The organisation sign-in opens: the one the user joined first (their own, for whoever
    signed up), never one an admin elsewhere added them to later."""
    return await session.scalar(
        sa.select(Membership.organisation_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.organisation_id)
        .limit(1)
    )


async def issue_tokens(
    session: AsyncSession,
    context: AuthContext,
    user_id: uuid.UUID,
    organisation_id: uuid.UUID,
    *,
    family_id: uuid.UUID | None = None,
) -> TokenPair | None:
    """A new access token and the next refresh token of ``family_id`` (a new family by default);
    None when the user is no longer a member of the organisation."""
    now = context.clock()
    memberships = await memberships_of(session, user_id)
    role = memberships.get(str(organisation_id))
    if role is None:
        return None
    key = await key_to_sign_with(session, context.ring, context.settings, now)
    user = await session.get(User, user_id)
    grant = AccessGrant(
        user_id, organisation_id, role, memberships, platform_operator=bool(user and user.platform_operator)
    )
    secret = new_secret()
    session.add(
        RefreshToken(
            id=uuid.uuid4(),
            token_hash=digest(secret),
            family_id=family_id or uuid.uuid4(),
            user_id=user_id,
            organisation_id=organisation_id,
            created_at=now,
            expires_at=now + timedelta(days=context.settings.refresh_token_days),
        )
    )
    return TokenPair(
        issue_access_token(grant, key, context.ring, context.settings, now),
        secret,
        context.settings.access_token_seconds,
    )


async def register(
    session: AsyncSession,
    context: AuthContext,
    *,
    email: str,
    password: str,
    display_name: str,
    organisation_name: str,
    client_address: str,
) -> tuple[User, Organisation, TokenPair]:
    """A new user and a new organisation of which the user is the admin; 429 once the client
    address has registered ``sign_up_max_per_address`` accounts in the window."""
    check_password_policy(context, password)
    email = normalise_email(email)
    held = await throttle.check_sign_up(session, context.settings, client_address)
    if held is not None:
        raise held.refusal(
            "too_many_sign_ups", "too many accounts registered from this address; try again later"
        )
    if (await session.execute(sa.select(User.id).where(User.email == email))).first() is not None:
        raise ApiError(409, "email_taken", "an account with this email exists")
    user_id = uuid.uuid4()
    claimed = await session.execute(
        insert(User)
        .values(
            id=user_id,
            email=email,
            display_name=display_name,
            password_hash=await context.passwords.hash(password),
        )
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.id)
    )
    if claimed.first() is None:  # registered by a request running alongside this one
        raise ApiError(409, "email_taken", "an account with this email exists")
    user = await session.get_one(User, user_id)
    organisation = Organisation(id=uuid.uuid4(), name=organisation_name)
    session.add(organisation)
    await session.flush()
    session.add(Membership(user_id=user.id, organisation_id=organisation.id, role="admin"))
    await session.flush()
    await audit.record(
        session,
        "user.registered",
        user_id=user.id,
        organisation_id=organisation.id,
        actor_id=user.id,
        client_address=client_address,
    )
    tokens = await issue_tokens(session, context, user.id, organisation.id)
    assert tokens is not None
    return user, organisation, tokens


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (
        await session.execute(sa.select(User).where(User.email == normalise_email(email)))
    ).scalar_one_or_none()


async def sign_in(
    session: AsyncSession, context: AuthContext, email: str, password: str, client_address: str
) -> TokenPair | throttle.Throttled | None:
    """Tokens for the organisation the user joined first; the throttle's verdict; or None for wrong credentials.

    The caller commits whatever the outcome, so that failures are counted and audited.
    """
    now = context.clock()
    email = normalise_email(email)
    held = await throttle.check(session, context.settings, email, client_address, now)
    if held is not None:
        await audit.record(
            session, "sign_in.throttled", client_address=client_address, email=email, by=held.by
        )
        return held
    user = await user_by_email(session, email)
    if not await context.passwords.verify(user.password_hash if user else None, password) or user is None:
        throttle.note_failure(session, email, client_address, now)
        await audit.record(
            session,
            "sign_in.failed",
            user_id=user.id if user else None,
            client_address=client_address,
            email=email,
        )
        return None
    if context.passwords.needs_rehash(user.password_hash):
        user.password_hash = await context.passwords.hash(password)
    await throttle.forget_account_failures(session, email)
    organisation_id = await first_joined(session, user.id)
    tokens = await issue_tokens(session, context, user.id, organisation_id) if organisation_id else None
    if tokens is None:
        raise ApiError(403, "no_membership", "this account belongs to no organisation")
    await audit.record(
        session,
        "sign_in.succeeded",
        user_id=user.id,
        organisation_id=organisation_id,
        client_address=client_address,
    )
    return tokens


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """End every session of the user and spend every reset link sent before: a new password
    leaves nothing that opened the account with the old one."""
    await session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )


async def _locked_refresh_token(session: AsyncSession, secret: str) -> RefreshToken | None:
    query = sa.select(RefreshToken).where(RefreshToken.token_hash == digest(secret)).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def refresh(
    session: AsyncSession, context: AuthContext, secret: str, client_address: str
) -> TokenPair | str:
    """The next token pair, or the code of the refusal (the caller commits either way)."""
    now = context.clock()
    token = await _locked_refresh_token(session, secret)
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return "invalid_refresh_token"
    if token.spent_at is not None:
        await _revoke_family(session, token.family_id, now)
        await audit.record(
            session,
            "token.refresh_reused",
            user_id=token.user_id,
            organisation_id=token.organisation_id,
            client_address=client_address,
            family_id=str(token.family_id),
        )
        return "refresh_token_reused"
    token.spent_at = now
    tokens = await issue_tokens(
        session, context, token.user_id, token.organisation_id, family_id=token.family_id
    )
    return tokens if tokens is not None else "invalid_refresh_token"


async def sign_out(session: AsyncSession, context: AuthContext, secret: str, client_address: str) -> None:
    """Revoke the family of the presented refresh token (unknown tokens are ignored)."""
    token = await _locked_refresh_token(session, secret)
    if token is None:
        return
    await _revoke_family(session, token.family_id, context.clock())
    await audit.record(
        session,
        "sign_out",
        user_id=token.user_id,
        organisation_id=token.organisation_id,
        client_address=client_address,
    )


async def change_password(
    session: AsyncSession,
    context: AuthContext,
    user_id: uuid.UUID,
    current_password: str,
    new_password: str,
    client_address: str,
) -> bool | throttle.Throttled:
    """False when ``current_password`` is wrong, counted as a failed sign-in (so a stolen session
    cannot guess it faster than sign-in could), or the throttle's verdict; otherwise the password
    changes and every refresh token of the user is revoked."""
    check_password_policy(context, new_password)
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        return False
    now = context.clock()
    held = await throttle.check(session, context.settings, user.email, client_address, now)
    if held is not None:
        return held
    if not await context.passwords.verify(user.password_hash, current_password):
        throttle.note_failure(session, user.email, client_address, now)
        return False
    user.password_hash = await context.passwords.hash(new_password)
    await revoke_all_sessions(session, user.id, now)
    await audit.record(
        session, "password.changed", user_id=user.id, actor_id=user.id, client_address=client_address
    )
    return True
