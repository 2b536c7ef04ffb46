"""Idempotency keys: the first response to each key, per organisation, for 24 hours.

Revision ID: 0003
"""

from alembic import op

from chromaline.common import idempotency
from chromaline.common.db.migrations import migration_schema

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    idempotency.create_table(migration_schema())


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=migration_schema())
