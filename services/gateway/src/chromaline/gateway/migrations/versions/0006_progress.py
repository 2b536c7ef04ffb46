"""When each job last progressed, for the watchdog's per-stage deadlines.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    schema = migration_schema()
    op.add_column(
        "jobs",
        sa.Column("progressed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )
    jobs = sa.table("jobs", sa.column("progressed_at"), sa.column("updated_at"), schema=schema)
    op.execute(jobs.update().values(progressed_at=jobs.c.updated_at))
    op.create_index(
        "ix_jobs_running_progressed_at",
        "jobs",
        ["state", "progressed_at"],
        schema=schema,
        postgresql_where=sa.text("state NOT IN ('done', 'failed', 'expired')"),
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_jobs_running_progressed_at", "jobs", schema=schema)
    op.drop_column("jobs", "progressed_at", schema=schema)
