"""The profiles page as a screen reader and a keyboard meet it: each control names its profile,
and deleting one leaves focus and the page in a sensible place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Account, save_profile, wait_for_job

Browse = Callable[[Account | None], Page]


def test_each_control_names_its_profile_and_the_last_delete_says_none_are_left(
    browse: Browse, new_account: Callable[[str], Account], chart_photo: Path
) -> None:
    owner = new_account("petra")
    with owner.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("window.jpg", chart_photo.read_bytes(), "image/jpeg")}
        )
        job = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    save_profile(owner, job["id"], "North window")
    save_profile(owner, job["id"], "Copy stand")
    page = browse(owner)
    page.goto("/#/profiles")
    controls = page.locator("#profile-list").get_by_role("button").or_(page.locator("#profile-list a.button"))
    expect(controls).to_have_count(10)
    names = controls.evaluate_all(
        "nodes => nodes.map((node) => node.getAttribute('aria-label') || node.textContent)"
    )
    assert len(set(names)) == len(names), names
    assert "Download “Copy stand” as JSON" in names

    for name in ("North window", "Copy stand"):
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Delete “{name}”").click()
        expect(page.locator("#profiles-status")).to_contain_text(f"Deleted “{name}”.")
        expect(page.locator("#profiles-status")).to_be_focused()
    expect(page.locator("main")).to_contain_text("No profiles yet.")
