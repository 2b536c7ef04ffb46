"""Password resets: a single-use, short-lived token, announced by ``user.password_reset_requested``.

Only the token's digest is stored here. The event carries the link with the token in clear, as
whoever delivers it (the development log sink, a mailer) needs it; the event stays on the
internal bus, and the outbox row holding it is deleted once published and pruned.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import audit
from chromaline.auth.accounts import check_password_policy, revoke_all_sessions, user_by_email
from chromaline.auth.context import AuthContext
from chromaline.auth.digests import digest, new_secret
from chromaline.auth.models import AuditEntry, PasswordReset, User
from chromaline.auth.throttle import Throttled
from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.events.contracts import PasswordResetRequested
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import add_to_outbox

PRODUCER = "auth"


async def request_reset(
    session: AsyncSession, context: AuthContext, email: str, client_address: str
) -> Throttled | None:
    """Start a reset for the account with ``email``, if there is one (the caller cannot tell).

    Throttled per client address (the caller is told, with a wait) and per account (silently: no
    further link is sent within the window, so a mailbox cannot be flooded and the answer still
    does not say whether the account exists). Requests made at once are counted one after another."""
    settings = context.settings
    window = timedelta(seconds=settings.reset_throttle_window_seconds)
    # requests from one address, then for one account, wait for each other, so each is counted
    await hold_transaction_lock(session, f"reset:{client_address}")
    from_address = await session.scalar(
        sa.select(sa.func.count()).where(
            AuditEntry.action == "password.reset_requested",
            AuditEntry.client_address == client_address,
            AuditEntry.occurred_at > sa.func.now() - window,
        )
    )
    if (from_address or 0) >= settings.reset_max_per_address:
        return Throttled(settings.reset_throttle_window_seconds, "address")
    user = await user_by_email(session, email)
    now = context.clock()
    if user is not None:
        await hold_transaction_lock(session, f"reset-account:{user.id}")
        recent = await session.scalar(
            sa.select(sa.func.count()).where(
                PasswordReset.user_id == user.id, PasswordReset.created_at > now - window
            )
        )
        if (recent or 0) >= settings.reset_max_per_account:
            user = None
    if user is None:
        await audit.record(session, "password.reset_requested", client_address=client_address, known=False)
        return None
    token = new_secret()
    expires_at = now + timedelta(seconds=context.settings.reset_token_seconds)
    session.add(
        PasswordReset(
            id=uuid.uuid4(), user_id=user.id, token_hash=digest(token), created_at=now, expires_at=expires_at
        )
    )
    link = reset_link(context.settings.public_base_url, token)
    event = PasswordResetRequested(user_id=user.id, email=user.email, reset_url=link, expires_at=expires_at)
    await add_to_outbox(session, make_envelope(PRODUCER, str(user.id), event))
    await audit.record(
        session, "password.reset_requested", user_id=user.id, client_address=client_address, known=True
    )
    return None


async def reset_password(
    session: AsyncSession, context: AuthContext, token: str, new_password: str, client_address: str
) -> bool:
    """Set the new password and spend ``token`` when it is a live, unused reset token."""
    check_password_policy(context, new_password)
    now = context.clock()
    query = sa.select(PasswordReset).where(PasswordReset.token_hash == digest(token)).with_for_update()
    reset = (await session.execute(query)).scalar_one_or_none()
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        return False
    reset.used_at = now
    user = await session.get(User, reset.user_id, with_for_update=True)
    assert user is not None
    user.password_hash = await context.passwords.hash(new_password)
    await revoke_all_sessions(session, user.id, now)
    await audit.record(
        session, "password.reset", user_id=user.id, actor_id=user.id, client_address=client_address
    )
    return True


def reset_link(public_base_url: str, token: str) -> str:
    """The web app's reset page, which reads the token from the query of its hash route."""
    return f"{public_base_url.rstrip('/')}/#/reset?{urlencode({'token': token})}"
