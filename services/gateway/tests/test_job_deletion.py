"""``DELETE /api/v1/jobs/{id}``: once deleted a job is no job at all (404 everywhere, a second
delete included), what the pipeline still sends for it changes nothing, and ``job.expired``
says who deleted it and why."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime

import pytest

from chromaline.common.events.contracts import BlobRef, ReportReady
from chromaline.common.events.envelope import make_envelope
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs as job_service
from chromaline.gateway.handlers import on_pipeline_event
from chromaline.gateway.retention import saved_profile_blobs
from chromaline.gateway.testing import ApiClient, create_jobs, fail_job, finish_job

from .conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _running_job(world: World) -> str:
    job_id = world.new_job()
    world.sql("UPDATE gateway.jobs SET state = 'reporting' WHERE id = CAST(:id AS uuid)", id=job_id)
    world.sql(
        "INSERT INTO gateway.notifications (id, user_id, organisation_id, kind, job_id, title, body) "
        "VALUES (:id, 'someone', :org, 'job_finished', CAST(:job AS uuid), 'gone.png', 'gone.png is done')",
        id=str(uuid.uuid4()),
        org=world.organisation,
        job=job_id,
    )
    return job_id


def test_a_job_deleted_in_flight_stays_deleted_and_is_announced(world: World) -> None:
    job_id = _running_job(world)
    member = world.callers["member"]
    with world.client() as client:
        deleted = client.delete(f"/api/v1/jobs/{job_id}", headers=member.headers)
        assert deleted.status_code == 202, deleted.text

        report = BlobRef(bucket="chromaline-reports", key=f"{job_id}/report.pdf")
        late = ReportReady(
            job_id=uuid.UUID(job_id), report_json=report, report_html=report, report_pdf=report
        )
        world.server.run(
            on_pipeline_event(world.standalone.runtimes["gateway"], make_envelope("reporter", job_id, late))
        )

        for method, path in (
            ("DELETE", f"/api/v1/jobs/{job_id}"),
            ("GET", f"/api/v1/jobs/{job_id}"),
            ("GET", f"/api/v1/jobs/{job_id}/files/report.pdf"),
        ):
            response = client.request(method, path, headers=member.headers)
            assert (response.status_code, response.json()["code"]) == (404, "job_not_found"), path
        listed = client.get("/api/v1/jobs", headers=member.headers).json()["items"]
        assert job_id not in [item["id"] for item in listed]

    assert world.sql("SELECT state, results FROM gateway.jobs WHERE id = CAST(:id AS uuid)", id=job_id) == [
        ("deleted", {})
    ]
    assert world.sql(
        "SELECT count(*) FROM gateway.notifications WHERE job_id = CAST(:id AS uuid)", id=job_id
    ) == [(0,)]
    [(payload,)] = world.sql(
        "SELECT payload FROM gateway.outbox WHERE routing_key = 'job.expired' AND payload->>'subject' = :id",
        id=job_id,
    )
    data = payload["data"]
    member_id = world.sql(
        "SELECT user_id FROM auth.memberships WHERE organisation_id = CAST(:org AS uuid) AND role = 'member'",
        org=world.organisation,
    )[0][0]
    assert (data["reason"], data["deleted_by"], data["api_key_id"]) == (
        "deleted_on_request",
        str(member_id),
        None,
    )
    assert data["original"] == {"bucket": "chromaline-originals", "key": f"nowhere/{job_id}.png"}
    assert json.dumps(data["results"]) == "{}"


def test_an_api_key_deleting_a_job_is_named(world: World) -> None:
    job_id = world.new_job()
    with world.client() as client:
        deleted = client.delete(f"/api/v1/jobs/{job_id}", headers=world.callers["key_admin"].headers)
        assert deleted.status_code == 202, deleted.text
    [(payload,)] = world.sql(
        "SELECT payload FROM gateway.outbox WHERE routing_key = 'job.expired' AND payload->>'subject' = :id",
        id=job_id,
    )
    [(key_id,)] = world.sql("SELECT id FROM auth.api_keys WHERE name = 'admin'")
    assert payload["data"]["api_key_id"] == str(key_id)


async def test_a_profile_saved_while_its_job_is_being_deleted_is_not_saved(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    [job_id] = await create_jobs(api_runtime, "org-a", "chart.jpg", owner="someone")
    await finish_job(api_runtime, job_id)
    async with api_client("org-a") as alice:
        async with api_runtime.session() as session, session.begin():
            job = await job_service.get_job(session, job_id, for_update=True)
            assert job is not None
            saving = asyncio.create_task(
                alice.post("/api/v1/profiles", json={"job_id": str(job_id), "name": "p"})
            )
            await asyncio.sleep(0.5)  # the profile is asked for while the deletion holds the job
            kept = await saved_profile_blobs(session, [job_id])
            await job_service.delete_job_on_request(
                session,
                job,
                deleted_by=uuid.uuid4(),
                api_key_id=None,
                kept=kept.get(job_id, []),
                now=datetime.now(UTC),
            )
        saved = await saving
    assert (saved.status_code, saved.json()["code"]) == (404, "job_not_found"), saved.text


async def test_a_batch_tells_nothing_of_its_deleted_job_but_that_it_is_deleted(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    """The batch still listed the deleted job with its file name, ratings and options, to everyone
    in the organisation, and its archive's manifest named it too."""
    kept, deleted = await create_jobs(api_runtime, "org-a", "kept.jpg", "secret-name.jpg", owner="someone")
    for job_id in (kept, deleted):
        await fail_job(api_runtime, job_id)
    async with api_client("org-a") as alice:
        batch_id = (await alice.get(f"/api/v1/jobs/{kept}")).json()["batch_id"]
        assert (await alice.delete(f"/api/v1/jobs/{deleted}")).status_code == 202
        batch = (await alice.get(f"/api/v1/batches/{batch_id}")).json()
        archive = await alice.get(f"/api/v1/batches/{batch_id}/archive")

    assert (batch["total"], batch["finished"], batch["done"], batch["states"]) == (
        2,
        2,
        True,
        {"failed": 1, "deleted": 1},
    )
    tombstone = next(job for job in batch["jobs"] if job["id"] == str(deleted))
    assert tombstone == {
        "id": str(deleted),
        "batch_id": batch_id,
        "filename": None,
        "state": "deleted",
        "progress": 1.0,
    }
    assert archive.status_code == 200, archive.text
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        manifest = bundle.read("manifest.json").decode()
    assert "secret-name" not in manifest
    assert "secret-name" not in json.dumps(batch)
