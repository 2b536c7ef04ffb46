"""Indexes for the orphan sweep: which job or presigned upload refers to an original's key.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from chromaline.common.db.migrations import migration_schema

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    schema = migration_schema()
    op.create_index("ix_jobs_original_key", "jobs", [sa.text("(original->>'key')")], schema=schema)
    op.create_index(
        "ix_pending_uploads_blob_key", "pending_uploads", [sa.text("(blob->>'key')")], schema=schema
    )
    op.create_index("ix_pending_uploads_expires_at", "pending_uploads", ["expires_at"], schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_pending_uploads_expires_at", "pending_uploads", schema=schema)
    op.drop_index("ix_pending_uploads_blob_key", "pending_uploads", schema=schema)
    op.drop_index("ix_jobs_original_key", "jobs", schema=schema)
