"""The result page's first screen: a verdict anyone can read in five seconds, at desktop and phone size."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from .conftest import Account, wait_for_job

Screenshot = Callable[[Page, str], None]
LAPTOP = ViewportSize(width=1366, height=768)
PHONE = ViewportSize(width=390, height=844)
INTERNAL_NAMES = re.compile(
    r"\b(classic24|digital_sg|aruco_classic24|root_polynomial|linear3x3|affine3x4|white_balance)\b"
)


def upload(account: Account, name: str, photo: bytes, **form: str) -> dict[str, Any]:
    with account.client() as client:
        batch = client.post("/api/v1/jobs", files={"files": (name, photo, "image/jpeg")}, data=form)
        batch.raise_for_status()
        return wait_for_job(client, batch.json()["jobs"][0]["id"])


@pytest.fixture(scope="module")
def portrait_job(account: Account) -> dict[str, Any]:
    """A small portrait photo: taller than wide, and smaller than a laptop screen."""
    from chromaline.engine.synthetic import render_scene

    photo = render_scene(21, chart="classic24", size=(600, 800)).image_bytes
    job = upload(account, "portrait-small.jpg", photo)
    assert job["state"] == "done", job
    return job


@pytest.fixture(scope="module")
def profile_job(
    account: Account, finished_job: dict[str, Any], blank_photo: Path
) -> tuple[dict[str, Any], str]:
    """A photo with no chart, corrected with a profile saved from ``finished_job``; the profile's name."""
    name = f"Studio daylight {uuid.uuid4().hex[:4]}"
    with account.client() as client:
        saved = client.post("/api/v1/profiles", json={"job_id": finished_job["id"], "name": name})
        profile_id = saved.raise_for_status().json()["id"]
    job = upload(account, "no-chart-with-profile.jpg", blank_photo.read_bytes(), profile_id=profile_id)
    assert job["state"] == "done", job
    return job, name


@pytest.fixture(params=[LAPTOP, PHONE], ids=["1366x768", "390x844"])
def viewport(page: Page, request: pytest.FixtureRequest) -> ViewportSize:
    """Each test using it runs at a laptop's and a phone's screen size."""
    size: ViewportSize = request.param
    page.set_viewport_size(size)
    return size


def _inside_viewport(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None, selector
    assert size is not None
    assert 0 <= box["y"] <= size["height"] - box["height"], (selector, box, size)
    assert 0 <= box["x"] <= size["width"] - box["width"], (selector, box, size)


def test_the_verdict_is_visible_without_scrolling(
    page: Page, finished_job: dict[str, Any], viewport: ViewportSize, screenshot: Screenshot
) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.locator("#verdict")).to_be_visible()
    for selector in ("#de-before", "#de-after", "#rating", "#rating-words", "#verdict-sentence"):
        expect(page.locator(selector)).to_be_visible()
        _inside_viewport(page, selector)
    assert page.evaluate("window.scrollY") == 0
    expect(page.locator("#de-after")).to_have_text(f"{finished_job['delta_e2000_after']:.2f}")
    expect(page.locator("#rating")).to_have_text(finished_job["rating"])
    expect(page.locator("#verdict-sentence")).to_contain_text(f"{finished_job['delta_e2000_after']:.1f} ΔE₀₀")
    screenshot(page, f"verdict-{viewport['width']}")


def test_result_words_are_human_and_never_broken_mid_word(
    page: Page, finished_job: dict[str, Any], viewport: ViewportSize
) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.locator("#verdict")).to_be_visible()
    page.locator("#result-details summary").click()
    expect(page.locator("#method")).to_be_visible()
    expect(page.locator("#cross-validated")).to_be_visible()
    assert not INTERNAL_NAMES.search(page.locator("main").inner_text())
    single_line = page.locator("#rating").evaluate(
        "node => node.getClientRects().length === 1 && node.getBoundingClientRect().height < 2 * parseFloat(getComputedStyle(node).lineHeight)"
    )
    assert single_line, "the rating badge wraps"
    broken = page.evaluate(
        """() => [...document.querySelectorAll('main dd, main dt, .rating-badge, .verdict-numbers')]
            .filter(node => ['anywhere', 'break-all'].includes(getComputedStyle(node).overflowWrap)
                || getComputedStyle(node).wordBreak === 'break-all')
            .map(node => node.textContent)"""
    )
    assert broken == []


