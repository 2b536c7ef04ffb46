"""A job remembers the job whose photo it sent again (corners marked by hand, another chart chosen).

Revision ID: 0015
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("sent_again_from", sa.Uuid()), schema=migration_schema())


def downgrade() -> None:
    op.drop_column("jobs", "sent_again_from", schema=migration_schema())
