"""Upload through the browser, follow the progress, read the result page against the API."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route, expect

from .conftest import Account, save_profile

Screenshot = Callable[[Page, str], None]
PIPELINE_TIMEOUT_MS = 120_000


def job_id_of(page: Page) -> str:
    match = re.search(r"#/jobs/([0-9a-f-]+)", page.url)
    assert match, page.url
    return match.group(1)


def test_upload_progress_and_result_match_the_api(
    page: Page, account: Any, chart_photo: Path, screenshot: Screenshot, tmp_path: Path
) -> None:
    pushed: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: pushed.append(str(frame))))
    page.goto("/#/upload")
    page.set_input_files("#file-picker", chart_photo)
    expect(page.locator(".file-list li")).to_have_count(1)
    expect(page.locator(".file-list")).to_contain_text("studio-shot.jpg")
    page.get_by_text("Advanced").click()
    page.get_by_label("Correction method").select_option("affine3x4")
    screenshot(page, "upload")
    page.get_by_role("button", name="Upload and correct").click()

    page.wait_for_url(re.compile(r"#/jobs/"))
    screenshot(page, "progress")
    expect(page.locator("#verdict")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#job-state")).to_have_text("Done")
    assert any('"state": "done"' in frame or '"state":"done"' in frame for frame in pushed), pushed

    page.get_by_role("link", name="batch").click()
    page.wait_for_url(re.compile(r"#/batches/"))
    expect(page.locator("#batch-summary")).to_have_text("All 1 finished: 1 corrected.")
    expect(page.locator("#batch-jobs .job-row")).to_have_attribute("data-state", "done")
    screenshot(page, "progress-done")

    page.get_by_role("link", name="See the result").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#patch-table tbody tr")).to_have_count(24)

    with account.client() as client:
        job = client.get(f"/api/v1/jobs/{job_id_of(page)}").raise_for_status().json()
        measurements = client.get(job["files"]["measurements"]).raise_for_status().json()
    assert job["state"] == "done"
    assert job["method"] == "affine3x4"
    expect(page.locator("#de-before")).to_have_text(f"{job['delta_e2000_before']:.2f}")
    expect(page.locator("#de-after")).to_have_text(f"{job['delta_e2000_after']:.2f}")
    expect(page.locator("#rating")).to_have_text(job["rating"])
    page.locator("#result-details summary").click()
    fitted_by = {"least_squares": "least squares in linear RGB", "delta_e2000": "the smallest mean ΔE₀₀"}
    expect(page.locator("#objective")).to_have_text(fitted_by[measurements["objective"]])
    for patch in measurements["patches"]:
        row = page.locator(f"#patch-table tbody tr[data-patch='{patch['index']}']")
        expect(row.locator(".de-before")).to_have_text(f"{patch['delta_e2000'][0]:.2f}")
        expect(row.locator(".de-after")).to_have_text(f"{patch['delta_e2000'][1]:.2f}")
    expect(page.locator("#delta-chart rect.bar-before")).to_have_count(24)
    expect(page.locator("#delta-chart rect.bar-after")).to_have_count(24)

    outline = page.locator(".chart-overlay polygon.chart-outline")
    expect(outline).to_have_count(1)
    drawn = [float(value) for value in re.split(r"[ ,]", outline.get_attribute("points") or "")]
    expected = [coordinate for corner in measurements["corners"] for coordinate in corner]
    assert drawn == expected
    images = page.locator(".compare img")
    expect(images).to_have_count(2)
    widths = images.evaluate_all("images => images.map(image => image.complete && image.naturalWidth)")
    assert widths == [measurements["image_size"][0]] * 2

    slider = page.locator("#compare-slider")
    slider.focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    expect(slider).to_have_value("40")
    expect(page.locator(".compare-after")).to_have_attribute("style", re.compile(r"inset\(0px 0px 0px 40%\)"))
    screenshot(page, "result")

    report_button = page.locator("button[data-file='report.pdf']")
    expect(report_button).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#report-status")).to_have_count(0)
    print("BODYTEXT", page.locator("#result-body").inner_text()[:600])
    expect(page.locator("#result-body")).not_to_contain_text(re.compile(r"null|undefined"))
    with page.expect_download() as report:
        page.locator("button[data-file='report.pdf']").click()
    saved = tmp_path / report.value.suggested_filename
    report.value.save_as(saved)
    assert saved.name == "studio-shot.report.pdf"
    assert saved.read_bytes().startswith(b"%PDF")

    with page.expect_download() as archive:
        page.locator("button[data-file='batch']").click()
    assert archive.value.suggested_filename == f"batch-{job['batch_id']}.zip"


def test_save_a_profile_and_correct_another_photo_with_it(
    page: Page, account: Any, finished_job: dict[str, Any], chart_photo: Path, screenshot: Screenshot
) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#profile-name").fill("North window, overcast")
    page.get_by_role("button", name="Save as profile").click()
    expect(page.locator("#save-profile + .form-status")).to_contain_text("Saved “North window, overcast”")
    page.get_by_role("link", name="Use it for new uploads").click()

    page.wait_for_url(re.compile(r"#/upload\?profile="))
    with account.client() as client:
        profiles = client.get("/api/v1/profiles").raise_for_status().json()["items"]
    saved = next(p for p in profiles if p["name"] == "North window, overcast")
    expect(page.get_by_label("Saved profile")).to_have_value(saved["id"])
    expect(page.locator("#drop-zone .drop-title")).to_have_text(
        "Add photos taken under the profile's light: they need no chart"
    )
    page.get_by_label("Saved profile").select_option("")
    expect(page.locator("#drop-zone .drop-title")).to_have_text("Add photos with a colour chart in view")
    page.get_by_label("Saved profile").select_option(saved["id"])
    page.set_input_files("#file-picker", chart_photo)
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#profile-used")).to_contain_text(
        "“North window, overcast”", timeout=PIPELINE_TIMEOUT_MS
    )

    job_id = job_id_of(page)
    with account.client() as client:
        job = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
        source = client.get(f"/api/v1/jobs/{finished_job['id']}").raise_for_status().json()
    assert job["options"]["profile"] is not None
    assert job["method"] == source["method"]


def test_a_profile_saved_twice_under_one_name_is_saved_once(
    page: Page, account: Any, finished_job: dict[str, Any]
) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("#profile-name").fill("Copy stand, tungsten")
    save = page.get_by_role("button", name="Save as profile")
    save.click()
    status = page.locator("#save-profile + .form-status")
    expect(status).to_contain_text("Saved “Copy stand, tungsten”")
    save.click()
    expect(status).to_contain_text("Already saved as “Copy stand, tungsten”")
    page.locator("#profile-name").fill("Copy stand, tungsten, second lamp")
    save.click()
    expect(status).to_contain_text("Saved “Copy stand, tungsten, second lamp”")
    with account.client() as client:
        profiles = client.get("/api/v1/profiles").raise_for_status().json()["items"]
    names = [profile["name"] for profile in profiles if profile["name"].startswith("Copy stand, tungsten")]
    assert sorted(names) == ["Copy stand, tungsten", "Copy stand, tungsten, second lamp"]


def test_profiles_are_renamed_and_deleted(
    page: Page, account: Any, finished_job: dict[str, Any], screenshot: Screenshot
) -> None:
    profile_id = save_profile(account, finished_job["id"], "Tungsten bench")
    page.goto("/#/profiles")
    item = page.locator(f"li[data-profile-id='{profile_id}']")
    expect(item.get_by_role("heading")).to_have_text("Tungsten bench")
    expect(item.locator("p.muted")).not_to_have_text(re.compile(r"^[a-z]"))
    expect(item).not_to_contain_text(finished_job["method"])
    screenshot(page, "profiles")

    item.get_by_role("button", name="Rename").click()
    expect(item.get_by_label("New name")).to_be_focused()
    item.get_by_label("New name").fill("Tungsten bench, 3200 K")
    item.get_by_role("button", name="Save").click()
    expect(item.get_by_role("heading")).to_have_text("Tungsten bench, 3200 K")
    with account.client() as client:
        names = [p["name"] for p in client.get("/api/v1/profiles").raise_for_status().json()["items"]]
    assert "Tungsten bench, 3200 K" in names

    page.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)
    with account.client() as client:
        answer = client.get(f"/api/v1/profiles/{profile_id}/profile.json")
    assert answer.status_code == 404


def test_history_searches_filters_and_opens_a_job(
    page: Page, finished_job: dict[str, Any], screenshot: Screenshot
) -> None:
    page.goto("/#/history")
    expect(page.locator(f"#history-table tr[data-job-id='{finished_job['id']}']")).to_have_count(1)
    screenshot(page, "history")

    page.get_by_label("Search").fill("archive-sh")
    page.get_by_text("Filter by state, rating or date").click()
    page.get_by_label("State").select_option("done")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"#/history\?q=archive-sh&state=done"))
    rows = page.locator("#history-table tbody tr")
    expect(rows.first).to_contain_text("archive-shot.jpg")
    names = rows.locator("th").all_inner_texts()
    assert names
    assert all("archive-sh" in name for name in names)

    page.get_by_label("Search").fill("no-such-file-anywhere")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#history-count")).to_have_text("0 jobs match")

    page.goto("/#/history?state=failed&q=archive-shot")
    expect(page.locator("#history-count")).to_have_text("0 jobs match")
    page.goto("/#/history?q=archive-shot&state=done")
    page.get_by_role("link", name="archive-shot.jpg").first.click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#patch-table")).to_be_visible()


def test_keyboard_users_skip_to_the_content_and_land_on_headings(page: Page) -> None:
    page.goto("/#/upload")
    expect(page.get_by_role("heading", name="Correct photos")).to_be_visible()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert (skip.bounding_box() or {"y": -1.0})["y"] >= 0
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Earlier results")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="History")).to_be_focused()


REPORT_FILES = (
    "report.pdf",
    "report.html",
    "report.json",
    "chromaticity.svg",
    "tone-response.svg",
    "patch-pairs.svg",
)


def test_focus_stays_on_its_control_when_the_report_arrives(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    """The job is shown done with its report still pending (the API's answer held back, WebSockets
    refused so the page polls); a keyboard user moves the before/after line and then to a
    download, then the report arrives: focus and the line stay where they were."""
    page = browse(account)
    page.add_init_script("window.WebSocket = function () { throw new Error('no sockets in this test'); };")
    holding = {"report": True}

    def report_pending(route: Route) -> None:
        if not holding["report"]:
            route.continue_()
            return
        view = route.fetch().json()
        view["report"] = {"state": "pending", "reason": None, "message": None}
        view["files"] = {name: path for name, path in view["files"].items() if name not in REPORT_FILES}
        route.fulfill(json=view)

    page.route(f"**/api/v1/jobs/{finished_job['id']}", report_pending)
    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.locator("#report-status")).to_be_visible()
    expect(page.locator("button[data-file='report.pdf']")).to_have_count(0)
    page.locator("#compare-slider").focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    expect(page.locator("#compare-slider")).to_have_value("40")
    page.locator("#result-details summary").focus()
    page.keyboard.press("Enter")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.dataset.file === 'corrected'"):
            break
    expect(page.locator("button[data-file='corrected']")).to_be_focused()

    holding["report"] = False
    expect(page.locator("button[data-file='report.pdf']")).to_be_visible(timeout=10_000)
    expect(page.locator("#report-status")).to_have_count(0)
    expect(page.locator("button[data-file='corrected']")).to_be_focused()
    expect(page.locator("#result-details")).to_have_attribute("open", "")
    expect(page.locator("#compare-slider")).to_have_value("40")
    expect(page.locator(".compare-after")).to_have_attribute("style", re.compile(r"inset\(0px 0px 0px 40%\)"))
    page.keyboard.press("Tab")
    expect(page.locator("button[data-file='report.pdf']")).to_be_focused()


def test_a_pdf_report_still_being_made_is_announced_as_a_status(
    browse: Callable[[Account | None], Page], account: Account, finished_job: dict[str, Any]
) -> None:
    """The PDF report is made on first download; when the gateway gave up waiting (202), the page
    says to try again in a status message, not an alert, and saves nothing."""
    page = browse(account)
    downloads: list[Any] = []
    page.on("download", lambda download: downloads.append(download))
    page.route(
        "**/files/report.pdf",
        lambda route: route.fulfill(
            status=202,
            headers={"Retry-After": "10"},
            content_type="application/problem+json",
            body='{"status": 202, "code": "report_pdf_rendering", "detail": "being made"}',
        ),
    )
    page.goto(f"/#/jobs/{finished_job['id']}")
    page.locator("button[data-file='report.pdf']").click(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.get_by_role("status").filter(has_text="still being made")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert downloads == []
