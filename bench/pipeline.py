"""End-to-end pipeline benchmark through the real services.

Starts each service as its own process (``chromaline serve``, as in the containers) on the local
RabbitMQ (a virtual host of its own) and PostgreSQL (a database of its own), with blobs in a
local folder by default (``--blob-url s3://…`` for MinIO), and prints, side by side in one run:

* end-to-end latency (upload → report ready, p50/p95) for photos sent one at a time, beside the
  in-process time of the same work on the same photos (decode, detect, sample, fit, apply,
  encode, report) — target: pipeline p50 ≤ 1.15 × in-process p50;
* throughput for a batch with 1 and with 2 replicas of each worker stage — target ≥ 1.8×.

Run: ``uv run python bench/pipeline.py [--photos 8] [--size 4000x3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from chromaline.cli.processes import ServiceProcess, free_port, wait_ready
from chromaline.cli.services import SERVICES
from chromaline.engine.correct import correct_photo
from chromaline.engine.synthetic import render_scene
from chromaline.reporter.render import render_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_env import service_env

WORKERS = ("detector", "corrector", "reporter")
READY_SECONDS = 300.0
"""Seven processes importing at once on a busy 2-core machine can take minutes to answer."""
LATENCY_TARGET = 1.15
SCALING_TARGET = 1.8


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def in_process_seconds(photo: bytes) -> float:
    """The same work as the pipeline, in this process: correct the photo, make its previews and
    write its report from them."""
    started = time.perf_counter()
    result = correct_photo(photo, source_filename="bench.jpg", previews=True)
    assert result.previews is not None
    previews = result.previews
    render_report(result.measurements("bench.jpg"), previews.original.data, previews.corrected.data)
    return time.perf_counter() - started


@contextmanager
def isolated_stores(amqp_url: str, postgres_url: str) -> Iterator[tuple[str, str]]:
    """A RabbitMQ virtual host and a PostgreSQL database of the run's own, removed afterwards."""
    vhost = f"chromaline-bench-{uuid.uuid4().hex[:8]}"
    database = f"chromaline_bench_{uuid.uuid4().hex[:8]}"
    user = urlsplit(amqp_url).username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True)
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    asyncio.run(_execute(plain, f'CREATE DATABASE "{database}"'))
    try:
        yield (
            urlsplit(amqp_url)._replace(path=f"/{vhost}").geturl(),
            urlsplit(postgres_url)._replace(path=f"/{database}").geturl(),
        )
    finally:
        asyncio.run(_execute(plain, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def running_system(
    replicas: int, amqp_url: str, database_url: str, blob_url: str, logs: Path
) -> Iterator[str]:
    env = service_env(amqp_url, database_url, blob_url)
    processes = []
    for name in SERVICES:
        for replica in range(replicas if name in WORKERS else 1):
            processes.append(
                ServiceProcess(name, free_port(), env, logs / f"{name}-{replicas}-{replica}.log")
            )
    env["CHROMALINE_GATEWAY_AUTH_URL"] = next(process.url for process in processes if process.name == "auth")
    try:
        for process in processes:
            process.start()
        for process in processes:
            wait_ready(process.url, timeout=READY_SECONDS, process=process.process)
        yield next(process.url for process in processes if process.name == "gateway")
    finally:
        for process in processes:
            process.stop()


def authenticated_client(base_url: str) -> httpx.Client:
    """A client of the gateway, signed in as a freshly registered user."""
    client = httpx.Client(base_url=base_url, timeout=120)
    registered = client.post(
        "/api/v1/auth/register",
        json={
            "email": f"bench-{uuid.uuid4().hex[:8]}@example.org",
            "password": "bench-password-Long-enough-1",
            "display_name": "Bench",
            "organisation_name": "Bench",
        },
    )
    registered.raise_for_status()
    client.headers["Authorization"] = f"Bearer {registered.json()['access_token']}"
    return client


def send(client: httpx.Client, photos: list[bytes]) -> str:
    files = [("files", (f"photo-{index}.jpg", photo, "image/jpeg")) for index, photo in enumerate(photos)]
    response = client.post("/api/v1/jobs", files=files)
    response.raise_for_status()
    batch_id: str = response.json()["id"]
    return batch_id


def wait_done(client: httpx.Client, batch_id: str, timeout: float = 900) -> dict[str, Any]:
    """The batch once its jobs are done and their reports made (the in-process work includes the report)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/api/v1/batches/{batch_id}").json()
        if batch["done"] and not batch["reports_pending"]:
            if batch["states"].get("done") != batch["total"]:
                raise RuntimeError(f"jobs failed: {batch['states']}")
            return batch
        time.sleep(0.05)
    raise TimeoutError(f"batch {batch_id} unfinished")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--size", default="4000x3000", help="photo size, WxH (12 MP by default)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--blob-url", default=None, help="default: a temporary local folder")
    arguments = parser.parse_args()
    width, height = (int(part) for part in arguments.size.split("x"))
    photos = [
        render_scene(300 + seed, chart="classic24", size=(width, height)).image_bytes
        for seed in range(arguments.photos)
    ]
    print(f"{len(photos)} rendered photos of {width}×{height} ({width * height / 1e6:.0f} MP)")

    engine = [in_process_seconds(photo) for photo in photos]
    latencies: list[float] = []
    throughput: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="chromaline-bench-") as scratch:
        blob_url = arguments.blob_url or f"file://{scratch}/blobs"
        for replicas in (1, 2):
            with (
                isolated_stores(arguments.amqp_url, arguments.postgres_url) as (amqp_url, database_url),
                running_system(replicas, amqp_url, database_url, blob_url, Path(scratch)) as base_url,
                closing(authenticated_client(base_url)) as client,
            ):
                wait_done(client, send(client, photos[:1]))
                if replicas == 1:
                    for photo in photos:
                        started = time.perf_counter()
                        wait_done(client, send(client, [photo]))
                        latencies.append(time.perf_counter() - started)
                started = time.perf_counter()
                wait_done(client, send(client, photos))
                throughput[replicas] = len(photos) / (time.perf_counter() - started)

    engine_p50 = statistics.median(engine)
    latency_p50 = statistics.median(latencies)
    ratio = latency_p50 / engine_p50
    scaling = throughput[2] / throughput[1]
    print()
    print(f"{'':34}{'p50 s':>10}{'p95 s':>10}")
    print(f"{'in-process (same work)':34}{engine_p50:>10.2f}{percentile(engine, 0.95):>10.2f}")
    print(
        f"{'pipeline end to end, one at a time':34}{latency_p50:>10.2f}{percentile(latencies, 0.95):>10.2f}"
    )
    print(
        f"pipeline / in-process (p50): {ratio:.2f}×   target ≤ {LATENCY_TARGET}×   {'met' if ratio <= LATENCY_TARGET else 'NOT met'}"
    )
    print()
    print(f"throughput, 1 replica per stage : {throughput[1]:.2f} photos/s")
    print(f"throughput, 2 replicas per stage: {throughput[2]:.2f} photos/s")
    print(
        f"scaling: {scaling:.2f}×   target ≥ {SCALING_TARGET}×   {'met' if scaling >= SCALING_TARGET else 'NOT met'}"
    )
    print(f"(this machine has {os.cpu_count()} CPU cores)")


if __name__ == "__main__":
    main()
