"""``Idempotency-Key`` on the gateway's creating routes: a retried request gets the first response,
not a second job; the same key with another request is refused; racing retries create one job.
An upload whose job cannot be recorded answers 503 and takes its original back.

The gateway app runs in process on the real PostgreSQL, with its blobs in a folder (conftest).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy.exc
from sqlalchemy import func, select

from chromaline.common.blobs import buckets
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs as job_service
from chromaline.gateway.models import Job
from chromaline.gateway.testing import ApiClient, small_photo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _jobs(runtime: ServiceRuntime) -> int:
    async with runtime.session() as session:
        return int((await session.execute(select(func.count()).select_from(Job))).scalar_one())


async def _originals(runtime: ServiceRuntime) -> int:
    return len([stored async for stored in runtime.blobs.list_objects(buckets.ORIGINALS)])


async def _upload(client: httpx.AsyncClient, photo: bytes, key: str | None, **form: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/api/v1/jobs", files=[("files", ("shot.jpg", photo, "image/jpeg"))], data=form, headers=headers
    )


async def test_a_retried_upload_gets_the_first_batch_not_a_second_job(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice, api_client("org-b") as bob:
        first = await _upload(alice, small_photo(10), "retry-1")
        again = await _upload(alice, small_photo(10), "retry-1")
        elsewhere = await _upload(bob, small_photo(10), "retry-1")
        without_key = [await _upload(alice, small_photo(10), None) for _ in range(2)]
    assert [response.status_code for response in (first, again, elsewhere, *without_key)] == [202] * 5
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert elsewhere.json()["id"] != first.json()["id"]
    assert await _jobs(api_runtime) == 4
    assert await _originals(api_runtime) == 4


async def test_the_same_key_with_another_request_is_refused(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice:
        assert (await _upload(alice, small_photo(10), "k")).status_code == 202
        other_photo = await _upload(alice, small_photo(200), "k")
        other_options = await _upload(alice, small_photo(10), "k", output_format="png")
    for refused in (other_photo, other_options):
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "idempotency_key_reused"
    assert await _jobs(api_runtime) == 1
    assert await _originals(api_runtime) == 1


async def test_racing_retries_create_one_job(api_runtime: ServiceRuntime, api_client: ApiClient) -> None:
    async with api_client("org-a") as alice:
        answers = await asyncio.gather(*(_upload(alice, small_photo(10), "race") for _ in range(4)))
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) <= {202, 409}, [answer.text for answer in answers]
        assert all(
            answer.json()["code"] == "idempotency_key_in_use"
            for answer in answers
            if answer.status_code == 409
        )
        retried = await _upload(alice, small_photo(10), "race")
    batch_ids = {answer.json()["id"] for answer in (*answers, retried) if answer.status_code == 202}
    assert len(batch_ids) == 1
    assert await _jobs(api_runtime) == 1
    assert await _originals(api_runtime) == 1


async def test_a_retried_streamed_upload_stores_and_creates_nothing_more(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice:
        answers = [
            await alice.put(
                "/api/v1/uploads/stream",
                params={"filename": "big.jpg"},
                content=small_photo(10),
                headers={"Idempotency-Key": "stream-1"},
            )
            for _ in range(2)
        ]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[1].json() == answers[0].json()
    assert await _jobs(api_runtime) == 1
    assert await _originals(api_runtime) == 1


async def test_a_retried_webhook_is_one_webhook_and_its_secret_is_not_replayed(
    api_client: ApiClient,
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]}
    async with api_client("org-a") as alice:
        first = await alice.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "hook"})
        again = await alice.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": "hook"})
        listed = (await alice.get("/api/v1/webhooks")).json()["items"]
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["secret"].startswith("whsec_")
    assert again.json() == {name: value for name, value in first.json().items() if name != "secret"}
    assert again.headers["Idempotent-Replayed"] == "true; redacted=secret"
    assert [hook["id"] for hook in listed] == [first.json()["id"]]


async def test_an_upload_whose_job_cannot_be_recorded_answers_503_and_leaves_no_original(
    api_runtime: ServiceRuntime, api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_gone(*args: object, **kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused"))

    monkeypatch.setattr(job_service, "create_batch", database_gone)
    async with api_client("org-a") as alice:
        answer = await _upload(alice, small_photo(10), "db-down")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "dependency_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert await _originals(api_runtime) == 0
