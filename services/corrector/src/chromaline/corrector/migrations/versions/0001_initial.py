"""Corrections; outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import create_outbox_and_inbox, drop_outbox_and_inbox, migration_schema

revision = "0001"
down_revision = None


def upgrade() -> None:
    schema = migration_schema()
    create_outbox_and_inbox(op, schema)
    op.create_table(
        "corrections",
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32)),
        sa.Column("delta_e_before", sa.Float),
        sa.Column("delta_e_after", sa.Float),
        sa.Column("cross_validated", sa.Float),
        sa.Column("reason", sa.String(64)),
        sa.Column("message", sa.Text),
        sa.Column("timings_ms", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("corrections", schema=schema)
    drop_outbox_and_inbox(op, schema)
