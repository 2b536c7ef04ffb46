"""Deleting a job on request through the public API, on the whole system in this process (real
PostgreSQL in a database of its own, S3, an in-process bus of the test's own): the job and every
file of it answer 404, its blobs leave the store in every service, the deletion is audited, and
another organisation's job is untouched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chromaline.cli.downloads import made_on_request

from .test_retention import (
    SETTLE_SECONDS,
    RetentionSystem,
    eventually,
    finished_job,
    reported,
    system_in_process,
)

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def deletion_system(postgres_url: str, s3_url: str) -> Iterator[RetentionSystem]:
    with system_in_process(postgres_url, s3_url, "deletion") as system:
        yield system


def test_a_deleted_job_and_all_its_files_are_gone_and_another_organisations_stay(
    deletion_system: RetentionSystem,
) -> None:
    system = deletion_system
    owner, neighbour = system.sign_up("Deleting studio"), system.sign_up("Neighbour studio")
    owner_org = owner["organisation"]["id"]
    with system.client(owner) as client, system.client(neighbour) as other:
        job = finished_job(client, "private.jpg", 61)
        kept = finished_job(other, "neighbour.jpg", 62)
        job = reported(client, job)
        page = made_on_request(client, job["files"]["report.html"], SETTLE_SECONDS)
        assert b"<html" in page.content, "the HTML and its figures, drawn on first view, are deleted too"
        [(original, results)] = system.sql(
            "SELECT original, results FROM gateway.jobs WHERE id = CAST(:id AS uuid)", id=job["id"]
        )
        assert {"report_html", "figure_chromaticity", "figure_delta_e"} <= set(results), results

        assert other.delete(f"/api/v1/jobs/{job['id']}").status_code == 404
        deleted = client.delete(f"/api/v1/jobs/{job['id']}")
        assert deleted.status_code == 202, deleted.text
        assert deleted.json()["state"] == "deleted"

        again = client.delete(f"/api/v1/jobs/{job['id']}")
        assert (again.status_code, again.json()["code"]) == (404, "job_not_found")
        assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
        for name, path in job["files"].items():
            gone = client.get(path)
            assert (gone.status_code, gone.json()["code"]) == (404, "job_not_found"), name
        assert client.get("/api/v1/jobs").json()["items"] == []

        assert not system.blob_exists(original)
        eventually(
            lambda: not any(system.blob_exists(ref) for ref in results.values()),
            "the corrector and the reporter delete the job's results",
        )
        assert system.sql(
            "SELECT (SELECT count(*) FROM detector.detections WHERE job_id = CAST(:id AS uuid))"
            " + (SELECT count(*) FROM corrector.corrections WHERE job_id = CAST(:id AS uuid))"
            " + (SELECT count(*) FROM reporter.reports WHERE job_id = CAST(:id AS uuid))",
            id=job["id"],
        ) == [(0,)]

        [entry] = eventually(
            lambda: client.get("/api/v1/auth/audit", params={"action": "job.deleted"}).json()["items"],
            "auth audits the deletion",
        )
        assert entry["organisation_id"] == owner_org
        assert entry["actor_id"] == owner["user"]["id"]
        assert entry["details"]["job_id"] == job["id"]
        assert entry["details"]["api_key_id"] is None
        assert f"{original['bucket']}/{original['key']}" in entry["details"]["deleted"]

        assert other.get(f"/api/v1/jobs/{kept['id']}").json()["state"] == "done"
        for name, path in kept["files"].items():
            assert other.get(path).status_code == 200, name
        assert other.get("/api/v1/auth/audit", params={"action": "job.deleted"}).json()["items"] == []
