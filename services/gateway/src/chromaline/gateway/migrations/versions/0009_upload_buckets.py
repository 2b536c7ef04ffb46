"""Upload rate limits kept in the database, so every gateway replica takes from the same buckets.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "upload_buckets",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_table("upload_buckets", schema=migration_schema())
