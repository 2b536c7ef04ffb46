"""Run the built images as docker-compose.yml does and drive one photo through the public API.

Brings the stack up (``--wait``: every container healthy), signs a user up and in through the
gateway, uploads a generated chart photo, waits for its job to finish and downloads the corrected
image and the report, scales the detector to three replicas and checks each is healthy, then
removes the stack with its volumes. Where the third-party images are the stand-ins of
deploy/stand-ins/build.sh, the CI override deploy/stand-ins/compose.yml is added. Secrets are
random and kept in a temporary env file; the gateway is published on a free local port.

    uv run --frozen python deploy/smoke.py       # after `make images`
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from chromaline.cli.downloads import made_on_request
from chromaline.engine.synthetic import render_scene

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STAND_IN_OVERRIDE = ROOT / "deploy" / "stand-ins" / "compose.yml"
STAND_IN_LABEL = "io.chromaline.stand-in"
PROJECT = "chromaline-smoke"
SECRETS = (
    "RABBITMQ_PASSWORD",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "S3_SECRET_KEY",
    "CHROMALINE_SIGNING_SECRET",
)
DETECTOR_REPLICAS = 3
JOB_TIMEOUT_SECONDS = 300
WAIT_TIMEOUT_SECONDS = 300
PHOTO_SIZE = (2000, 1500)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uses_stand_ins() -> bool:
    """True when the S3 image is the moto stand-in, which needs the CI override."""
    config = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "--no-interpolate", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    image = json.loads(config.stdout)["services"]["minio"]["image"]
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    return labels.returncode == 0 and STAND_IN_LABEL in (json.loads(labels.stdout) or {})


class Stack:
    """``docker-compose`` on the project's file (and the override) under its own project name."""

    def __init__(self, env_file: Path, stand_ins: bool) -> None:
        files = [COMPOSE_FILE, STAND_IN_OVERRIDE] if stand_ins else [COMPOSE_FILE]
        self.command = ["docker-compose", "--project-name", PROJECT, "--project-directory", str(ROOT)]
        self.command += ["--env-file", str(env_file)]
        for path in files:
            self.command += ["--file", str(path)]

    def run(self, *arguments: str) -> str:
        return subprocess.run([*self.command, *arguments], capture_output=True, text=True, check=True).stdout

    def up(self, *arguments: str) -> float:
        """``up --wait`` without building; returns the seconds until every container was healthy."""
        started = time.monotonic()
        wait = ["--wait", "--wait-timeout", str(WAIT_TIMEOUT_SECONDS)]
        subprocess.run([*self.command, "up", "--detach", "--no-build", *wait, *arguments], check=True)
        return time.monotonic() - started

    def health(self, service: str) -> list[str]:
        listing = self.run("ps", "--format", "json", service)
        containers = [json.loads(line) for line in listing.splitlines() if line.strip()]
        return [str(container["Health"]) for container in containers]

    def logs(self) -> None:
        subprocess.run([*self.command, "logs", "--no-color", "--tail", "40"], check=False)

    def down(self) -> None:
        subprocess.run([*self.command, "down", "--volumes", "--remove-orphans"], check=False)


@contextmanager
def running_stack(env_file: Path, stand_ins: bool) -> Iterator[tuple[Stack, float]]:
    stack = Stack(env_file, stand_ins)
    try:
        yield stack, stack.up()
    except BaseException:
        stack.logs()
        raise
    finally:
        stack.down()


def signed_in_client(base_url: str) -> httpx.Client:
    """Register a user (admin of a new organisation), sign in as them, return a client holding the token."""
    email = f"smoke-{uuid.uuid4().hex[:10]}@example.org"
    password = secrets.token_urlsafe(16)
    registered = httpx.post(
        f"{base_url}/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": "Smoke", "organisation_name": "Smoke"},
        timeout=60,
    )
    registered.raise_for_status()
    login = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=60
    )
    login.raise_for_status()
    token = login.json()["access_token"]
    return httpx.Client(base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {token}"})


def correct_one_photo(client: httpx.Client) -> dict[str, Any]:
    """Upload a chart photo, wait for its job and its report (made after the job is done) and fetch both."""
    photo = render_scene(1, chart="classic24", size=PHOTO_SIZE).image_bytes
    response = client.post("/api/v1/jobs", files=[("files", ("smoke.jpg", photo, "image/jpeg"))])
    response.raise_for_status()
    job_id = response.json()["jobs"][0]["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
        report_pending = (job.get("report") or {}).get("state") == "pending"
        if job["state"] == "failed" or (job["state"] == "done" and not report_pending):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['state']} after {JOB_TIMEOUT_SECONDS} s")
        time.sleep(0.5)
    if job["state"] != "done":
        raise RuntimeError(f"job {job_id} failed: {job}")
    if job["report"]["state"] != "ready":
        raise RuntimeError(f"job {job_id} is done but its report failed: {job['report']}")
    corrected = client.get(job["files"]["corrected"]).raise_for_status()
    report = made_on_request(client, job["files"]["report.pdf"], JOB_TIMEOUT_SECONDS)
    if not report.content.startswith(b"%PDF"):
        raise RuntimeError("the report is not a PDF")
    print(
        f"smoke: job {job_id} done, ΔE2000 {job['delta_e2000_before']:.2f} → {job['delta_e2000_after']:.2f}, "
        f"corrected image {len(corrected.content)} bytes, report {len(report.content)} bytes"
    )
    return job


def write_env_file(directory: Path, gateway_port: int) -> Path:
    values = {name: secrets.token_hex(16) for name in SECRETS}
    values |= {"MINIO_ROOT_USER": "smoke-root", "S3_ACCESS_KEY": "smoke-blobs"}
    values["CHROMALINE_GATEWAY_PORT"] = str(gateway_port)
    path = directory / "smoke.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def main() -> int:
    started = time.monotonic()
    stand_ins = uses_stand_ins()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as directory,
        running_stack(write_env_file(Path(directory), port), stand_ins) as (stack, start_seconds),
    ):
        print(f"smoke: stack healthy in {start_seconds:.0f} s" + (" (stand-in images)" if stand_ins else ""))
        httpx.get(f"{base_url}/readyz", timeout=10).raise_for_status()
        job_started = time.monotonic()
        with signed_in_client(base_url) as client:
            correct_one_photo(client)
        print(f"smoke: one photo through the API in {time.monotonic() - job_started:.1f} s")
        scale_seconds = stack.up("--scale", f"detector={DETECTOR_REPLICAS}")
        health = stack.health("detector")
        if health != ["healthy"] * DETECTOR_REPLICAS:
            raise RuntimeError(f"detector replicas: {health}")
        print(f"smoke: {DETECTOR_REPLICAS} detectors healthy in {scale_seconds:.0f} s")
    print(f"smoke: passed in {time.monotonic() - started:.0f} s (stack removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
