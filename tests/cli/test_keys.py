"""``chromaline keys rotate`` against the auth service's schema in a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from chromaline.auth.models import SigningKey
from chromaline.auth.signing_keys import published_keys
from chromaline.cli.main import app
from chromaline.common.db.engine import Database

pytestmark = pytest.mark.integration
runner = CliRunner()


async def _keys(database_url: str) -> tuple[list[SigningKey], list[str]]:
    database = await Database.open(database_url, schema="auth")
    try:
        async with database.sessions() as session:
            rows = (await session.execute(sa.select(SigningKey).order_by(SigningKey.created_at))).scalars()
            keys = list(rows)
            published = [str(jwk["kid"]) for jwk in await published_keys(session)]
    finally:
        await database.dispose()
    return keys, published


def test_each_rotation_retires_the_signing_key_and_keeps_it_published(
    service_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMALINE_AUTH_DATABASE_URL", service_database_url)
    kids = []
    for _ in range(2):
        result = runner.invoke(app, ["keys", "rotate"])
        assert result.exit_code == 0, result.output
        kids.append(result.output.split()[3].rstrip(";"))

    keys, published = asyncio.run(_keys(service_database_url))
    assert [key.kid for key in keys] == kids
    first, second = keys
    assert first.retired_at is not None
    assert second.retired_at is None
    assert published == [second.kid, first.kid]
