"""Organisation settings: the rating guideline an organisation's reports lead with.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "organisation_settings",
        sa.Column("organisation_id", sa.String(64), primary_key=True),
        sa.Column("guideline", sa.String(32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_table("organisation_settings", schema=migration_schema())
