"""The PDF report is made when it is first asked for: when the gateway last asked for a job's.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("report_pdf_requested_at", sa.DateTime(timezone=True)), schema=migration_schema()
    )


def downgrade() -> None:
    op.drop_column("jobs", "report_pdf_requested_at", schema=migration_schema())
