"""Doubt made visible: a finished job's warnings, and the box offered when detection was unsure.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import migration_schema

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("jobs", sa.Column("candidate", JSONB), schema=schema)
    op.add_column(
        "jobs",
        sa.Column("warnings", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_column("jobs", "warnings", schema=schema)
    op.drop_column("jobs", "candidate", schema=schema)
