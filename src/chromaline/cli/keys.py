"""``chromaline keys rotate``: retire the token-signing key now and make a new one.

The auth service rotates on its own when a key reaches ``signing_key_days``; this is for the
times an operator wants it done at once (a suspected leak, a policy). The retired key's public
half stays published until the tokens it signed have expired, so nobody is signed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import service as auth
from chromaline.auth.context import utcnow
from chromaline.auth.settings import AuthSettings
from chromaline.auth.signing_keys import KeyRing, rotate_signing_keys
from chromaline.common.db import migrations
from chromaline.common.db.engine import Database, resolve_database_url

keys_app = typer.Typer(help="Token-signing keys.", no_args_is_help=True)


@asynccontextmanager
async def auth_transaction(settings: AuthSettings) -> AsyncIterator[AsyncSession]:
    """A transaction in the auth service's schema, brought up to date first as a starting auth would."""
    database_url = await resolve_database_url(settings.database_url)
    await migrations.upgrade(database_url, auth.SPEC.name, auth.SPEC.migrations)
    database = await Database.open(database_url, schema=auth.SPEC.name)
    try:
        async with database.sessions() as session, session.begin():
            yield session
    finally:
        await database.dispose()


async def rotate_now() -> str:
    """Make a new signing key in the auth service's schema and return its kid."""
    settings = auth.load_settings()
    async with auth_transaction(settings) as session:
        made = await rotate_signing_keys(session, KeyRing(settings), settings, utcnow(), force=True)
    assert made is not None, "a forced rotation always makes a key"
    return made.kid


@keys_app.command("rotate")
def rotate() -> None:
    """Retire the current signing key and sign new tokens with a fresh one."""
    kid = asyncio.run(rotate_now())
    typer.echo(f"new signing key {kid}; the previous key stays published until its tokens expire")
