"""Deleting a job from its result page: asked first, then gone everywhere; a viewer has no button,
and is offered only what a viewer may do."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from .conftest import Account, save_profile, wait_for_job

Browse = Callable[[Account | None], Page]
Screenshot = Callable[[Page, str], None]


def _upload(account: Account, photo: Path) -> str:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("to-delete.jpg", photo.read_bytes(), "image/jpeg")}
        )
        job_id: str = batch.raise_for_status().json()["jobs"][0]["id"]
        wait_for_job(client, job_id)
    return job_id


def _as_viewer(admin: Account, viewer: Account) -> str:
    """Make ``viewer`` a viewer in the admin's organisation, with tokens that say so; its id."""
    with admin.client() as client:
        organisation = (
            client.get("/api/v1/auth/me").raise_for_status().json()["memberships"][0]["organisation_id"]
        )
        client.post(
            f"/api/v1/auth/organisations/{organisation}/members",
            json={"email": viewer.email, "role": "viewer"},
        ).raise_for_status()
    assert viewer.tokens is not None
    refreshed = httpx.post(
        f"{viewer.base_url}/api/v1/auth/refresh",
        json={"refresh_token": viewer.tokens["refresh_token"]},
        timeout=30,
    ).raise_for_status()
    viewer.tokens = {key: refreshed.json()[key] for key in ("access_token", "refresh_token")}
    return str(organisation)


def _viewer_page(browse: Browse, admin: Account, viewer: Account) -> Page:
    """A page signed in as ``viewer``, made a viewer in the admin's organisation and working in it."""
    organisation = _as_viewer(admin, viewer)
    page = browse(viewer)
    page.add_init_script(
        f"sessionStorage.setItem('chromaline.session.organisation', {json.dumps(organisation)});"
    )
    return page


def test_a_viewer_sees_no_delete_button(
    browse: Browse, account: Account, new_account: Callable[[str], Account], blank_photo: Path
) -> None:
    job_id = _upload(account, blank_photo)
    page = _viewer_page(browse, account, new_account("vera"))
    page.goto(f"/#/jobs/{job_id}")
    expect(page.get_by_role("heading", name="to-delete.jpg")).to_be_visible()
    expect(page.locator("#job-state")).to_have_text(re.compile("Failed|Done"))
    expect(page.get_by_role("button", name="Delete job")).to_have_count(0)
    expect(page.locator("#corner-form")).to_have_count(0)


def test_a_viewer_is_offered_no_upload_and_no_profile_to_save(
    browse: Browse, account: Account, new_account: Callable[[str], Account], finished_job: dict[str, Any]
) -> None:
    """A viewer may not upload or save profiles: the pages say so instead of offering forms the API refuses."""
    page = _viewer_page(browse, account, new_account("vince"))
    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.locator("#verdict")).to_be_visible()
    expect(page.locator("#downloads-title")).to_be_visible()
    expect(page.get_by_role("button", name="Save as profile")).to_have_count(0)
    profile_id = save_profile(account, finished_job["id"], "Seen by a viewer")
    page.goto("/#/profiles")
    item = page.locator(f"li[data-profile-id='{profile_id}']")
    expect(item.get_by_role("button", name="JSON")).to_be_visible()
    expect(item.get_by_role("button", name="Rename")).to_have_count(0)
    expect(item.get_by_role("button", name="Delete")).to_have_count(0)
    page.goto(f"/#/batches/{finished_job['batch_id']}")
    expect(page.locator("#batch-summary")).to_contain_text("All 1 finished")
    expect(page.get_by_role("button", name="Download all as ZIP")).to_be_visible()
    expect(page.get_by_role("link", name="Upload more")).to_have_count(0)
    page.goto("/#/upload")
    expect(page.get_by_role("status")).to_contain_text("A viewer sees the organisation's results")
    expect(page.get_by_role("button", name="Upload and correct")).to_have_count(0)


