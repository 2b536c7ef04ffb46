"""The HTML report and its figures are drawn when first asked for (``report.ready`` version 3):
when the gateway last asked for a job's, and which figures it will have.

Revision ID: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import migration_schema

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("report_html_requested_at", sa.DateTime(timezone=True)), schema=migration_schema()
    )
    op.add_column(
        "jobs",
        sa.Column("report_figures_on_request", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_column("jobs", "report_figures_on_request", schema=migration_schema())
    op.drop_column("jobs", "report_html_requested_at", schema=migration_schema())
