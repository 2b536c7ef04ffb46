"""Which publisher each job id belongs to, and which blobs a partner's job may read, in the
workers that take ``image.uploaded``.

A partner names its own job ids, and the outcome events it hears are those of every job, so it
learns the ids of other organisations' jobs. The workers store a job's results under its id: an
``image.uploaded`` naming a job id someone else already used would overwrite another
organisation's corrected image, profile and report. The first ``image.uploaded`` of a job id
claims it for its publisher (our own services count as one); one from any other publisher is
refused.

The blob references a partner's event names are its own choice too, and outcome events carry
other jobs' references (``original``, results): a partner's job may read only blobs in the
originals bucket under ``<its broker user>/``, so it cannot have another organisation's photo,
result or profile processed and handed back to it.
"""

from __future__ import annotations

import functools
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.blobs import buckets
from chromaline.common.bus.publishers import internal_publishers
from chromaline.common.db.migrations import SchemaOperations
from chromaline.common.events.contracts import BlobRef
from chromaline.common.settings import ServiceSettings

TABLE = "job_publishers"
INTERNAL = "internal"
"""The owner our own services' jobs are claimed for, whichever broker user published them."""


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("publisher", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


@functools.cache
def job_publishers_table(schema: str | None) -> sa.Table:
    """The claimed job ids of ``schema``; ``None`` leaves it to the connection's ``search_path``."""
    return sa.Table(TABLE, sa.MetaData(schema=schema), *_columns())


def create_job_publishers(op: SchemaOperations, schema: str) -> None:
    """Create the table, for a worker's ``0003_job_publishers`` migration."""
    op.create_table(TABLE, *_columns(), schema=schema)


def drop_job_publishers(op: SchemaOperations, schema: str) -> None:
    op.drop_table(TABLE, schema=schema)


def owner_name(publisher: str, settings: ServiceSettings) -> str:
    """Whom a job published by ``publisher`` belongs to: :data:`INTERNAL` for our services."""
    return INTERNAL if publisher in internal_publishers(settings) else publisher


async def claim_job(session: AsyncSession, job_id: uuid.UUID, owner: str, *, known_before: bool) -> bool:
    """Claim ``job_id`` for ``owner``, or find it claimed: whether it is ``owner``'s.

    ``known_before``: the worker holds results of the job from before job ids were claimed (ours,
    then), so no partner may claim it now."""
    table = job_publishers_table(None)
    query = sa.select(table.c.publisher).where(table.c.job_id == job_id)
    claimed_by = await session.scalar(query)
    if claimed_by is None:
        if known_before and owner != INTERNAL:
            return False
        await session.execute(
            insert(table)
            .values(job_id=job_id, publisher=owner)
            .on_conflict_do_nothing(index_elements=[table.c.job_id])
        )
        claimed_by = await session.scalar(query)
    return claimed_by == owner


def partner_prefix(owner: str) -> str:
    return f"{owner}/"


def may_read(owner: str, ref: BlobRef) -> bool:
    """Whether a job of ``owner`` may name ``ref`` (a photo, a profile): ours may name any blob,
    a partner's only its own, in the originals bucket under ``<partner>/``."""
    if owner == INTERNAL:
        return True
    inside = ref.key.startswith(partner_prefix(owner)) and ".." not in ref.key.split("/")
    return ref.bucket == buckets.ORIGINALS and inside
