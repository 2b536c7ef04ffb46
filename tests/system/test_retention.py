"""Data retention through the public API, on the whole system in this process (real PostgreSQL in
a database of its own, S3, an in-process bus of the test's own): periods set by admins, a sweep
run as if a month had passed, tombstones, files gone from the store, the audit entry."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from chromaline.cli.downloads import made_on_request
from chromaline.cli.processes import free_port, wait_ready
from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.testing.postgres import fresh_database
from chromaline.gateway.retention import SweepResult, sweep

from .conftest import sign_up
from .test_pipeline import chart_photo, upload, wait_batch

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(600)]

T = TypeVar("T")
SETTLE_SECONDS = 30.0


@dataclass
class RetentionSystem:
    url: str
    standalone: Standalone
    server: BackgroundServer
    database_url: str
    blob_url: str

    def sweep(self, days_later: int) -> SweepResult:
        """One sweep, as if it ran ``days_later`` days from now."""
        later = datetime.now(UTC) + timedelta(days=days_later)
        return self.server.run(sweep(self.standalone.runtimes["gateway"], now=later))

    def sql(self, statement: str, **params: Any) -> list[Any]:
        async def run() -> list[Any]:
            engine = create_async_engine(self.database_url)
            try:
                async with engine.connect() as connection:
                    return list((await connection.execute(sa.text(statement), params)).all())
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def blob_exists(self, ref: dict[str, str]) -> bool:
        async def check() -> bool:
            store = create_blob_store(self.blob_url)
            try:
                return await store.exists(ref["bucket"], ref["key"])
            finally:
                await store.close()

        return asyncio.run(check())

    def sign_up(self, organisation: str) -> dict[str, Any]:
        return sign_up(self.url, organisation)

    def client(self, account: dict[str, Any], organisation: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {account['access_token']}"}
        if organisation:
            headers["X-Organisation-ID"] = organisation
        return httpx.Client(base_url=self.url, timeout=120, headers=headers)


@contextmanager
def system_in_process(postgres_url: str, s3_url: str, bus_name: str) -> Iterator[RetentionSystem]:
    """The whole system served in this process, on a database of its own and the bus named."""
    with fresh_database(postgres_url) as database_url:
        standalone = Standalone.build(
            {
                "bus_url": f"memory://{bus_name}-{uuid.uuid4().hex[:8]}",
                "database_url": database_url,
                "blob_url": s3_url,
            }
        )
        port = free_port()
        with BackgroundServer(standalone.gateway_app(), "127.0.0.1", port) as server:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            yield RetentionSystem(url, standalone, server, database_url, s3_url)


@pytest.fixture(scope="module")
def retention_system(postgres_url: str, s3_url: str) -> Iterator[RetentionSystem]:
    with system_in_process(postgres_url, s3_url, "retention") as system:
        yield system


def eventually(check: Callable[[], T], what: str, timeout: float = SETTLE_SECONDS) -> T:
    """The first truthy result of ``check``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)
    return result


def set_period(client: httpx.Client, organisation: str, days: int | None) -> httpx.Response:
    return client.put(f"/api/v1/auth/organisations/{organisation}/retention", json={"days": days})


def finished_job(client: httpx.Client, name: str, seed: int) -> dict[str, Any]:
    job: dict[str, Any] = wait_batch(client, upload(client, [(name, chart_photo(seed))])["id"])["jobs"][0]
    assert job["state"] == "done", job
    return job


