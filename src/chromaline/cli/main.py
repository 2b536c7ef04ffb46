"""The ``chromaline`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromaline.cli.engine_commands import register as register_engine_commands
from chromaline.cli.keys import keys_app
from chromaline.cli.migrate import register as register_migrate_command
from chromaline.cli.platform import platform_app
from chromaline.cli.retention import app as retention_app

app = typer.Typer(help="Chromaline: colour-accurate photographs from a colour chart.", no_args_is_help=True)
chart_app = typer.Typer(help="Charts: printable frames.", no_args_is_help=True)
app.add_typer(chart_app, name="chart")
app.add_typer(keys_app, name="keys")
app.add_typer(platform_app, name="platform")
app.add_typer(retention_app, name="retention")
register_engine_commands(app)
register_migrate_command(app)


@app.command()
def standalone(
    host: Annotated[str, typer.Option(help="Address to serve the gateway on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve the gateway on.")] = 8080,
) -> None:
    """Run every service in one process on the embedded defaults and serve the gateway."""
    from chromaline.cli.standalone import run_standalone

    run_standalone(host, port)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="gateway, auth, detector, corrector or reporter")],
    host: Annotated[str | None, typer.Option(help="Bind address (default 0.0.0.0).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from the service's settings).")] = None,
) -> None:
    """Run one service as its own process, as in production."""
    from chromaline.cli.services import SERVICE_NAMES, service_entry
    from chromaline.common.entrypoint import serve as serve_service

    if service not in SERVICE_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICE_NAMES)}")
    serve_service(service_entry(service), host, port)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo photo and results.")] = Path(
        "chromaline-demo"
    ),
    port: Annotated[int, typer.Option(help="Port for the temporary gateway.")] = 8080,
) -> None:
    """Start the standalone system, correct a generated chart photo, print ΔE before/after, stop."""
    from chromaline.cli.demo import run_demo

    raise typer.Exit(run_demo(out, port))


@chart_app.command("frame")
def chart_frame(
    out: Annotated[Path, typer.Option(help="PDF to write.")] = Path("frame.pdf"),
    chart: Annotated[str, typer.Option(help="Chart the frame holds.")] = "classic24",
) -> None:
    """Render the printable ArUco frame for a chart at true size."""
    from chromaline.engine.frame import FrameSpec, render_frame_pdf

    if chart != "classic24":
        raise typer.BadParameter("frames exist for classic24 only")
    out.write_bytes(render_frame_pdf(FrameSpec()))
    typer.echo(f"wrote {out} (print at 100 %, no scaling)")
