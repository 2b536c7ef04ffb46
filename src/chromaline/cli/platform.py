"""``chromaline platform grant|revoke <email>``: who operates the whole deployment.

Platform operators see and replay the dead letters of every organisation and the queue depths;
sign-up never makes one. The first is named here, by whoever runs the deployment; operators can
then name each other through the API. A change shows in the user's next access token.
"""

from __future__ import annotations

import asyncio

import typer

from chromaline.auth import service as auth
from chromaline.auth.accounts import user_by_email
from chromaline.auth.platform import set_platform_operator
from chromaline.cli.keys import auth_transaction
from chromaline.common.problems import ApiError

platform_app = typer.Typer(help="Platform operators (apart from organisation roles).", no_args_is_help=True)


async def set_operator(email: str, granted: bool) -> str:
    """Grant or revoke the platform role in the auth service's schema; the user's id."""
    async with auth_transaction(auth.load_settings()) as session:
        user = await user_by_email(session, email)
        changed = await set_platform_operator(session, user, granted, actor_id=None, client_address="cli")
        return str(changed.id)


def _run(email: str, granted: bool) -> str:
    try:
        return asyncio.run(set_operator(email, granted))
    except ApiError as error:
        typer.echo(error.detail, err=True)
        raise typer.Exit(1) from None


@platform_app.command("grant")
def grant(email: str) -> None:
    """Make the account with EMAIL a platform operator."""
    user_id = _run(email, True)
    typer.echo(f"{email} ({user_id}) is a platform operator from their next sign-in or token refresh")


@platform_app.command("revoke")
def revoke(email: str) -> None:
    """Take the platform role from the account with EMAIL."""
    user_id = _run(email, False)
    typer.echo(f"{email} ({user_id}) is no longer a platform operator once their access token expires")
