"""Data retention in the web app: an admin sets the period on the settings page, and a job past it
shows what stays of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Page, expect

from chromaline.gateway.models import OrganisationRetention
from chromaline.gateway.retention import sweep

from .conftest import WebSystem, wait_for_job

Browse = Callable[[Any], Page]
Screenshot = Callable[[Page, str], None]
T = TypeVar("T")


def _gateway_period(web_system: WebSystem, organisation: str) -> int | None:
    async def read() -> int | None:
        async with web_system.standalone.runtimes["gateway"].session() as session:
            period = await session.get(OrganisationRetention, organisation)
        return period.days if period is not None else None

    return web_system.server.run(read(), timeout=60)


def test_an_admin_shortens_the_period_and_an_expired_job_keeps_its_summary(
    browse: Browse,
    new_account: Callable[[str], Any],
    web_system: WebSystem,
    chart_photo: Path,
    screenshot: Screenshot,
) -> None:
    rita = new_account("rita")
    with rita.client() as client:
        organisation = client.get("/api/v1/auth/me").json()["organisation_id"]
        batch = client.post(
            "/api/v1/jobs", files={"files": ("kept-briefly.jpg", chart_photo.read_bytes(), "image/jpeg")}
        ).raise_for_status()
        job = wait_for_job(client, batch.json()["jobs"][0]["id"])
    assert job["state"] == "done", job

    page = browse(rita)
    page.goto("/#/settings/organisation")
    retention = page.locator("#retention")
    expect(page.locator("#retention-summary")).to_contain_text("(the server’s default)")
    retention.get_by_label("Days to keep files").fill("1")
    retention.get_by_role("button", name="Save").click()
    expect(page.locator("#retention-status")).to_have_text("Files are now kept 1 day.")
    expect(page.locator("#retention-summary")).to_have_text("A job’s files are kept 1 day after it ends.")
    screenshot(page, "settings-retention")

    deadline = time.monotonic() + 30
    while _gateway_period(web_system, organisation) != 1:
        assert time.monotonic() < deadline, "the gateway did not hear of the new period"
        time.sleep(0.2)
    later = datetime.now(UTC) + timedelta(days=2)
    result = web_system.server.run(sweep(web_system.standalone.runtimes["gateway"], now=later), timeout=60)
    assert result.expired >= 1

    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-state")).to_have_text("Expired")
    expect(page.locator("#result-body")).to_contain_text("The files of this job were deleted")
    expect(page.locator("#de-after")).to_have_text(f"{job['delta_e2000_after']:.2f}")
    expect(page.get_by_role("button", name="Corrected image")).to_have_count(0)
    screenshot(page, "result-expired")

    page.goto("/#/history?state=expired")
    expect(page.locator("#history-table tbody tr", has_text="kept-briefly.jpg")).to_contain_text("Expired")
