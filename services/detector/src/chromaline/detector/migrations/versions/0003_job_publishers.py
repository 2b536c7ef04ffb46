"""Job publishers: each job id belongs to the publisher of its first image.uploaded.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from chromaline.common.db.migrations import migration_schema
from chromaline.common.job_publishers import create_job_publishers, drop_job_publishers

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_job_publishers(op, migration_schema())


def downgrade() -> None:
    drop_job_publishers(op, migration_schema())
