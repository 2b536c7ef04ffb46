"""Reports; outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import create_outbox_and_inbox, drop_outbox_and_inbox, migration_schema

revision = "0001"
down_revision = None


def upgrade() -> None:
    schema = migration_schema()
    create_outbox_and_inbox(op, schema)
    op.create_table(
        "reports",
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("prefix", sa.String(200), nullable=False),
        sa.Column("rating", sa.String(64)),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("reports", schema=schema)
    drop_outbox_and_inbox(op, schema)
