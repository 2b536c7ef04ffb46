"""Named locks between processes, held by a PostgreSQL transaction."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


async def hold_transaction_lock(connection: AsyncSession | AsyncConnection, key: str) -> None:
    """Wait for the lock named ``key``, then hold it until the current transaction ends: an
    advisory lock on the key's hash, so any process of any replica sharing the database waits."""
    await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
