"""Idempotency keys: the first response to each key, per organisation, for 24 hours.

Revision ID: 0003
"""

from alembic import op

from chromaline.common.db.migrations import create_idempotency_keys, migration_schema

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_idempotency_keys(op, migration_schema())


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=migration_schema())
