"""The charts found in a photo besides the one it was corrected with (``chart.detected`` version 2).

Revision ID: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import migration_schema

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("other_charts", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_column("jobs", "other_charts", schema=migration_schema())
