"""Retention: when a job expired, each organisation's period, and an index for the sweep.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("jobs", sa.Column("expired_at", sa.DateTime(timezone=True)), schema=schema)
    op.create_table(
        "organisation_retention",
        sa.Column("organisation_id", sa.String(64), primary_key=True),
        sa.Column("days", sa.Integer),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_index(
        "ix_jobs_ended",
        "jobs",
        [sa.text("coalesce(finished_at, created_at)")],
        schema=schema,
        postgresql_where=sa.text("state IN ('done', 'failed')"),
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_jobs_ended", "jobs", schema=schema)
    op.drop_table("organisation_retention", schema=schema)
    op.drop_column("jobs", "expired_at", schema=schema)
