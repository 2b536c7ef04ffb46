"""Users, organisations, memberships, signing keys, tokens, API keys, resets, audit log, throttling.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from chromaline.common.db.migrations import create_outbox_and_inbox, drop_outbox_and_inbox, migration_schema

revision = "0001"
down_revision = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    schema = migration_schema()
    create_outbox_and_inbox(op, schema)
    op.create_table(
        "organisations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=schema,
    )
    op.create_table(
        "memberships",
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey(f"{schema}.users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "organisation_id",
            sa.Uuid,
            sa.ForeignKey(f"{schema}.organisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'operator', 'member', 'viewer')", name="ck_memberships_role"),
        schema=schema,
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_jwk", JSONB, nullable=False),
        _timestamp("created_at"),
        _timestamp("retired_at", nullable=True),
        schema=schema,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("family_id", sa.Uuid, nullable=False, index=True),
        sa.Column(
            "user_id",
            sa.Uuid,
            sa.ForeignKey(f"{schema}.users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("organisation_id", sa.Uuid, nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("spent_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        schema=schema,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "user_id",
            sa.Uuid,
            sa.ForeignKey(f"{schema}.users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("organisation_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", JSONB, nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        _timestamp("last_used_at", nullable=True),
        schema=schema,
    )
    op.create_table(
        "password_resets",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "user_id",
            sa.Uuid,
            sa.ForeignKey(f"{schema}.users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        schema=schema,
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            index=True,
        ),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.Uuid, index=True),
        sa.Column("organisation_id", sa.Uuid, index=True),
        sa.Column("actor_id", sa.Uuid),
        sa.Column("client_address", sa.String(64)),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        schema=schema,
    )
    op.execute(
        f"""
        CREATE FUNCTION {schema}.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON {schema}.audit_log "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.audit_log_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {schema}.audit_log "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_log_append_only()"
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, index=True),
        sa.Column("client_address", sa.String(64), nullable=False, index=True),
        _timestamp("occurred_at"),
        schema=schema,
    )
    op.create_index("ix_sign_in_failures_occurred_at", "sign_in_failures", ["occurred_at"], schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("sign_in_failures", schema=schema)
    op.drop_table("audit_log", schema=schema)
    op.execute(f"DROP FUNCTION {schema}.audit_log_append_only()")
    for table in ("password_resets", "api_keys", "refresh_tokens", "signing_keys", "memberships", "users"):
        op.drop_table(table, schema=schema)
    op.drop_table("organisations", schema=schema)
    drop_outbox_and_inbox(op, schema)
