"""The upload page with the files people really have: camera formats, ZIPs with nothing to
correct beside their photos, names in any script, TIFF originals."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from .conftest import Account, register, wait_for_job


@pytest.fixture(scope="module")
def account(base_url: str) -> Account:
    """An organisation of this module's own: its uploads stay out of the shared history."""
    return register(base_url, "ulla") or Account(base_url)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def test_the_upload_page_names_every_format_the_server_reads(page: Page, tmp_path: Path) -> None:
    page.goto("/#/upload")
    formats = "JPEG, PNG, TIFF, WebP, HEIC, AVIF, DNG or camera RAW"
    expect(page.locator("#drop-zone")).to_contain_text(f"{formats} photos, or ZIP archives of them")
    notes = tmp_path / "notes.docx"
    notes.write_text("not a photo")
    page.set_input_files("#file-picker", notes)
    expect(page.locator(".file-refused[data-refused='notes.docx']")).to_contain_text(f"Only {formats} photos")


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({}, "This ZIP has no photos in it."),
        ({"shoot/lighting-notes.txt": b"daylight, 5600 K"}, "This ZIP has no photos in it."),
        ({"shoot/a.jpg": b"text named like a photo"}, "This file is not a photo Chromaline can read."),
    ],
)
def test_a_refused_zip_is_set_aside_and_the_photos_beside_it_are_sent(
    page: Page, tmp_path: Path, chart_photo: Path, members: dict[str, bytes], reason: str
) -> None:
    archive = _zip(tmp_path / "session.zip", members)
    page.goto("/#/upload")
    page.set_input_files("#file-picker", [archive, chart_photo])
    page.get_by_role("button", name="Upload and correct").click()
    expect(page.locator(".file-refused[data-refused='session.zip']")).to_contain_text(reason)
    expect(page.locator(".file-list .file-accepted")).to_have_count(0)
    page.locator("#follow-upload").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.get_by_role("heading", name="studio-shot.jpg")).to_be_visible()


def test_a_download_keeps_a_name_in_any_script(page: Page, account: Account, chart_photo: Path) -> None:
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("写真 Ørsted café.jpg", chart_photo.read_bytes(), "image/jpeg")}
        )
        job: dict[str, Any] = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    page.goto(f"/#/jobs/{job['id']}")
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Corrected image").click()
    assert downloaded.value.suggested_filename == "写真 Ørsted café.corrected.jpg"


def test_a_name_longer_than_the_server_takes_is_set_aside_and_the_rest_sent(
    page: Page, chart_photo: Path
) -> None:
    long_name = "東京国立博物館所蔵品撮影記録" * 8 + ".jpg"
    photo = chart_photo.read_bytes()
    page.goto("/#/upload")
    page.set_input_files(
        "#file-picker",
        [
            {"name": long_name, "mimeType": "image/jpeg", "buffer": photo},
            {"name": "studio-shot.jpg", "mimeType": "image/jpeg", "buffer": photo},
        ],
    )
    page.get_by_role("button", name="Upload and correct").click()
    refused = page.locator(f".file-refused[data-refused='{long_name}']")
    expect(refused).to_contain_text("This file's name is longer than the server accepts.")
    page.locator("#follow-upload").click()
    page.wait_for_url(re.compile(r"#/jobs/"))
    expect(page.get_by_role("heading", name="studio-shot.jpg")).to_be_visible()


def test_a_tiff_original_shows_its_corrected_jpeg_with_the_chart_outlined(
    page: Page, account: Account, chart_photo: Path, tmp_path: Path
) -> None:
    """A museum's originals are TIFFs, which browsers do not show; the corrected JPEG they are
    sent back is shown (the page showed no picture at all)."""
    tiff = tmp_path / "object-0042.tif"
    Image.open(chart_photo).save(tiff)
    with account.client() as client:
        batch = client.post("/api/v1/jobs", files={"files": (tiff.name, tiff.read_bytes(), "image/tiff")})
        job = wait_for_job(client, batch.raise_for_status().json()["jobs"][0]["id"])
    assert job["state"] == "done", job
    page.goto(f"/#/jobs/{job['id']}")
    corrected = page.get_by_role("img", name="Corrected photo")
    expect(corrected).to_be_visible()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=corrected.element_handle()
    )
    expect(page.locator(".chart-overlay .chart-outline")).to_have_count(1)
    expect(page.locator("#compare-slider")).to_have_count(0)
    expect(page.locator(".comparison figcaption")).to_contain_text("The original (TIF) is not shown here")
