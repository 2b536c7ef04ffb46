"""Outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from chromaline.common.db.migrations import create_outbox_and_inbox, drop_outbox_and_inbox, migration_schema

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox(op, migration_schema())


def downgrade() -> None:
    drop_outbox_and_inbox(op, migration_schema())
