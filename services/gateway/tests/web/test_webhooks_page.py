"""Notifications and webhooks on the settings page: preferences, recent notices, a webhook's secret once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

Browse = Callable[[Any], Page]
Screenshot = Callable[[Page, str], None]


def _ended_state(client: httpx.Client, job_id: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state: str = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()["state"]
        if state in ("done", "failed"):
            return state
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not end")


def test_preferences_notifications_and_a_webhook(
    browse: Browse, new_account: Callable[[str], Any], blank_photo: Path, screenshot: Screenshot
) -> None:
    frank = new_account("frank")
    with frank.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("no-chart.jpg", blank_photo.read_bytes(), "image/jpeg")}
        ).raise_for_status()
        job_id = batch.json()["jobs"][0]["id"]
        assert _ended_state(client, job_id) == "failed"

    page = browse(frank)
    page.goto("/#/upload")
    page.get_by_role("link", name="Notifications: 1 unread").click()
    page.wait_for_url("**/#/settings/notifications")
    bell = page.locator("#bell")
    expect(bell.locator("#bell-count")).to_have_text("1")
    recent = page.locator("#recent-notifications")
    expect(recent.locator("#notification-list")).to_contain_text("no-chart.jpg failed")
    expect(recent.locator("#notification-list")).to_contain_text("new")
    expect(recent.locator("#notification-list")).to_contain_text("No colour chart was found in the photo.")
    failed = recent.get_by_role("link", name="no-chart.jpg failed")
    expect(failed).to_have_attribute("href", f"#/jobs/{job_id}")
    recent.get_by_role("button", name="Mark all read").click()
    expect(recent).to_contain_text("All notifications marked read.")
    expect(recent.get_by_role("button", name="Mark all read")).to_be_hidden()
    expect(recent.locator("#notification-list")).not_to_contain_text("new")
    expect(bell).to_have_attribute("aria-label", "Notifications: none unread")
    expect(bell.locator("#bell-count")).to_be_hidden()

    notifications = page.locator("#notifications")

    expect(notifications.get_by_label("A photo is corrected")).to_be_checked()
    notifications.get_by_label("A photo is corrected").uncheck()
    notifications.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#preferences-status")).to_contain_text("Preferences saved.")

    page.get_by_role("navigation", name="Settings pages").get_by_role("link", name="Webhooks").click()
    webhooks = page.locator("#webhooks")
    expect(webhooks).to_contain_text("No webhooks.")
    webhooks.get_by_label("URL to call").fill("https://hooks.example.test/chromaline")
    webhooks.get_by_label("Batch finished").uncheck()
    webhooks.get_by_role("button", name="Add webhook").click()
    secret_box = page.locator("#webhook-secret")
    expect(secret_box).to_be_focused()
    secret = secret_box.input_value()
    assert secret.startswith("whsec_")
    row = webhooks.locator("#webhook-list li", has_text="https://hooks.example.test/chromaline")
    expect(row).to_contain_text("job.failed, job.finished")
    screenshot(page, "settings-notifications")

    with frank.client() as client:
        preferences = client.get("/api/v1/notifications/preferences").json()
        [hook] = client.get("/api/v1/webhooks").json()["items"]
    assert preferences["job_finished"] is False
    assert preferences["job_failed"] is True
    assert "secret" not in hook

    row.get_by_role("button", name="Remove https://hooks.example.test/chromaline").click()
    expect(page.locator("#webhook-status")).to_contain_text("Removed https://hooks.example.test/chromaline.")
    expect(webhooks).to_contain_text("No webhooks.")
    with frank.client() as client:
        assert client.get("/api/v1/webhooks").json()["items"] == []
