"""Jobs a worker has forgotten (expired or deleted on request), and the per-job lock that keeps
them forgotten.

A job may be deleted while a worker is still processing it. The worker's ``job.expired`` handler
deletes what it stored and records the job in its ``forgotten_jobs`` table; its processing
handler stores its results only inside a transaction that holds the same per-job lock and finds
the job not forgotten. Whichever comes first, no result of a deleted job survives: either the
results were committed before the deletion took the lock (and the deletion removes them), or the
deletion committed first (and the processing stores nothing).

The lock is a transaction-scoped advisory lock keyed by the service and the job, so it is held
until the transaction ends and needs no row to exist.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.db.locks import hold_transaction_lock
from chromaline.common.db.migrations import SchemaOperations
from chromaline.common.runtime import ServiceRuntime

TABLE = "forgotten_jobs"


@functools.cache
def forgotten_jobs_table(schema: str | None) -> sa.Table:
    """The forgotten jobs of ``schema``; ``None`` leaves it to the connection's ``search_path``."""
    return sa.Table(
        TABLE,
        sa.MetaData(schema=schema),
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def create_forgotten_jobs(op: SchemaOperations, schema: str) -> None:
    """Create the table, for a worker's ``0002_forgotten_jobs`` migration (spelt out here, as it
    was first created, so an applied migration never changes)."""
    op.create_table(
        TABLE,
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )


def drop_forgotten_jobs(op: SchemaOperations, schema: str) -> None:
    op.drop_table(TABLE, schema=schema)


async def lock_job(session: AsyncSession, service: str, job_id: uuid.UUID) -> None:
    """Hold the job's lock for ``service`` until the session's transaction ends."""
    await hold_transaction_lock(session, f"chromaline.job.{service}.{job_id}")


async def is_forgotten(session: AsyncSession, job_id: uuid.UUID) -> bool:
    table = forgotten_jobs_table(None)
    found = await session.execute(sa.select(table.c.job_id).where(table.c.job_id == job_id))
    return found.first() is not None


async def remember_forgotten(session: AsyncSession, job_id: uuid.UUID, reason: str) -> None:
    table = forgotten_jobs_table(None)
    await session.execute(
        insert(table)
        .values(job_id=job_id, reason=reason)
        .on_conflict_do_nothing(index_elements=[table.c.job_id])
    )


@asynccontextmanager
async def job_transaction(runtime: ServiceRuntime, job_id: uuid.UUID) -> AsyncIterator[AsyncSession | None]:
    """A transaction holding the job's lock, or None when the job is forgotten: store a job's
    results and announce them inside it, and store nothing when it yields None."""
    async with runtime.session() as session, session.begin():
        await lock_job(session, runtime.name, job_id)
        yield None if await is_forgotten(session, job_id) else session


async def forgotten_now(runtime: ServiceRuntime, job_id: uuid.UUID) -> bool:
    """Whether the job is forgotten already (a cheap look before expensive work; the answer that
    counts is the one under the lock, in :func:`job_transaction`)."""
    async with runtime.session() as session:
        return await is_forgotten(session, job_id)
