"""History: rating colours, the profile used, date and rating filters, cards on a phone, a page
past the last."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize, expect

from .conftest import Account, wait_for_job

PHONE = ViewportSize(width=390, height=844)
Browse = Callable[[Account | None], Page]


def _stars(job: dict[str, Any]) -> int:
    rating: str = job["rating"]
    return 0 if rating.endswith("below 1-star") else int(rating.rsplit(" ", 1)[-1].split("-")[0])


def test_history_shows_rating_colours_and_the_profile_used(page: Page, finished_job: dict[str, Any]) -> None:
    page.goto("/#/history")
    row = page.locator(f"#history-table tr[data-job-id='{finished_job['id']}']")
    badge = row.locator(".rating-badge")
    stars = _stars(finished_job)
    expect(badge).to_have_text(f"{stars}-star" if stars else "below 1-star")
    expect(badge).to_have_class(
        f"rating-badge rating-small rating-{['bad', 'poor', 'fair', 'good', 'best'][stars]}"
    )
    expect(row).to_contain_text("Own chart")
    thumbnail = row.locator("img.thumb")
    expect(thumbnail).to_have_count(1)
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    assert thumbnail.evaluate("image => Math.max(image.naturalWidth, image.naturalHeight)") == 160


def test_history_filters_by_rating_and_date(page: Page, finished_job: dict[str, Any]) -> None:
    stars = _stars(finished_job)
    row = f"#history-table tr[data-job-id='{finished_job['id']}']"
    page.goto("/#/history")
    page.get_by_text("Filter by state, rating or date").click()
    page.get_by_label("Rating").select_option(str(stars))
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"**/#/history?stars={stars}")
    expect(page.locator(row)).to_have_count(1)

    page.goto(f"/#/history?stars={(stars + 1) % 5}")
    expect(page.locator("#history-count")).to_contain_text("match")
    expect(page.locator(row)).to_have_count(0)

    today = datetime.now(UTC).date()
    page.goto(f"/#/history?since={today + timedelta(days=1)}")
    expect(page.locator("#history-count")).to_have_text("0 jobs match")
    page.goto(f"/#/history?until={today - timedelta(days=1)}")
    expect(page.locator("#history-count")).to_have_text("0 jobs match")
    page.goto(f"/#/history?since={today}&until={today}")
    expect(page.locator(row)).to_have_count(1)
    expect(page.get_by_label("From")).to_have_value(str(today))


def test_history_rows_become_cards_on_a_phone(page: Page, finished_job: dict[str, Any]) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/#/history")
    row = page.locator(f"#history-table tr[data-job-id='{finished_job['id']}']")
    expect(row).to_be_visible()
    fits = page.locator("#history-table").evaluate(
        "table => table.scrollWidth <= table.parentElement.clientWidth"
    )
    assert fits, "the table scrolls sideways on a phone"
    after = row.locator("td.num").nth(1)
    expect(after).to_have_attribute("data-label", "ΔE₀₀ after")
    label = after.evaluate("cell => getComputedStyle(cell, '::before').content")
    assert "attr(data-label)" in label or "ΔE₀₀ after" in label, label
    expect(page.locator("#history-table thead")).not_to_be_in_viewport()
    expect(after).to_be_visible()


def test_a_page_past_the_last_says_so_and_leads_to_the_last(page: Page, finished_job: dict[str, Any]) -> None:
    page.goto("/#/history?page=999")
    expect(page.locator("#history-count")).to_contain_text("job")
    expect(page.locator("main")).not_to_contain_text("No jobs yet")
    last = page.get_by_role("link", name=re.compile(r"^Go to the last page"))
    expect(last).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Page 999 of")
    last.click()
    expect(page.locator("#history-table tbody tr").first).to_be_visible()


def test_a_failed_job_names_no_chart_it_did_not_measure(
    browse: Browse, new_account: Callable[[str], Account], blank_photo: Path
) -> None:
    account = new_account("fiona")
    page = browse(account)
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("empty-wall.jpg", blank_photo.read_bytes(), "image/jpeg")}
        )
        job = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    assert job["state"] == "failed", job
    page.goto("/#/history?q=empty-wall&state=failed")
    row = page.locator(f"#history-table tr[data-job-id='{job['id']}']")
    expect(row.locator("td[data-label='Profile']")).to_have_text("—")


def test_history_filters_by_a_metamorfoze_level(
    browse: Browse, new_account: Callable[[str], Account], chart_photo: Path
) -> None:
    """An organisation rating against Metamorfoze 2.0 finds its jobs by level (the filter offered
    FADGI stars only, which no Metamorfoze rating has)."""
    account = new_account("maud")
    page = browse(account)
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs",
            files={"files": ("metamorfoze-filter.jpg", chart_photo.read_bytes(), "image/jpeg")},
            data={"guideline": "metamorfoze2"},
        )
        job = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    level = job["rating"].removeprefix("Metamorfoze 2.0 ")
    row = f"#history-table tr[data-job-id='{job['id']}']"
    page.goto("/#/history?q=metamorfoze-filter")
    page.get_by_text("Filter by state, rating or date").click()
    page.get_by_label("Rating").select_option(label=f"Metamorfoze {level}")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"level="))
    expect(page.locator(row)).to_have_count(1)
    expect(page.get_by_label("Rating")).to_have_value(level)
    other = next(choice for choice in ("Full", "Light", "below Light") if choice != level)
    page.goto(f"/#/history?q=metamorfoze-filter&level={other.replace(' ', '+')}")
    expect(page.locator("#history-count")).to_have_text("0 jobs match")