def test_a_viewer_is_offered_a_key_that_reads_and_nothing_it_could_not_use(
    browse: Browse, account: Account, new_account: Callable[[str], Account]
) -> None:
    """A viewer's key acts with a viewer's rights: a key allowed to upload would be refused (403) at
    its first upload, so the page offers reading only."""
    viewer = new_account("kira")
    page = _viewer_page(browse, account, viewer)
    page.goto("/#/settings/api-keys")
    expect(page.get_by_label("Read jobs and results")).to_be_checked()
    for scope in ("Upload photos", "Administer"):
        expect(page.get_by_label(scope)).to_be_disabled()
        expect(page.get_by_label(scope)).not_to_be_checked()
    expect(page.locator("#api-key-form")).to_contain_text("a key of yours can only read")
    page.get_by_label("Name", exact=True).fill("Gallery display")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#api-key-secret")).to_be_focused()
    organisation = page.evaluate("sessionStorage.getItem('chromaline.session.organisation')")
    with viewer.client() as client:
        listed = client.get("/api/v1/auth/api-keys", headers={"X-Organisation-ID": organisation})
        keys = listed.raise_for_status().json()["items"]
    assert [key["scopes"] for key in keys if key["name"] == "Gallery display"] == [["read"]]


def test_a_member_deletes_a_job_after_confirming(
    browse: Browse, account: Account, blank_photo: Path, screenshot: Screenshot
) -> None:
    job_id = _upload(account, blank_photo)
    page = browse(account)
    page.goto(f"/#/jobs/{job_id}")
    delete = page.get_by_role("button", name="Delete job")
    expect(delete).to_be_visible()
    screenshot(page, "result-delete")

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    delete.click()
    expect(page.locator("#job-state")).to_be_visible()
    [question] = asked
    assert "to-delete.jpg" in question
    assert "cannot be undone" in question
    with account.client() as client:
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200, "dismissing keeps the job"

    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    page.wait_for_url(re.compile(r"#/history"))
    with account.client() as client:
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
        listed = client.get("/api/v1/jobs").raise_for_status().json()["items"]
    assert job_id not in [item["id"] for item in listed]


def test_a_batch_counts_its_deleted_job_apart(
    page: Page, account: Account, blank_photo: Path, chart_photo: Path
) -> None:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs",
            files=[
                ("files", ("kept.jpg", chart_photo.read_bytes(), "image/jpeg")),
                ("files", ("to-delete.jpg", blank_photo.read_bytes(), "image/jpeg")),
            ],
        ).raise_for_status()
        kept, deleted = (job["id"] for job in batch.json()["jobs"])
        assert wait_for_job(client, kept)["state"] == "done"
        wait_for_job(client, deleted)
        client.delete(f"/api/v1/jobs/{deleted}").raise_for_status()
    page.goto(f"/#/batches/{batch.json()['id']}")
    expect(page.locator("#batch-summary")).to_have_text("All 2 finished: 1 corrected, 1 deleted.")
    row = page.locator(f"#batch-jobs li[data-job-id='{deleted}']")
    expect(row.locator(".badge")).to_have_text("Deleted")
    expect(row.locator(".job-name")).to_have_text("A deleted photo")


def test_an_address_cannot_send_the_pages_requests_elsewhere(page: Page, account: Account) -> None:
    """The id in the page's address was decoded and put into the API path as it was, so
    ``#/jobs/..%2F..%2Fv1%2Fauth%2Fme%3Fx%3D`` had the app ask the API elsewhere with the user's token."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto("/#/upload")
    expect(page.locator("h1")).to_be_visible()
    for address in ("/#/jobs/..%2F..%2Fv1%2Fauth%2Fme%3Fx%3D", "/#/batches/..%2Fcharts%3F"):
        page.goto(address)
        page.wait_for_timeout(1500)
    strays = [url for url in asked if "/api/v1/auth/me?x=" in url or "/api/v1/charts?" in url]
    assert strays == []
