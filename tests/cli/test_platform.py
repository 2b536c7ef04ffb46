"""``chromaline platform grant|revoke`` against the auth service's schema in a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from chromaline.auth.models import AuditEntry, User
from chromaline.cli.main import app
from chromaline.common.db.engine import Database

pytestmark = pytest.mark.integration
runner = CliRunner()


async def _add_user(database_url: str, email: str) -> None:
    database = await Database.open(database_url, schema="auth")
    try:
        async with database.sessions() as session, session.begin():
            session.add(User(id=uuid.uuid4(), email=email, display_name="Ops", password_hash="x"))
    finally:
        await database.dispose()


async def _state(database_url: str, email: str) -> tuple[bool, list[str]]:
    database = await Database.open(database_url, schema="auth")
    try:
        async with database.sessions() as session:
            user = (await session.execute(sa.select(User).where(User.email == email))).scalar_one()
            actions = (
                await session.execute(
                    sa.select(AuditEntry.action).where(AuditEntry.user_id == user.id).order_by(AuditEntry.id)
                )
            ).scalars()
            return user.platform_operator, list(actions)
    finally:
        await database.dispose()


def test_the_platform_role_is_granted_and_revoked_from_the_command_line(
    service_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMALINE_AUTH_DATABASE_URL", service_database_url)
    unknown = runner.invoke(app, ["platform", "grant", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert "no such account" in unknown.output
    email = "ops@example.org"
    asyncio.run(_add_user(service_database_url, email))
    granted = runner.invoke(app, ["platform", "grant", email.upper()])
    assert granted.exit_code == 0, granted.output
    assert asyncio.run(_state(service_database_url, email)) == (True, ["platform.operator_granted"])
    revoked = runner.invoke(app, ["platform", "revoke", email])
    assert revoked.exit_code == 0, revoked.output
    assert asyncio.run(_state(service_database_url, email)) == (
        False,
        ["platform.operator_granted", "platform.operator_revoked"],
    )
