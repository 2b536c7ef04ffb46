"""Counters a test consumer increments once per event.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_table("counters", schema=migration_schema())
