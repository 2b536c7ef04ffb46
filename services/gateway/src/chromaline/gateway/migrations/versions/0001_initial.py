"""Jobs, batches, saved profiles, pending uploads; outbox and inbox.

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
    now = sa.func.now()
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organisation_id", sa.String(64), index=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        schema=schema,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("batch_id", sa.Uuid, index=True),
        sa.Column("organisation_id", sa.String(64), index=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("reason", sa.String(64)),
        sa.Column("message", sa.Text),
        sa.Column("options", JSONB, nullable=False),
        sa.Column("original", JSONB, nullable=False),
        sa.Column("results", JSONB, nullable=False, server_default="{}"),
        sa.Column("chart_type", sa.String(32)),
        sa.Column("method", sa.String(32)),
        sa.Column("delta_e_before", sa.Float),
        sa.Column("delta_e_after", sa.Float),
        sa.Column("rating", sa.String(64)),
        sa.Column("stage_times", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organisation_id", sa.String(64), index=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("source_job_id", sa.Uuid, nullable=False),
        sa.Column("blob", JSONB, nullable=False),
        sa.Column("cube", JSONB),
        sa.Column("method", sa.String(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        schema=schema,
    )
    op.create_table(
        "pending_uploads",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organisation_id", sa.String(64)),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("blob", JSONB, nullable=False),
        sa.Column("options", JSONB, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_job_id", sa.Uuid),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in ("pending_uploads", "profiles", "jobs", "batches"):
        op.drop_table(table, schema=schema)
    drop_outbox_and_inbox(op, schema)
