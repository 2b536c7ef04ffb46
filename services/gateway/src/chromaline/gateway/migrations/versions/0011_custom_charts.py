"""Custom charts: an organisation's chart definitions (layout and CGATS.17 reference values).

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import migration_schema

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    schema = migration_schema()
    op.create_table(
        "custom_charts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )
    op.create_index("ix_custom_charts_organisation_id", "custom_charts", ["organisation_id"], schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_custom_charts_organisation_id", "custom_charts", schema=schema)
    op.drop_table("custom_charts", schema=schema)