def test_the_delta_e_axis_labels_are_exact_tick_values(page: Page, finished_job: dict[str, Any]) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.locator("#delta-chart .y-tick").first).to_be_attached()
    labels = page.locator("#delta-chart .y-tick").all_text_contents()
    assert len(labels) >= 3
    values = [float(label) for label in labels]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, labels
    assert values[0] == 0
    expect(page.locator("#delta-chart .axis-title")).to_have_text(["ΔE₀₀", "Patch number"])


def test_the_viewer_fits_the_screen_and_never_enlarges_a_small_photo(
    page: Page, portrait_job: dict[str, Any], viewport: ViewportSize, screenshot: Screenshot
) -> None:
    page.goto(f"/#/jobs/{portrait_job['id']}")
    frame = page.locator(".compare")
    expect(frame).to_be_visible()
    frame.scroll_into_view_if_needed()
    box = frame.bounding_box()
    assert box is not None
    assert box["height"] <= viewport["height"] * 0.8, box
    assert box["width"] <= min(viewport["width"], 600), box
    slider_box = page.locator("#compare-slider").bounding_box()
    assert slider_box is not None
    assert box["height"] + slider_box["height"] <= viewport["height"], "photo and slider do not fit together"
    expect(page.locator(".outline-legend")).to_contain_text("The chart as found")
    expect(page.locator(".outline-legend")).to_contain_text("Patches measured")

    page.locator("#compare-zoom").click()
    expect(page.locator("#compare-zoom")).to_have_attribute("aria-pressed", "true")
    zoomed = frame.bounding_box()
    assert zoomed is not None
    assert round(zoomed["width"]) == 600
    screenshot(page, f"viewer-zoomed-{viewport['width']}")
    page.locator("#compare-zoom").click()
    expect(page.locator("#compare-zoom")).to_have_attribute("aria-pressed", "false")


def test_a_profile_job_names_its_profile_and_shows_the_profile_figures(
    page: Page, profile_job: tuple[dict[str, Any], str], finished_job: dict[str, Any], screenshot: Screenshot
) -> None:
    job, name = profile_job
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#profile-used")).to_contain_text(f"“{name}”")
    expect(page.locator("#profile-used")).to_contain_text(finished_job["filename"])
    expect(page.locator("#de-before")).to_have_text(f"{finished_job['delta_e2000_before']:.2f}")
    expect(page.locator("#de-after")).to_have_text(f"{finished_job['delta_e2000_after']:.2f}")
    expect(page.locator("#rating")).to_have_text(finished_job["rating"])
    assert "—" not in page.locator("#verdict").inner_text()
    expect(page.locator("#delta-chart")).to_have_count(0)
    expect(page.locator("#patch-table")).to_have_count(0)
    expect(page.locator(".compare")).to_be_visible()
    expect(page.locator(".outline-legend")).to_have_count(0)
    screenshot(page, "result-profile")
    page.locator("#profile-link").click()
    page.wait_for_url(re.compile(r"#/profiles"))


def test_a_profile_job_in_its_batch_says_it_used_a_profile(
    page: Page, profile_job: tuple[dict[str, Any], str]
) -> None:
    job, _ = profile_job
    page.goto(f"/#/batches/{job['batch_id']}")
    row = page.locator(f"#batch-jobs li[data-job-id='{job['id']}']")
    expect(row.locator(".job-outcome")).to_have_text("Corrected with a saved profile")


def test_a_refused_batch_link_says_so_and_stops_polling(page: Page) -> None:
    asked: list[str] = []
    page.on(
        "request", lambda request: asked.append(request.url) if "/api/v1/batches/" in request.url else None
    )
    page.goto(f"/#/batches/{uuid.uuid4()}")
    expect(page.locator("[role=alert]")).to_contain_text("This upload does not exist")
    time.sleep(3)
    polls = [url for url in asked if not url.endswith("/events") and "/events?" not in url]
    assert len(polls) <= 1, polls


NODE = Path("/usr/bin/node")
PATCHES_JS = (
    Path(__file__).resolve().parents[2] / "src/chromaline/gateway/web/static/js/components/patches.js"
)


