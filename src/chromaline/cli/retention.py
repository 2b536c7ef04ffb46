"""``chromaline retention sweep``: the gateway's retention sweep, once (see
:mod:`chromaline.gateway.retention_sweep`, which the CronJob runs as ``chromaline-retention-sweep``)."""

from __future__ import annotations

from typing import Annotated

import typer

from chromaline.gateway.retention_sweep import DEFAULT_PUBLISH_TIMEOUT_SECONDS, run

app = typer.Typer(help="Data retention: what is kept, and for how long.", no_args_is_help=True)


@app.command("sweep")
def sweep_command(
    publish_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the expiry events to reach the bus.", min=1)
    ] = DEFAULT_PUBLISH_TIMEOUT_SECONDS,
) -> None:
    """Expire every job older than its organisation's retention period, once, and say how many."""
    status = run(publish_timeout)
    if status:
        raise typer.Exit(status)
