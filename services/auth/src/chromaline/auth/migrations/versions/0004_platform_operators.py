"""Platform operators: users who operate the whole deployment, apart from organisation roles.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("platform_operator", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=migration_schema(),
    )


def downgrade() -> None:
    op.drop_column("users", "platform_operator", schema=migration_schema())
