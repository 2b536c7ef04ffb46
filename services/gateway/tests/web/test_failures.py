"""What people see when something is wrong: no chart found, files that are not photos."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from .conftest import wait_for_job

Screenshot = Callable[[Page, str], None]
PIPELINE_TIMEOUT_MS = 120_000


def test_no_chart_shows_the_photo_and_takes_manual_corners(
    page: Page, account: Any, blank_photo: Path, screenshot: Screenshot
) -> None:
    page.goto("/#/upload")
    page.set_input_files("#file-picker", blank_photo)
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.get_by_role("alert")).to_contain_text(
        "No colour chart was found in the photo.", timeout=PIPELINE_TIMEOUT_MS
    )
    picture = page.locator("#corner-picture img")
    expect(picture).to_be_visible()
    page.wait_for_function("document.querySelector('#corner-picture img').naturalWidth > 0")
    box = picture.bounding_box()
    assert box is not None
    shares = [(0.2, 0.25), (0.6, 0.25), (0.6, 0.75), (0.2, 0.75)]
    for x, y in shares:
        picture.click(position={"x": box["width"] * x, "y": box["height"] * y})
    expect(page.locator(".corner-dot")).to_have_count(4)
    screenshot(page, "result-no-chart")

    first = page.url
    page.get_by_role("button", name="Correct with these corners").click()
    page.wait_for_url(lambda url: "#/jobs/" in url and url != first)
    job_id = page.url.rsplit("/", 1)[-1]
    with account.client() as client:
        job = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
    assert job["filename"] == "no-chart.jpg"
    sent = job["options"]["corners"]
    expected = [(1200 * x, 900 * y) for x, y in shares]
    assert len(sent) == 4
    for (sent_x, sent_y), (x, y) in zip(sent, expected, strict=True):
        assert sent_x == pytest.approx(x, abs=4)
        assert sent_y == pytest.approx(y, abs=4)


def test_files_that_are_not_photos_are_named(page: Page, tmp_path: Path, chart_photo: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.goto("/#/upload")
    page.set_input_files("#file-picker", [notes, chart_photo])
    expect(page.locator(".file-list .file-refused")).to_contain_text("notes.txt")
    expect(page.locator(".file-list .file-refused")).to_contain_text(
        "Only JPEG, PNG, TIFF, WebP, HEIC, AVIF, DNG or camera RAW photos"
    )
    expect(page.locator(".file-list .file-accepted")).to_have_count(1)
    expect(page.locator(".file-list .file-accepted img.thumb")).to_have_count(1)

    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"this is text with a photo's name")
    page.set_input_files("#file-picker", fake)
    page.get_by_role("button", name="Upload and correct").click()
    refused = page.locator(".file-refused[data-refused='holiday.jpg']")
    expect(refused).to_contain_text("This file is not a photo Chromaline can read.")
    expect(page.locator("#follow-upload")).to_be_visible()
    assert "#/upload" in page.url
    page.locator("#follow-upload").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.get_by_role("heading", name="studio-shot.jpg")).to_be_visible()


def test_one_photo_goes_straight_to_its_result(page: Page, chart_photo: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/#/upload")
    expect(page.locator("#drop-zone")).not_to_contain_text("Drop photos here")
    expect(page.get_by_text("Take photo")).to_be_visible()
    expect(page.locator("#camera-picker")).to_have_attribute("capture", "environment")
    page.set_input_files("#file-picker", chart_photo)
    button = page.get_by_role("button", name="Upload and correct").bounding_box()
    advanced = page.locator("#advanced-options").bounding_box()
    assert button is not None
    assert advanced is not None
    assert button["y"] < advanced["y"], "the upload button sits below the options"
    expect(page.get_by_label("Correction method")).to_be_hidden()
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#verdict")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)


def test_a_job_that_does_not_exist_says_so(page: Page) -> None:
    page.goto("/#/jobs/00000000-0000-4000-8000-000000000000")
    expect(page.get_by_role("alert")).to_contain_text("no job 00000000-0000-4000-8000-000000000000")


def test_operator_sees_statistics_and_replays_dead_letters(
    browse: Any, platform_account: Any, web_system: Any, screenshot: Screenshot
) -> None:
    page = browse(platform_account)
    letter_id = web_system.publish_raw("image.uploaded", b"{not json")
    with platform_account.client() as client:
        deadline = time.monotonic() + 30
        while not any(
            item["id"] == letter_id for item in client.get("/api/v1/admin/dead-letters").json()["items"]
        ):
            assert time.monotonic() < deadline, "the undecodable message never reached a dead-letter queue"
            time.sleep(0.2)
        stats = client.get("/api/v1/stats").raise_for_status().json()

    page.goto("/#/operator")
    expect(page.locator("#stats-total")).to_have_text(str(sum(stats["jobs"].values())))
    row = page.locator(f"#dead-letters tr[data-queue='detector'][data-letter-id='{letter_id}']")
    expect(row).to_contain_text("image.uploaded")
    expect(row.locator("td").nth(2)).not_to_be_empty()
    screenshot(page, "operator")

    row.get_by_role("button", name="Replay image.uploaded from detector").click()
    expect(page.locator("#dead-letter-status")).to_contain_text("Replayed image.uploaded onto detector.")
    expect(row).to_have_count(0)


def test_the_operator_page_opened_by_someone_else_says_whom_it_is_for(page: Page) -> None:
    """The navigation offers it to platform operators only; opened by its address, it used to ask
    for the dead letters, get a 403 and show it as an error beside the organisation's figures."""
    refused: list[str] = []
    page.on("response", lambda answer: refused.append(answer.url) if answer.status >= 400 else None)
    page.goto("/#/upload")
    expect(page.get_by_role("link", name="Operator")).to_have_count(0)
    page.goto("/#/operator")
    expect(page.get_by_role("heading", name="Operator")).to_be_visible()
    expect(page.locator("main")).to_contain_text("This page is for platform operators")
    expect(page.locator("#dead-letters")).to_have_count(0)
    assert refused == []


