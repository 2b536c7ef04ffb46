"""How many of one kind of thing an organisation may keep (webhooks, custom charts, profiles):
each is listed whole, so without a bound one member could grow the list until no one could read it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.problems import ApiError


async def refuse_past_limit(
    session: AsyncSession,
    organisation_column: InstrumentedAttribute[Any],
    organisation_id: str,
    *,
    limit: int,
    things: str,
) -> None:
    """In the caller's transaction, before it adds one of ``things``: wait for the organisation's
    other additions of the kind (so ones made at once are counted one after another), then answer
    409 ``too_many_<things>`` when it keeps ``limit`` already."""
    await hold_transaction_lock(session, f"chromaline.{things}.{organisation_id}")
    count = await session.scalar(select(func.count()).where(organisation_column == organisation_id))
    if (count or 0) >= limit:
        raise ApiError(
            409,
            f"too_many_{things}",
            f"an organisation keeps at most {limit} {things}; delete one first",
            limit=limit,
        )
