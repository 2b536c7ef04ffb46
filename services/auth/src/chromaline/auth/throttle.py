"""Sign-in throttling per account and per client address, kept in the database so that every
replica counts the same failures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth.models import SignInFailure
from chromaline.auth.settings import AuthSettings


@dataclass(frozen=True)
class Throttled:
    retry_after_seconds: int
    by: str
    """``account`` or ``address``."""


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
    """Whether sign-in is held back for this account or this address, and for how long."""
    window = timedelta(seconds=settings.throttle_window_seconds)
    for by, condition, limit in (
        ("account", SignInFailure.email == email, settings.throttle_max_failures_per_account),
        ("address", SignInFailure.client_address == address, settings.throttle_max_failures_per_address),
    ):
        seconds = await _retry_after(session, condition, limit, window, now)
        if seconds is not None:
            return Throttled(seconds, by)
    return None


def note_failure(session: AsyncSession, email: str, address: str, now: datetime) -> None:
    session.add(SignInFailure(email=email, client_address=address, occurred_at=now))


async def forget_account_failures(session: AsyncSession, email: str) -> None:
    """A successful sign-in clears the account's count (the address's count stays)."""
    await session.execute(sa.delete(SignInFailure).where(SignInFailure.email == email))


async def prune(session: AsyncSession, settings: AuthSettings, now: datetime) -> None:
    window = timedelta(seconds=settings.throttle_window_seconds)
    await session.execute(sa.delete(SignInFailure).where(SignInFailure.occurred_at < now - window))
