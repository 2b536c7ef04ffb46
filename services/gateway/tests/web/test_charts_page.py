"""Custom charts in the browser: a chart defined on the Charts page, then a photo of it corrected
on the upload page with it chosen; a file the reader refuses shown with its line; deletion asked
first."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Dialog, Page, expect

from chromaline.common.cgats import parse_cgats
from chromaline.common.testing.cgats import cgats_text, made_up_lab
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.custom_render import render_custom_chart

from .conftest import Account

PIPELINE_TIMEOUT_MS = 120_000
ROWS, COLUMNS, GAP, MARGIN = 5, 7, 0.2, 0.6
OTHER_GAP, OTHER_MARGIN = 0.1, 0.3
"""A card in the Classic 24's layout (4 × 6 patches, gaps a tenth of a patch)."""


def card_files(
    stem: Path, rows: int, columns: int, gap: float, margin: float, *, seed: int
) -> tuple[Path, Path]:
    """A made-up card's CGATS.17 file (``<stem>.txt``) and a rendered photo of it (``<stem>-shot.jpg``)."""
    text = cgats_text(made_up_lab(rows * columns))
    definition = ChartDefinition.from_table(
        parse_cgats(text), name=stem.name, rows=rows, columns=columns, gap=gap, margin=margin
    )
    reference = stem.with_suffix(".txt")
    reference.write_text(text)
    photo = stem.with_name(f"{stem.name}-shot.jpg")
    photo.write_bytes(render_custom_chart(definition, seed=seed).image_bytes)
    return reference, photo


def define_on_the_page(
    page: Page,
    name: str,
    file: Path,
    rows: int = ROWS,
    columns: int = COLUMNS,
    *,
    gap: float = GAP,
    margin: float = MARGIN,
) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Reference values (CGATS.17 file)").set_input_files(file)
    page.get_by_label("Rows").fill(str(rows))
    page.get_by_label("Columns").fill(str(columns))
    page.get_by_label("Gap between patches").fill(str(gap))
    page.get_by_label("Margin around the patches").fill(str(margin))
    page.get_by_role("button", name="Add chart").click()


def test_a_chart_defined_on_the_page_corrects_a_photo_of_it(
    browse: Callable[[Account | None], Page],
    new_account: Callable[[str], Account],
    tmp_path: Path,
    screenshot: Callable[[Page, str], None],
) -> None:
    account = new_account("charlotte")
    reference, photo = card_files(tmp_path / "studio-card", ROWS, COLUMNS, GAP, MARGIN, seed=3)
    page = browse(account)

    page.goto("/#/charts")
    expect(page.get_by_role("heading", name="Charts", level=1)).to_be_visible()
    expect(page.locator("#charts-empty")).to_be_visible()
    define_on_the_page(page, "Studio card", reference)
    expect(page.locator("#chart-form-status [role=status]")).to_contain_text(
        "Added “Studio card” (35 patches)."
    )
    item = page.locator("#chart-list li").first
    expect(item).to_contain_text("5 × 7 patches · Lab, D50")
    screenshot(page, "charts")
    chart_id = item.get_attribute("data-chart-id")

    item.get_by_role("link", name="Use for new uploads: Studio card").click()
    page.wait_for_url(re.compile(r"#/upload\?chart="))
    expect(page.get_by_label("Custom chart")).to_have_value(str(chart_id))
    page.set_input_files("#file-picker", photo)
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.locator("#verdict")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#patch-table tbody tr")).to_have_count(ROWS * COLUMNS)

    job_id = page.url.rsplit("/", 1)[-1]
    with account.client() as client:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
    assert job["state"] == "done", job
    assert job["chart_type"] == "custom"
    assert job["options"]["custom_chart"]["name"] == "Studio card"
    assert job["delta_e2000_after"] < 3.0 < job["delta_e2000_before"]
    page.locator("#result-details summary").click()
    expect(page.locator("#chart-type")).to_have_text("Custom chart “Studio card” (5 × 7)")


