"""An organisation's rating guideline: read by members, changed by admins, closed to unknown
values, and the default of every job uploaded without one.

The gateway app runs in process on the real PostgreSQL (conftest); who may call which route is the
route matrix's business (test_access.py).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.models import Job
from chromaline.gateway.testing import ApiClient, small_photo

from .conftest import caller_user_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SETTINGS = "/api/v1/organisation/settings"


async def _job_guideline(runtime: ServiceRuntime, client: httpx.AsyncClient, **form: str) -> str | None:
    response = await client.post(
        "/api/v1/jobs", files=[("files", ("shot.jpg", small_photo(10), "image/jpeg"))], data=form
    )
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["jobs"][0]["id"])
    async with runtime.session() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    guideline: str | None = job.options["guideline"]
    return guideline


async def test_an_organisation_starts_on_fadgi_2016_and_its_admin_changes_it(api_client: ApiClient) -> None:
    async with api_client("org-a") as alice, api_client("org-b") as bob:
        before = await alice.get(SETTINGS)
        changed = await alice.put(SETTINGS, json={"guideline": "metamorfoze2"})
        after = await alice.get(SETTINGS)
        elsewhere = await bob.get(SETTINGS)
    assert before.status_code == 200
    assert before.json()["guideline"] == "fadgi2016"
    assert changed.status_code == 200, changed.text
    assert after.json()["guideline"] == "metamorfoze2"
    assert after.json()["changed_by"] == caller_user_id("org-a")
    assert elsewhere.json()["guideline"] == "fadgi2016"


async def test_an_organisations_first_settings_saved_at_once_several_times_are_saved(
    api_client: ApiClient,
) -> None:
    async with api_client("org-a") as alice:
        answers = await asyncio.gather(
            *(alice.put(SETTINGS, json={"guideline": "metamorfoze2"}) for _ in range(4))
        )
        after = await alice.get(SETTINGS)
    assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]
    assert after.json()["guideline"] == "metamorfoze2"


@pytest.mark.parametrize(
    "body",
    [{"guideline": "fadgi2023"}, {"guideline": "iso19264"}, {"guideline": "fadgi2016", "extra": 1}, {}],
)
async def test_an_unknown_guideline_or_field_is_refused(
    api_client: ApiClient, body: dict[str, object]
) -> None:
    async with api_client("org-a") as alice:
        response = await alice.put(SETTINGS, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_job_without_a_guideline_gets_the_organisations(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice:
        assert await _job_guideline(api_runtime, alice) == "fadgi2016"
        await alice.put(SETTINGS, json={"guideline": "metamorfoze2"})
        assert await _job_guideline(api_runtime, alice) == "metamorfoze2"
        assert await _job_guideline(api_runtime, alice, guideline="fadgi2016") == "fadgi2016"
        refused = await alice.post(
            "/api/v1/jobs",
            files=[("files", ("shot.jpg", small_photo(10), "image/jpeg"))],
            data={"guideline": "fadgi2023"},
        )
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_options"