def reported(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """The job once its report is ready."""
    return eventually(
        lambda: (
            (view := client.get(f"/api/v1/jobs/{job['id']}").json())["report"]["state"] == "ready" and view
        ),
        "the report is made",
    )


def test_a_job_past_its_organisations_period_keeps_its_record_and_loses_its_files(
    retention_system: RetentionSystem,
) -> None:
    system = retention_system
    short, long = system.sign_up("Short memory"), system.sign_up("Long memory")
    short_org, long_org = short["organisation"]["id"], long["organisation"]["id"]
    with system.client(short) as client, system.client(long) as other:
        assert set_period(client, short_org, 30).json()["effective_days"] == 30
        assert set_period(other, long_org, 400).json()["effective_days"] == 400
        job = finished_job(client, "short.jpg", 51)
        kept = finished_job(other, "long.jpg", 52)
        saved = client.post("/api/v1/profiles", json={"job_id": job["id"], "name": "studio"})
        assert saved.status_code == 201, saved.text
        job = reported(client, job)
        pdf = made_on_request(client, job["files"]["report.pdf"], SETTLE_SECONDS)
        assert pdf.content.startswith(b"%PDF"), "the PDF, made on its first download, expires too"
        page = made_on_request(client, job["files"]["report.html"], SETTLE_SECONDS)
        assert b"<html" in page.content, "the HTML and its figures, drawn on first view, expire too"
        [(original, results)] = system.sql(
            "SELECT original, results FROM gateway.jobs WHERE id = CAST(:id AS uuid)", id=job["id"]
        )
        eventually(
            lambda: (
                system.sql(
                    "SELECT count(*) FROM gateway.organisation_retention WHERE organisation_id IN (:a, :b)",
                    a=short_org,
                    b=long_org,
                )[0][0]
                == 2
            ),
            "the gateway hears of both periods",
        )

        result = system.sweep(days_later=31)

        assert (result.expired, result.failed) == (1, 0)
        tombstone = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert tombstone["state"] == "expired"
        assert tombstone["expired_at"] is not None
        assert tombstone["files"] == {}
        assert (tombstone["filename"], tombstone["delta_e2000_after"]) == (
            "short.jpg",
            job["delta_e2000_after"],
        )
        for name, path in job["files"].items():
            gone = client.get(path)
            assert (gone.status_code, gone.json()["code"]) == (410, "job_expired"), name
        assert [item["state"] for item in client.get("/api/v1/jobs").json()["items"]] == ["expired"]
        assert client.get(f"/api/v1/batches/{job['batch_id']}").json()["done"] is True

        assert not system.blob_exists(original)
        saved_files = ("profile", "profile_cube")
        deleted = {name: ref for name, ref in results.items() if name not in saved_files}
        assert set(deleted) == {
            "corrected",
            "measurements",
            "report_json",
            "report_html",
            "report_pdf",
            "thumbnail",
            *(f"figure_{name}" for name in ("chromaticity", "tone_response", "patch_pairs", "delta_e")),
        }
        eventually(
            lambda: not any(system.blob_exists(ref) for ref in deleted.values()),
            "the corrector and the reporter delete the job's results",
        )
        assert all(system.blob_exists(results[name]) for name in saved_files)
        assert client.get(saved.json()["files"]["json"]).status_code == 200
        assert client.get(saved.json()["files"]["cube"]).status_code == 200

        audit = eventually(
            lambda: client.get("/api/v1/auth/audit", params={"action": "job.expired"}).json()["items"],
            "auth audits the expiry",
        )
        [entry] = audit
        assert entry["organisation_id"] == short_org
        assert entry["details"]["job_id"] == job["id"]
        assert entry["details"]["retention_days"] == 30
        assert f"{original['bucket']}/{original['key']}" in entry["details"]["deleted"]
        assert entry["details"]["kept"] == sorted(
            f"{results[name]['bucket']}/{results[name]['key']}" for name in saved_files
        )

        assert system.sweep(days_later=31) == SweepResult(0, 0)
        assert other.get(f"/api/v1/jobs/{kept['id']}").json()["state"] == "done"
        assert other.get(kept["files"]["corrected"]).status_code == 200
        assert other.get("/api/v1/auth/audit", params={"action": "job.expired"}).json()["items"] == []


def test_only_an_admin_changes_the_period_and_only_to_a_sensible_one(
    retention_system: RetentionSystem,
) -> None:
    system = retention_system
    admin = system.sign_up("Careful")
    organisation = admin["organisation"]["id"]
    person = system.sign_up("Helper")
    with system.client(admin) as client:
        added = client.post(
            f"/api/v1/auth/organisations/{organisation}/members",
            json={"email": person["user"]["email"], "role": "operator"},
        )
        assert added.status_code == 201, added.text
        for days in (0, 3651):
            refused = set_period(client, organisation, days)
            assert (refused.status_code, refused.json()["code"]) == (422, "invalid_retention_days")
        assert set_period(client, organisation, 90).status_code == 200
    refreshed = httpx.post(
        f"{system.url}/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]}, timeout=60
    ).json()
    with system.client(refreshed, organisation) as operator:
        assert operator.get(f"/api/v1/auth/organisations/{organisation}/retention").json()["days"] == 90
        refused = set_period(operator, organisation, 1)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        assert operator.get(f"/api/v1/auth/organisations/{organisation}/retention").json()["days"] == 90