def test_a_refused_file_is_explained_with_its_line_and_a_delete_is_asked_first(
    browse: Callable[[Account | None], Page], new_account: Callable[[str], Account], tmp_path: Path
) -> None:
    account = new_account("cedric")
    good = tmp_path / "good.txt"
    good.write_text(cgats_text(made_up_lab(12)))
    broken = tmp_path / "broken.txt"
    broken.write_text(cgats_text(made_up_lab(12)).replace("P5\t", "P5\tx", 1))
    page = browse(account)
    page.goto("/#/charts")

    define_on_the_page(page, "Broken", broken, rows=3, columns=4)
    alert = page.locator("#chart-form-status [role=alert]")
    expect(alert).to_contain_text("could not be read as CGATS.17")
    expect(alert).to_contain_text("line 14:")
    define_on_the_page(page, "Wrong layout", good, rows=4, columns=4)
    expect(alert).to_contain_text("do not match the number of patches")
    expect(page.locator("#chart-list li")).to_have_count(0)

    define_on_the_page(page, "Keeper", good, rows=3, columns=4)
    expect(page.locator("#chart-list li")).to_have_count(1)
    answers = iter([False, True])

    def answer(dialog: Dialog) -> None:
        if next(answers):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    delete = page.get_by_role("button", name="Delete Keeper")
    delete.click()
    expect(page.locator("#chart-list li")).to_have_count(1)
    delete.click()
    expect(page.locator("#chart-list li")).to_have_count(0)
    expect(page.locator("#charts-status [role=status]")).to_contain_text("Deleted “Keeper”.")
    with account.client() as client:
        assert client.get("/api/v1/charts").raise_for_status().json()["items"] == []


def test_a_card_of_another_makers_colours_is_corrected_with_the_custom_chart_chosen_on_its_page(
    browse: Callable[[Account | None], Page],
    new_account: Callable[[str], Account],
    tmp_path: Path,
    screenshot: Callable[[Page, str], None],
) -> None:
    """A card in the Classic 24's layout with other colours fails as ``unknown_chart``; its page asks
    whether it is a card of the organisation's own, leads to the Charts page while there are none,
    and once one is defined sends the photo again measured with it."""
    account = new_account("ursula")
    reference, photo = card_files(tmp_path / "other-card", 4, 6, OTHER_GAP, OTHER_MARGIN, seed=2)
    page = browse(account)

    page.goto("/#/upload")
    page.set_input_files("#file-picker", photo)
    page.get_by_role("button", name="Upload and correct").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    choice = page.get_by_role("region", name="Is it a card of your own?")
    expect(choice).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("main")).to_contain_text("its colours are another card's")
    expect(choice.get_by_role("button", name="Correct with this chart")).to_have_count(0)
    failed_url = page.url
    screenshot(page, "unknown-card")

    choice.get_by_role("link", name="Add a custom chart").click()
    page.wait_for_url(re.compile(r"#/charts"))
    define_on_the_page(page, "Other card", reference, 4, 6, gap=OTHER_GAP, margin=OTHER_MARGIN)
    expect(page.locator("#chart-list li")).to_have_count(1)

    page.goto(failed_url)
    expect(choice.get_by_label("Custom chart")).to_contain_text("Other card (4 × 6)")
    choice.get_by_role("button", name="Correct with this chart").click()
    page.wait_for_url(lambda url: "#/jobs/" in url and url != failed_url)
    expect(page.locator("#verdict")).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#patch-table tbody tr")).to_have_count(24)

    job_id = page.url.rsplit("/", 1)[-1]
    with account.client() as client:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
    assert job["state"] == "done", job
    assert job["chart_type"] == "custom"
    assert job["options"]["custom_chart"]["name"] == "Other card"
    assert job["sent_again_from"] == failed_url.rsplit("/", 1)[-1]
    assert job["delta_e2000_after"] < 3.0