@pytest.mark.skipif(not NODE.exists(), reason="needs Node.js to run the chart's module")
def test_tick_steps_print_every_tick_exactly() -> None:
    """2.5-steps once printed as 0, 3, 5, 8, 10, 13: each tick must print as its own value."""
    script = (
        f"import {{ niceStep }} from {json.dumps(PATCHES_JS.as_uri())};"
        "const maxima = [1, 3, 11, 12.3, 0.4, 1.2, 40, 55, 130];"
        "console.log(JSON.stringify(maxima.map((m) => { const { step, digits } = niceStep(m);"
        " return [0, 1, 2, 3, 4, 5].map((i) => (i * step).toFixed(digits)); })));"
    )
    answer = subprocess.run(
        [str(NODE), "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    )
    for printed in json.loads(answer.stdout):
        values = [float(text) for text in printed]
        steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
        assert len(steps) == 1, printed


def test_the_report_figures_are_on_the_result_page(page: Page, finished_job: dict[str, Any]) -> None:
    page.goto(f"/#/jobs/{finished_job['id']}")
    figures = page.locator("#report-figures figure img")
    expect(figures).to_have_count(3)
    for name in ("chromaticity.svg", "tone-response.svg", "patch-pairs.svg"):
        image = page.locator(f"#report-figures figure[data-figure='{name}'] img")
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
        )


def test_the_report_figures_letter_at_one_size(page: Page, finished_job: dict[str, Any]) -> None:
    """The tone response is drawn 7 in wide, the a*b* planes a page (11.69 in): shown at the same
    scale, not each stretched to the page's width (the tone response's words came out 1.7× larger)."""
    page.goto(f"/#/jobs/{finished_job['id']}")
    scales = []
    for name in ("chromaticity.svg", "tone-response.svg"):
        image = page.locator(f"#report-figures figure[data-figure='{name}'] img")
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
        )
        page.wait_for_timeout(100)
        scales.append(image.evaluate("image => image.getBoundingClientRect().width / image.naturalWidth"))
    assert scales[1] == pytest.approx(scales[0], rel=0.02)


def test_a_metamorfoze_rating_is_shown_with_its_level(
    page: Page, account: Account, chart_photo: Path
) -> None:
    """Organisations may rate against Metamorfoze 2.0 (Full, Light): its ratings were shown as
    "Not rated" on the result page and "—" in the history."""
    job = upload(account, "metamorfoze.jpg", chart_photo.read_bytes(), guideline="metamorfoze2")
    assert job["rating"].startswith("Metamorfoze 2.0 "), job["rating"]
    level = job["rating"].removeprefix("Metamorfoze 2.0 ")
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#rating")).to_have_text(job["rating"])
    expect(page.locator("#rating-words")).not_to_be_empty()
    page.goto("/#/history?q=metamorfoze")
    row = page.locator(f"#history-table tr[data-job-id='{job['id']}']")
    expect(row.locator(".rating-badge")).to_have_text(level)


def test_the_corrector_s_doubts_are_worth_knowing(page: Page, finished_job: dict[str, Any]) -> None:
    """Warnings the corrector gives a finished job (a patch made worse, patches a few pixels wide,
    colours away from the chart off by more than the guideline allows) are in the verdict."""
    job_id = finished_job["id"]
    cross_validated = finished_job["delta_e2000_after"] + 0.5

    def doubtful(route: Any) -> None:
        view = route.fetch().json()
        view["warnings"] = [
            {
                "code": "patch_worse_after",
                "message": "1 patch(es) worse after correction by more than 2 ΔE2000",
            },
            {"code": "small_patches", "message": "the chart's patches are about 6 px across (under 12 px)"},
            {
                "code": "cross_validated_above_limit",
                "message": "cross-validated ΔE2000 6.10 is above the limit",
            },
        ]
        route.fulfill(json=view)

    def one_patch_worse(route: Any) -> None:
        measurements = route.fetch().json()
        measurements["patches"][18]["delta_e2000"] = [1.5, 6.5]
        measurements["cross_validated_delta_e2000"] = cross_validated
        route.fulfill(json=measurements)

    page.route(f"**/api/v1/jobs/{job_id}", doubtful)
    page.route(f"**/api/v1/jobs/{job_id}/files/measurements", one_patch_worse)
    page.goto(f"/#/jobs/{job_id}")
    doubts = page.locator("#verdict-warnings li")
    expect(doubts.filter(has_text="clearly worse")).to_contain_text("“white 9.5 (.05 D)”")
    expect(doubts.filter(has_text="only a few pixels across")).to_have_count(1)
    expect(doubts.filter(has_text=f"about {cross_validated:.1f} ΔE₀₀, more than")).to_have_count(1)
