"""The batch page: on an unsteady line (the progress socket lost, the server briefly away), and
with a photo whose chart was not found."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route, expect

from .conftest import Account, wait_for_job


def test_a_lost_connection_is_no_longer_reported_once_progress_arrives(
    page: Page, finished_job: dict[str, Any]
) -> None:
    batch_id = finished_job["batch_id"]
    refused: list[str] = []

    def briefly_away(route: Route) -> None:
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1"},
                content_type="application/problem+json",
                body='{"status": 503, "code": "dependency_unavailable", "detail": "the database is briefly away"}',
            )
        else:
            route.fallback()

    page.route_web_socket(re.compile(r".*/events.*"), lambda socket: socket.close())
    page.route(f"**/api/v1/batches/{batch_id}", briefly_away)
    errors = page.locator(".card [role=alert]")
    page.goto(f"/#/batches/{batch_id}")
    expect(errors).to_contain_text("The database is briefly away")
    expect(page.locator("#batch-summary")).to_contain_text("All 1 finished")
    expect(errors).to_have_count(0)


def test_a_photo_whose_chart_was_not_found_is_offered_to_put_right(
    browse: Callable[[Account | None], Page],
    new_account: Callable[[str], Account],
    blank_photo: Path,
    chart_photo: Path,
) -> None:
    account = new_account("bruno")
    page = browse(account)
    with account.client() as client:
        batch = (
            client.post(
                "/api/v1/jobs",
                files=[
                    ("files", ("wall-without-chart.jpg", blank_photo.read_bytes(), "image/jpeg")),
                    ("files", ("studio.jpg", chart_photo.read_bytes(), "image/jpeg")),
                ],
            )
            .raise_for_status()
            .json()
        )
        for job in batch["jobs"]:
            wait_for_job(client, job["id"])
    page.goto(f"/#/batches/{batch['id']}")
    expect(page.locator("#batch-summary")).to_contain_text("All 2 finished")
    expect(page.locator(".corners-link")).to_have_count(1)
    page.get_by_role("link", name="Show where the chart is: wall-without-chart.jpg").click()
    expect(page.get_by_role("heading", name="Show where the chart is")).to_be_visible()