def test_an_upload_answered_503_is_sent_again_with_its_key_and_makes_one_job(
    page: Page, account: Any, chart_photo: Path
) -> None:
    """The app sends a transient failure again with the same Idempotency-Key (the API answers a
    repeated key with the first answer: ``test_idempotency.py``); Playwright's route.fetch cannot
    replay a multipart file body, so the first attempt is refused here before it reaches the server."""
    sent_keys: list[str] = []

    def refuse_the_first_attempt(route: Route) -> None:
        sent_keys.append(route.request.headers["idempotency-key"])
        if len(sent_keys) == 1:
            route.fulfill(
                status=503,
                headers={"Content-Type": "application/problem+json", "Retry-After": "1"},
                body='{"code": "dependency_unavailable", "status": 503}',
            )
        else:
            route.continue_()

    with account.client() as client:
        jobs_before = client.get("/api/v1/jobs").raise_for_status().json()["total"]
    page.route("**/api/v1/jobs", refuse_the_first_attempt)
    page.goto("/#/upload")
    page.set_input_files("#file-picker", chart_photo)
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"), timeout=30_000)
    assert len(sent_keys) == 2
    assert sent_keys[0] == sent_keys[1]
    assert len(sent_keys[0]) == 32
    with account.client() as client:
        assert client.get("/api/v1/jobs").raise_for_status().json()["total"] == jobs_before + 1


def _failed_blank_job(account: Any, blank_photo: Path) -> dict[str, Any]:
    """A photo with no chart, sent through the API and refused by the detector."""
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("no-chart.jpg", blank_photo.read_bytes(), "image/jpeg")}
        ).raise_for_status()
        job = wait_for_job(client, batch.json()["jobs"][0]["id"])
    assert job["state"] == "failed", job
    return job


