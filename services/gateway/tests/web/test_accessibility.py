"""Accessibility: axe-core in the page finds no serious or critical violation on any page, at a
laptop's and a phone's size; and the main flow works from the keyboard alone.

axe-core comes from npm into ``tests/web/axe/`` (``npm ci --prefix services/gateway/tests/web/axe``)
and is evaluated in the page by the test: it is never served to users.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FileChooser, Page, ViewportSize, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from chromaline.common.testing.cgats import cgats_text, made_up_lab
from chromaline.common.testing.services import missing_service

from .conftest import Account, wait_for_job

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"1366x768": ViewportSize(width=1366, height=768), "390x844": ViewportSize(width=390, height=844)}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
SERIOUS = {"serious", "critical"}
PIPELINE_TIMEOUT_MS = 120_000
SETTINGS_PAGE_MAX_HEIGHT_PX = 1600
"""Settings were once one 3,300 px page; each of its pages now fits about two laptop screens."""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        missing_service("axe-core", f"{AXE} is missing: npm ci --prefix {AXE.parents[2]}")
    return AXE.read_text()


def serious_violations(page: Page, axe_source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.evaluate(axe_source)
    found: list[dict[str, Any]] = page.evaluate(
        "async (tags) => (await axe.run(document, { runOnly: { type: 'tag', values: tags } })).violations",
        AXE_TAGS,
    )
    return [
        {"id": rule["id"], "impact": rule["impact"], "nodes": [node["target"] for node in rule["nodes"]][:5]}
        for rule in found
        if rule["impact"] in SERIOUS
    ]


@pytest.fixture(scope="module")
def failed_job(account: Account, blank_photo: Path) -> dict[str, Any]:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("no-chart-axe.jpg", blank_photo.read_bytes(), "image/jpeg")}
        )
        job = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    assert job["state"] == "failed", job
    return job


@pytest.fixture(scope="module")
def custom_chart(account: Account) -> dict[str, Any]:
    """A chart of the account's organisation: listed on the Charts page, offered on the upload page."""
    with account.client() as client:
        created = client.post(
            "/api/v1/charts",
            files={"file": ("card.txt", cgats_text(made_up_lab(12)).encode(), "text/plain")},
            data={"name": "Axe card", "rows": "3", "columns": "4"},
        )
    chart: dict[str, Any] = created.raise_for_status().json()
    return chart


SIGNED_IN_PAGES: dict[str, tuple[str, str]] = {
    "upload": ("/#/upload", "h1"),
    "history": ("/#/history", "#history-count"),
    "profiles": ("/#/profiles", "h1"),
    "charts": ("/#/charts", "#chart-form"),
    "settings-account": ("/#/settings/account", "#account-email"),
    "settings-organisation": ("/#/settings/organisation", "#members"),
    "settings-api-keys": ("/#/settings/api-keys", "h1"),
    "settings-notifications": ("/#/settings/notifications", "#notifications"),
    "settings-webhooks": ("/#/settings/webhooks", "#webhooks"),
    "operator-not-for-members": ("/#/operator", "h1"),
    "result": ("/#/jobs/{done}", "#compare-slider"),
    "result-failed": ("/#/jobs/{failed}", "#corner-picture img"),
    "batch": ("/#/batches/{batch}", "#batch-jobs .job-row"),
    "not-found": ("/#/no-such-page", "h1"),
}
SHOWN_MISSING_VALUE = re.compile(r"null|undefined|NaN")
"""What a page shows when it prints a value it does not have (text runs together, so no word boundaries)."""
SIGNED_OUT_PAGES: dict[str, tuple[str, str]] = {
    "signin": ("/#/signin", "h1"),
    "signup": ("/#/signup", "h1"),
    "reset": ("/#/reset", "h1"),
}


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_signed_in_pages_have_no_serious_axe_violations(
    page: Page,
    axe_source: str,
    finished_job: dict[str, Any],
    failed_job: dict[str, Any],
    custom_chart: dict[str, Any],
    name: str,
    size: str,
) -> None:
    path, ready = SIGNED_IN_PAGES[name]
    page.set_viewport_size(SIZES[size])
    page.goto(path.format(done=finished_job["id"], failed=failed_job["id"], batch=finished_job["batch_id"]))
    expect(page.locator(ready).first).to_be_visible()
    if name == "result":
        page.locator("#result-details summary").click()
    _check_shown_page(page, axe_source, name, size)


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_the_operator_page_has_no_serious_axe_violations(
    browse: Callable[[Account | None], Page], platform_account: Account, axe_source: str, size: str
) -> None:
    page = browse(platform_account)
    page.set_viewport_size(SIZES[size])
    page.goto("/#/operator")
    expect(page.locator("#stats-total")).to_be_visible()
    _check_shown_page(page, axe_source, "operator", size)


