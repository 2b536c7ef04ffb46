"""Each organisation's retention period (null: the deployment's default).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("organisations", sa.Column("retention_days", sa.Integer), schema=schema)
    op.create_check_constraint(
        "ck_organisations_retention_days",
        "organisations",
        "retention_days BETWEEN 1 AND 3650",
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_constraint("ck_organisations_retention_days", "organisations", schema=schema)
    op.drop_column("organisations", "retention_days", schema=schema)
