"""The batch page on an unsteady line: the progress socket lost, the server briefly away."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, Route, expect


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
