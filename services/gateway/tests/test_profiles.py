"""Saved profiles: an organisation keeps a bounded number, as they are listed whole."""

from __future__ import annotations

import asyncio

import pytest

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.testing import ApiClient, create_jobs, finish_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_profiles_saved_at_once_stay_within_the_organisations_limit(
    api_runtime: ServiceRuntime, api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saving a profile copies nothing, so a member could save one job's profile without end and
    grow the list every member's profile picker reads."""
    monkeypatch.setattr("chromaline.gateway.api.MAX_PROFILES_PER_ORGANISATION", 5)
    [job_id] = await create_jobs(api_runtime, "org-a", "chart.jpg", owner="someone")
    [other_job] = await create_jobs(api_runtime, "org-b", "chart.jpg", owner="someone else")
    for finished in (job_id, other_job):
        await finish_job(api_runtime, finished)
    async with api_client("org-a") as alice, api_client("org-b") as bob:
        answers = await asyncio.gather(
            *(alice.post("/api/v1/profiles", json={"job_id": str(job_id), "name": f"p{n}"}) for n in range(8))
        )
        listed = (await alice.get("/api/v1/profiles")).json()["items"]
        elsewhere = await bob.post("/api/v1/profiles", json={"job_id": str(other_job), "name": "p"})
    codes = sorted((answer.status_code, answer.json().get("code")) for answer in answers)
    assert codes == [(201, None)] * 5 + [(409, "too_many_profiles")] * 3
    assert len(listed) == 5
    assert elsewhere.status_code == 201, "the limit is each organisation's own"


@pytest.mark.parametrize("name", ["gpj.\u202eexe", "p\u200b1", "p\n1"])
async def test_a_profile_name_with_control_or_invisible_characters_is_refused(
    api_runtime: ServiceRuntime, api_client: ApiClient, name: str
) -> None:
    """A profile's name names its downloads: a direction override turned "…exe.json" around on screen."""
    [job_id] = await create_jobs(api_runtime, "org-a", "chart.jpg", owner="someone")
    await finish_job(api_runtime, job_id)
    async with api_client("org-a") as alice:
        refused = await alice.post("/api/v1/profiles", json={"job_id": str(job_id), "name": name})
        saved = await alice.post("/api/v1/profiles", json={"job_id": str(job_id), "name": "Studio"})
        renamed = await alice.patch(f"/api/v1/profiles/{saved.json()['id']}", json={"name": name})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")
    assert (renamed.status_code, renamed.json()["code"]) == (422, "invalid_request")
