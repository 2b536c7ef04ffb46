"""Forgotten jobs: expired or deleted on request, so work still in flight for them stores nothing.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from chromaline.common.db.migrations import migration_schema
from chromaline.common.forgotten_jobs import create_forgotten_jobs, drop_forgotten_jobs

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_forgotten_jobs(op, migration_schema())


def downgrade() -> None:
    drop_forgotten_jobs(op, migration_schema())
