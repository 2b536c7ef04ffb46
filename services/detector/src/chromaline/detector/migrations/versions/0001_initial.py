"""Detections; outbox and inbox.

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
        "detections",
        sa.Column("job_id", sa.Uuid, primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("chart_type", sa.String(32)),
        sa.Column("confidence", sa.Float),
        sa.Column("reason", sa.String(64)),
        sa.Column("message", sa.Text),
        sa.Column("corners", JSONB),
        sa.Column("charts_found", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seconds", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("detections", schema=schema)
    drop_outbox_and_inbox(op, schema)