def _check_shown_page(page: Page, axe_source: str, name: str, size: str) -> None:
    """No missing value shown, no serious axe violation, nothing scrolling sideways, and the
    settings pages short enough at desktop size."""
    expect(page.locator("main")).not_to_contain_text(SHOWN_MISSING_VALUE)
    assert serious_violations(page, axe_source) == []
    sideways = page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('.table-scroll')]
            .filter(node => node.scrollWidth > node.clientWidth + 1).map(node => node.className || node.tagName)"""
    )
    assert sideways == [], "tables or the page scroll sideways"
    if name.startswith("settings-") and size == "1366x768":
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < SETTINGS_PAGE_MAX_HEIGHT_PX, f"{name} is {height} px tall"


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
@pytest.mark.parametrize("name", SIGNED_OUT_PAGES)
def test_signed_out_pages_have_no_serious_axe_violations(
    browse: Callable[[Account | None], Page], axe_source: str, name: str, size: str
) -> None:
    page = browse(None)
    path, ready = SIGNED_OUT_PAGES[name]
    page.set_viewport_size(SIZES[size])
    page.goto(path)
    expect(page.locator(ready).first).to_be_visible()
    assert serious_violations(page, axe_source) == []


def test_the_phone_menu_has_no_serious_axe_violations_when_open(page: Page, axe_source: str) -> None:
    page.set_viewport_size(SIZES["390x844"])
    page.goto("/#/history")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="Profiles")).to_be_hidden()
    header = page.locator(".site-header").bounding_box()
    assert header is not None
    assert header["height"] < 70, "the closed menu takes more than one row"
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="Profiles")).to_be_visible()
    assert serious_violations(page, axe_source) == []
    page.get_by_role("link", name="Profiles").click()
    page.wait_for_url(re.compile(r"#/profiles"))
    expect(menu).to_have_attribute("aria-expanded", "false")


def _tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element matching ``selector`` has focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(selector) => document.activeElement?.matches(selector)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def _chooser_opened_with_space(page: Page, attempts: int = 3) -> FileChooser:
    """The file chooser that Space opens on the focused file input. Space is pressed again when no
    chooser showed within a few seconds: on a busy machine the first press was seen to go unanswered."""
    for _ in range(attempts):
        try:
            with page.expect_file_chooser(timeout=7_000) as chooser:
                page.keyboard.press("Space")
        except PlaywrightTimeoutError:
            continue
        return chooser.value
    raise AssertionError(f"Space on the focused file input opened no file chooser in {attempts} tries")


def test_the_main_flow_works_from_the_keyboard_alone(page: Page, chart_photo: Path, tmp_path: Path) -> None:
    photo = tmp_path / f"keyboard-{uuid.uuid4().hex[:6]}.jpg"
    photo.write_bytes(chart_photo.read_bytes())
    page.goto("/#/upload")
    expect(page.get_by_role("heading", name="Correct photos")).to_be_visible()
    _tab_to(page, "#file-picker")
    _chooser_opened_with_space(page).set_files(photo)
    expect(page.locator(".file-accepted")).to_contain_text(photo.name)
    _tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#verdict")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    # The report follows the corrected image; the page fills in its downloads when it is made.
    expect(page.locator("button[data-file='report.pdf']")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    _tab_to(page, "#result-details summary")
    page.keyboard.press("Enter")
    expect(page.locator("#result-details")).to_have_attribute("open", "")
    _tab_to(page, "#compare-slider")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#compare-slider")).to_have_value("51")
    page.keyboard.press("Tab")
    expect(page.locator("#compare-zoom")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#compare-zoom")).to_have_attribute("aria-pressed", "true")
    _tab_to(page, "button[data-file='report.pdf']")
    with page.expect_download() as report:
        page.keyboard.press("Enter")
    assert report.value.suggested_filename.endswith(".report.pdf")


def test_a_chart_is_added_and_deleted_from_the_keyboard_alone(
    browse: Callable[[Account | None], Page], new_account: Callable[[str], Account], tmp_path: Path
) -> None:
    reference = tmp_path / "keyboard-card.txt"
    reference.write_text(cgats_text(made_up_lab(12)))
    page = browse(new_account("kay"))
    page.goto("/#/charts")
    expect(page.get_by_role("heading", name="Charts", level=1)).to_be_visible()
    _tab_to(page, "#chart-name")
    page.keyboard.type("Keyboard card")
    page.keyboard.press("Tab")
    expect(page.locator("#chart-file")).to_be_focused()
    _chooser_opened_with_space(page).set_files(reference)
    for name, value in (("#chart-rows", "3"), ("#chart-columns", "4")):
        _tab_to(page, name, limit=3)
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page.locator("#chart-form-status [role=status]")).to_contain_text(
        "Added “Keyboard card” (12 patches)."
    )
    page.once("dialog", lambda dialog: dialog.accept())
    _tab_to(page, "button.danger")
    page.keyboard.press("Enter")
    expect(page.locator("#charts-status [role=status]")).to_contain_text("Deleted “Keyboard card”.")
