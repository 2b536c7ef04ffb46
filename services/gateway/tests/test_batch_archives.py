"""A batch archive is built whole before it is sent, so one user builds a bounded number at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import report_on_request
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient, create_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_one_user_builds_a_bounded_number_of_archives_at_once(
    api_runtime: ServiceRuntime, api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    building = asyncio.Event()

    async def reports_not_made_yet(*_: Any) -> dict[Any, Any]:
        await building.wait()
        return {}

    monkeypatch.setattr(report_on_request, "fetch_made_on_request", reports_not_made_yet)
    settings = api_runtime.settings
    assert isinstance(settings, GatewaySettings)
    limit = settings.max_archive_builds_per_user
    [job_id] = await create_jobs(api_runtime, "org-a", "a.jpg", owner="u-1")
    async with api_client("org-a") as client:
        archive = f"/api/v1/batches/{(await client.get(f'/api/v1/jobs/{job_id}')).json()['batch_id']}/archive"
        first = [asyncio.create_task(client.get(archive)) for _ in range(limit)]
        await asyncio.sleep(0.5)
        refused = await asyncio.wait_for(client.get(archive), timeout=10)
        building.set()
        built = await asyncio.gather(*first)
        after = await client.get(archive)
    assert (refused.status_code, refused.json()["code"]) == (429, "too_many_archives")
    assert int(refused.headers["Retry-After"]) > 0
    assert [answer.status_code for answer in built] == [200] * limit
    assert after.status_code == 200, "a finished archive frees its place"
