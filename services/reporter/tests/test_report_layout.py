"""The HTML report on a phone's screen: read in a browser at 375 px, nothing but the patch table
scrolls sideways, and that table is a region a keyboard can reach and scroll."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, sync_playwright

from chromaline.reporter.render import render_report

from .test_render import build_measurements, encode, pages_of, synthetic_photo

CHROMIUM = Path("/usr/bin/chromium")
PHONE_WIDTH = 375

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")


@pytest.fixture(scope="module")
def phone_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        page = browser.new_page(viewport={"width": PHONE_WIDTH, "height": 800})
        yield page
        browser.close()


def test_only_the_patch_table_scrolls_sideways_on_a_phone(phone_page: Page, tmp_path: Path) -> None:
    measurements = build_measurements()
    original = encode(synthetic_photo(measurements, after=False), ".jpg")
    corrected = encode(synthetic_photo(measurements, after=True).astype(np.uint16) * 257, ".png")
    report = tmp_path / "report.html"
    report.write_bytes(pages_of(render_report(measurements, original, corrected)).html)
    phone_page.goto(report.as_uri())
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    facts_right = phone_page.evaluate(
        "Math.max(...[...document.querySelectorAll('dl.facts dd')].map(n => n.getBoundingClientRect().right))"
    )
    assert facts_right <= PHONE_WIDTH
    table = phone_page.get_by_role("region", name="Per-patch colours")
    assert table.evaluate("node => node.scrollWidth > node.clientWidth")
    assert table.get_attribute("tabindex") == "0"
