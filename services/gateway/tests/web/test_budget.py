"""Each page's weight: what a first visit downloads of the app itself (page, scripts, styles,
icon), in bytes on the wire and in requests; and that a second visit downloads none of it again."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, Response, expect

APP_BUDGET_BYTES = 60_000
"""Compressed bytes of the app's own files on a first visit (measured: about 40 kB)."""
APP_BUDGET_REQUESTS = 26
"""Requests for the app's own files on a first visit: the page, its styles, icon and modules."""
PAGES = {
    "upload": ("/#/upload", "h1"),
    "history": ("/#/history", "#history-count"),
    "result": ("/#/jobs/{done}", "#verdict"),
    "settings": ("/#/settings/account", "#account-email"),
}


def _own_files(responses: list[Response]) -> list[Response]:
    return [
        response for response in responses if "/api/" not in response.url and response.url.startswith("http")
    ]


@pytest.mark.parametrize("name", PAGES)
def test_a_page_stays_within_its_budget_and_is_cached(
    page: Page, finished_job: dict[str, Any], name: str
) -> None:
    seen: list[Response] = []
    page.on("response", lambda response: seen.append(response))
    path, ready = PAGES[name]
    page.goto(path.format(done=finished_job["id"]))
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    first = _own_files(seen)
    wire = sum(response.request.sizes()["responseBodySize"] for response in first)
    print(f"budget {name}: {len(first)} requests, {wire} bytes")
    assert len(first) <= APP_BUDGET_REQUESTS, [response.url for response in first]
    assert wire <= APP_BUDGET_BYTES
    assets = [response for response in first if "/web/" in response.url]
    assert assets
    assert all(
        response.headers.get("content-encoding") in ("br", "gzip")
        for response in assets
        if response.url.endswith((".js", ".css"))
    )

    seen.clear()
    page.reload()
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    fetched_again = [
        response
        for response in _own_files(seen)
        if "/web/" in response.url
        and not response.from_service_worker
        and response.status == 200
        and response.request.sizes()["responseBodySize"] > 0
    ]
    assert not fetched_again, [response.url for response in fetched_again]