def test_a_box_found_with_low_confidence_is_offered_to_confirm(
    page: Page, account: Any, blank_photo: Path, screenshot: Screenshot
) -> None:
    """The detector's ``low_confidence`` answer asks the person to confirm the box it offers or to
    give the corners; the page shows that box on the photo, ready to send as it is."""
    job = _failed_blank_job(account, blank_photo)
    offered = [[240.0, 225.0], [720.0, 225.0], [720.0, 675.0], [240.0, 675.0]]

    def unsure(route: Route) -> None:
        view = route.fetch().json()
        view["reason"] = "low_confidence"
        view["message"] = (
            "a box that resembles the chart was found, but with confidence 0.68 (below 0.75): "
            "confirm it or give the corners"
        )
        view["candidate"] = {"chart_type": "classic24", "corners": offered, "confidence": 0.68}
        route.fulfill(json=view)

    page.route(f"**/api/v1/jobs/{job['id']}", unsure)
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.get_by_role("alert")).to_contain_text("not sure it is the chart")
    expect(page.get_by_role("heading", name="Is this your chart?")).to_be_visible()
    expect(page.locator(".corner-dot")).to_have_count(4)
    screenshot(page, "result-low-confidence")

    first = page.url
    page.get_by_role("button", name="Correct with these corners").click()
    page.wait_for_url(lambda url: "#/jobs/" in url and url != first)
    with account.client() as client:
        resent = client.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[-1]}").raise_for_status().json()
    assert resent["options"]["corners"] == offered


def test_corners_refused_as_not_a_chart_can_be_marked_again(
    page: Page, account: Any, blank_photo: Path
) -> None:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs",
            files={"files": ("no-chart.jpg", blank_photo.read_bytes(), "image/jpeg")},
            data={"corners": "[[100, 100], [500, 100], [500, 400], [100, 400]]"},
        ).raise_for_status()
        job = wait_for_job(client, batch.json()["jobs"][0]["id"])
    assert job["reason"] == "not_a_chart", job
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.get_by_role("alert")).to_contain_text("The corners given do not enclose the chart's patches.")
    expect(page.get_by_role("heading", name="Show where the chart is")).to_be_visible()
    expect(page.locator("#corner-picture img")).to_be_visible()


def test_the_pipeline_s_words_are_shown_as_a_sentence(page: Page, account: Any, blank_photo: Path) -> None:
    job = _failed_blank_job(account, blank_photo)

    def overexposed(route: Route) -> None:
        view = route.fetch().json()
        view["reason"] = "overexposed"
        view["message"] = "no chart found, and 6% of the photo is one area clipped to white"
        route.fulfill(json=view)

    page.route(f"**/api/v1/jobs/{job['id']}", overexposed)
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.get_by_role("alert")).to_have_text(
        "The chart is overexposed: its light patches are clipped. "
        "No chart found, and 6% of the photo is one area clipped to white."
    )
    # Corners cannot put a clipped chart right; the photo is shown so that the glare can be seen.
    expect(page.get_by_role("img", name=f"The photo sent, {job['filename']}")).to_be_visible()
    expect(page.get_by_role("heading", name="Show where the chart is")).to_have_count(0)


def test_corners_sent_early_or_twice_are_answered_and_make_one_job(
    browse: Callable[[Any], Page], new_account: Callable[[str], Any], blank_photo: Path
) -> None:
    """Sending the corners uploads the original again, which takes a while on a slow line: the
    form says so and waits, so an impatient second click makes no second job; sent with fewer than
    four corners it says how many are marked (the browser's own check pointed at folded fields)."""
    account = new_account("corin")
    page = browse(account)
    job = _failed_blank_job(account, blank_photo)
    uploads: list[str] = []

    def slow_upload(route: Route) -> None:
        if route.request.method == "POST":
            uploads.append(route.request.url)
            time.sleep(1.5)
        route.fallback()

    page.route("**/api/v1/jobs", slow_upload)
    page.goto(f"/#/jobs/{job['id']}")
    picture = page.locator("#corner-picture img")
    expect(picture).to_be_visible()
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=picture.element_handle())
    box = picture.bounding_box()
    assert box is not None
    send = page.get_by_role("button", name="Correct with these corners")
    picture.click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.25})
    send.click()
    expect(page.locator("#corner-status")).to_have_text("Mark all four corners first: 1 of 4 marked.")
    for x, y in [(0.6, 0.25), (0.6, 0.75), (0.2, 0.75)]:
        picture.click(position={"x": box["width"] * x, "y": box["height"] * y})
    first = page.url
    send.click()
    expect(page.locator("#corner-form")).to_contain_text("Sending the photo again")
    send.click(force=True, no_wait_after=True)
    page.wait_for_url(lambda url: "#/jobs/" in url and url != first)
    page.wait_for_timeout(2000)
    assert len(uploads) == 1, uploads
