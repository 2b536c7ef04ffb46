"""``chromaline demo``: start the standalone system, send it a generated chart photo, show the result."""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from chromaline.cli.downloads import made_on_request
from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.logging import configure_logging
from chromaline.engine.synthetic import render_scene

DEMO_SEED = 11


def wait_ready(client: httpx.Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the system was not ready within {timeout:.0f} s")


def wait_finished(client: httpx.Client, batch_id: str, timeout: float) -> dict[str, Any]:
    """The batch once its jobs have ended and their reports are made or have failed (a job is
    done with its corrected image; its report follows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/api/v1/batches/{batch_id}").raise_for_status().json()
        if batch["done"] and batch["reports_pending"] == 0:
            return batch
        time.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} did not finish within {timeout:.0f} s")


def sign_up(client: httpx.Client) -> None:
    """Register a throwaway demo account and send its access token with every further request."""
    registered = client.post(
        "/api/v1/auth/register",
        json={
            "email": f"demo-{uuid.uuid4().hex[:12]}@chromaline.invalid",
            "password": secrets.token_urlsafe(18),
            "display_name": "Demo",
            "organisation_name": "Demo",
        },
    ).raise_for_status()
    client.headers["Authorization"] = f"Bearer {registered.json()['access_token']}"


def run_demo(out: Path, port: int = 8080, timeout: float = 300.0) -> int:
    console = Console()
    configure_logging("WARNING", "console")
    out.mkdir(parents=True, exist_ok=True)
    console.print("[bold]Chromaline demo[/bold]: starting every service in this process (embedded defaults)…")
    system = Standalone.build()
    scene = render_scene(DEMO_SEED, chart="classic24", size=(4000, 3000), rotation=0)
    photo = out / "demo-chart.jpg"
    photo.write_bytes(scene.image_bytes)
    console.print(
        f"generated a 12 MP chart photo under {scene.illuminant} light, {scene.camera} camera: {photo}"
    )
    base_url = f"http://127.0.0.1:{port}"
    with (
        BackgroundServer(system.gateway_app(), "127.0.0.1", port),
        httpx.Client(base_url=base_url, timeout=60) as client,
    ):
        wait_ready(client, timeout=120)
        sign_up(client)
        with photo.open("rb") as handle:
            batch = (
                client.post("/api/v1/jobs", files={"files": (photo.name, handle, "image/jpeg")})
                .raise_for_status()
                .json()
            )
        console.print(f"uploaded: batch {batch['id']}, job {batch['jobs'][0]['id']}; waiting…")
        job = wait_finished(client, batch["id"], timeout)["jobs"][0]
        if job["state"] != "done":
            console.print(f"[red]job failed[/red]: {job['reason']}: {job['message']}")
            return 1
        saved = {}
        for name in ("corrected", "report.html", "report.pdf", "profile.json", "profile.cube"):
            target = out / client_name(name)
            target.write_bytes(made_on_request(client, job["files"][name], timeout).content)
            saved[name] = target
    console.print(f"chart: {job['chart_type']}, method: {job['method']}, rating: {job['rating']}")
    console.print(
        f"ΔE2000 mean before: [bold]{job['delta_e2000_before']:.2f}[/bold]   after: [bold green]{job['delta_e2000_after']:.2f}[/bold green]"
    )
    for name, path in saved.items():
        console.print(f"  {name:12} {path}")
    return 0


def client_name(name: str) -> str:
    return {"corrected": "demo-chart.corrected.jpg"}.get(name, f"demo-chart.{name}")
