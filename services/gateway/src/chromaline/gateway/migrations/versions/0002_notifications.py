"""Notifications, notification preferences, webhooks and their deliveries; the uploader of a job.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from chromaline.common.db.migrations import migration_schema

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    schema = migration_schema()
    now = sa.func.now()
    op.add_column("jobs", sa.Column("owner_id", sa.String(64)), schema=schema)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("organisation_id", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("job_id", sa.Uuid),
        sa.Column("batch_id", sa.Uuid),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.Index("ix_notifications_recipient", "user_id", "organisation_id", "created_at"),
        schema=schema,
    )
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.String(64), primary_key=True),
        *(
            sa.Column(name, sa.Boolean, nullable=False, server_default=sa.true())
            for name in ("in_app", "webhooks", "job_finished", "job_failed", "batch_finished")
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        schema=schema,
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False, index=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", ARRAY(sa.String(32)), nullable=False),
        sa.Column("secret_salt", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        schema=schema,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "webhook_id",
            sa.Uuid,
            sa.ForeignKey(f"{schema}.webhooks.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempt_log", JSONB, nullable=False, server_default="[]"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in ("webhook_deliveries", "webhooks", "notification_preferences", "notifications"):
        op.drop_table(table, schema=schema)
    op.drop_column("jobs", "owner_id", schema=schema)
