"""A job is done when its corrected image exists; its report is tracked beside it.

Jobs that were waiting in the old ``reporting`` state become done with a pending report; jobs
already done have their report.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0010"
down_revision = "0009"


def _jobs(schema: str | None) -> sa.TableClause:
    return sa.table(
        "jobs",
        sa.column("state"),
        sa.column("report_state"),
        sa.column("finished_at"),
        sa.column("progressed_at"),
        schema=schema,
    )


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("jobs", sa.Column("report_state", sa.String(16)), schema=schema)
    op.add_column("jobs", sa.Column("report_reason", sa.String(64)), schema=schema)
    op.add_column("jobs", sa.Column("report_message", sa.Text), schema=schema)
    op.create_index("ix_jobs_report_state", "jobs", ["report_state"], schema=schema)
    jobs = _jobs(schema)
    op.execute(
        jobs.update()
        .where(jobs.c.state == "reporting")
        .values(state="done", report_state="pending", finished_at=sa.func.now(), progressed_at=sa.func.now())
    )
    op.execute(
        jobs.update()
        .where(jobs.c.state == "done", jobs.c.report_state.is_(None))
        .values(report_state="ready")
    )


def downgrade() -> None:
    schema = migration_schema()
    jobs = _jobs(schema)
    op.execute(
        jobs.update().where(jobs.c.report_state == "pending").values(state="reporting", finished_at=None)
    )
    op.drop_index("ix_jobs_report_state", "jobs", schema=schema)
    op.drop_column("jobs", "report_message", schema=schema)
    op.drop_column("jobs", "report_reason", schema=schema)
    op.drop_column("jobs", "report_state", schema=schema)
