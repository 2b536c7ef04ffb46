"""Sign-in throttling per account and per client address, kept in the database so that every
replica counts the same failures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth.models import AuditEntry, SignInFailure
from chromaline.auth.settings import AuthSettings
from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.problems import ApiError


@dataclass(frozen=True)
class Throttled:
    retry_after_seconds: int
    by: str
    """``account`` or ``address``."""

    def refusal(self, code: str, detail: str) -> ApiError:
        """The 429 that tells the caller to wait ``retry_after_seconds``."""
        return ApiError(
            429,
            code,
            detail,
            headers={"Retry-After": str(self.retry_after_seconds)},
            retry_after=self.retry_after_seconds,
        )


async def _retry_after(
    session: AsyncSession, condition: sa.ColumnElement[bool], limit: int, window: timedelta, now: datetime
) -> int | None:
    """Seconds until fewer than ``limit`` failures matching ``condition`` remain in the window."""
    query = (
        sa.select(SignInFailure.occurred_at)
        .where(condition, SignInFailure.occurred_at > now - window)
        .order_by(SignInFailure.occurred_at.desc())
        .offset(limit - 1)
        .limit(1)
    )
    oldest_counted = (await session.execute(query)).scalar_one_or_none()
    if oldest_counted is None:
        return None
    return max(1, math.ceil((oldest_counted + window - now).total_seconds()))


async def check(
    session: AsyncSession, settings: AuthSettings, email: str, address: str, now: datetime
) -> Throttled | None:
    """Whether sign-in is held back for this account or this address, and for how long.

    Attempts on one account, then from one address, wait for each other (locks held to the end of
    the caller's transaction, which records the failure; always taken in this order), so guesses
    sent at once are counted one by one."""
    await hold_transaction_lock(session, f"sign-in:{email}")
    await hold_transaction_lock(session, f"sign-in-address:{address}")
    window = timedelta(seconds=settings.throttle_window_seconds)
    for by, condition, limit in (
        ("account", SignInFailure.email == email, settings.throttle_max_failures_per_account),
        ("address", SignInFailure.client_address == address, settings.throttle_max_failures_per_address),
    ):
        seconds = await _retry_after(session, condition, limit, window, now)
        if seconds is not None:
            return Throttled(seconds, by)
    return None


async def check_sign_up(session: AsyncSession, settings: AuthSettings, address: str) -> Throttled | None:
    """Whether ``address`` has registered its share of accounts in the window, and for how long.

    Counted from the audit log's ``user.registered`` entries, by the database's clock; sign-ups
    from one address wait for each other (a lock per address held to the end of the
    transaction), so a burst running alongside itself is counted exactly."""
    await hold_transaction_lock(session, f"sign-up:{address}")
    window = timedelta(seconds=settings.sign_up_throttle_window_seconds)
    oldest_counted = await session.scalar(
        sa.select(AuditEntry.occurred_at)
        .where(
            AuditEntry.action == "user.registered",
            AuditEntry.client_address == address,
            AuditEntry.occurred_at > sa.func.now() - window,
        )
        .order_by(AuditEntry.occurred_at.desc())
        .offset(settings.sign_up_max_per_address - 1)
        .limit(1)
    )
    if oldest_counted is None:
        return None
    now = await session.scalar(sa.select(sa.func.now()))
    assert now is not None
    return Throttled(max(1, math.ceil((oldest_counted + window - now).total_seconds())), "address")


def note_failure(session: AsyncSession, email: str, address: str, now: datetime) -> None:
    session.add(SignInFailure(email=email, client_address=address, occurred_at=now))


async def forget_account_failures(session: AsyncSession, email: str) -> None:
    """A successful sign-in clears the account's count (the address's count stays)."""
    await session.execute(sa.delete(SignInFailure).where(SignInFailure.email == email))


async def prune(session: AsyncSession, settings: AuthSettings, now: datetime) -> None:
    window = timedelta(seconds=settings.throttle_window_seconds)
    await session.execute(sa.delete(SignInFailure).where(SignInFailure.occurred_at < now - window))
