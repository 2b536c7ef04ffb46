"""``chromaline migrate <service>``: upgrade one service's schema and exit.

Where the services start with ``migrate_on_start`` off (Kubernetes), a Job runs this (or the
service's own ``chromaline-<service> migrate``) before the rollout, and each pod's init container
runs it with ``--check`` so that no pod starts on a schema older than its code.
"""

from __future__ import annotations

from typing import Annotated

import typer


def migrate(
    service: Annotated[str, typer.Argument(help="gateway, auth, detector, corrector or reporter")],
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 unless the schema is up to date.")
    ] = False,
) -> None:
    """Upgrade one service's database schema to the code's revision, then exit."""
    from chromaline.cli.services import SERVICE_NAMES, service_entry
    from chromaline.common.entrypoint import migrate as migrate_service

    if service not in SERVICE_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICE_NAMES)}")
    status = migrate_service(service_entry(service), check=check)
    if status:
        raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
