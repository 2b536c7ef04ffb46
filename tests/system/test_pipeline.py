"""Scenarios through the public API, on the distributed and on the one-process system."""

from __future__ import annotations

import importlib
import io
import json
import sys
import time
import zipfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
import tifffile
from PIL import Image

from chromaline.engine.icc import output_icc_profile
from chromaline.engine.synthetic import render_dng_scene, render_scene, side_by_side_scene

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

SCENE_SIZE = (2000, 1500)
ROOT = Path(__file__).resolve().parents[2]
REAL_PHOTOS = ROOT.parent / "shared" / "datasets" / "real"
FINISHED = ("done", "failed")


@cache
def chart_photo(seed: int) -> bytes:
    return render_scene(seed, chart="classic24", size=SCENE_SIZE).image_bytes


@cache
def chartless_photo(seed: int) -> bytes:
    return render_scene(seed, chart=None, size=SCENE_SIZE).image_bytes


def upload(client: httpx.Client, files: list[tuple[str, bytes]], **options: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/jobs",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data={key: str(value) for key, value in options.items()},
    )
    assert response.status_code == 202, response.text
    batch: dict[str, Any] = response.json()
    return batch


def wait_batch(client: httpx.Client, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    """The batch once every job has ended and every report is made or has failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/api/v1/batches/{batch_id}").raise_for_status().json()
        if batch["done"] and not batch["reports_pending"]:
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} unfinished after {timeout} s: {batch['states']}")


def test_a_chart_photo_is_corrected_and_its_results_can_be_downloaded(system: Any) -> None:
    with system.client() as client:
        batch = upload(client, [("studio.jpg", chart_photo(1))])
        job = wait_batch(client, batch["id"])["jobs"][0]
        assert job["state"] == "done", job
        assert job["chart_type"] == "classic24"
        assert job["delta_e2000_after"] < job["delta_e2000_before"]
        assert job["delta_e2000_after"] < 3.0
        corrected = client.get(job["files"]["corrected"])
        assert corrected.status_code == 200
        with Image.open(io.BytesIO(corrected.content)) as image:
            assert image.size == SCENE_SIZE
            assert image.info.get("icc_profile")
        measurements = client.get(job["files"]["measurements"]).json()
        assert len(measurements["patches"]) == 24
        assert measurements["after"]["cie2000"]["mean"] == pytest.approx(job["delta_e2000_after"])
        assert job["report"] == {"state": "ready", "reason": None, "message": None}
        assert client.get(job["files"]["report.pdf"]).content.startswith(b"%PDF")
        assert b"<html" in client.get(job["files"]["report.html"]).content
        report = client.get(job["files"]["report.json"]).json()
        assert report["measurements"]["job_id"] == job["id"]
        profile = client.get(job["files"]["profile.json"]).json()
        assert profile["method"] == job["method"]
        assert b"LUT_3D_SIZE" in client.get(job["files"]["profile.cube"]).content


def test_a_photo_with_two_charts_is_corrected_with_one_and_checked_on_the_other(system: Any) -> None:
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    with system.client() as client:
        job = wait_batch(client, upload(client, [("two-charts.jpg", scene.image_bytes)])["id"])["jobs"][0]
        assert job["state"] == "done", job
        measurements = client.get(job["files"]["measurements"]).json()
        report = client.get(job["files"]["report.html"]).text
    [other] = job["other_charts"]
    assert {job["chart_type"], other["chart_type"]} == {"digital_sg", "classic24"}
    found = np.asarray(other["corners"])
    assert np.abs(found - scene.corners[other["chart_type"]]).max() < 6
    [checked] = measurements["other_charts"]
    assert checked["corners"] == other["corners"]
    assert checked["delta_e2000_after"]["mean"] < 0.6 * checked["delta_e2000_before"]["mean"]
    assert "Also in the photo" in report


def test_a_batch_of_twenty_finishes_with_per_file_progress(system: Any) -> None:
    with system.client() as client:
        batch = upload(client, [(f"shot-{seed:02}.jpg", chart_photo(100 + seed)) for seed in range(20)])
        assert batch["total"] == 20
        finished = wait_batch(client, batch["id"], timeout=500)
        states = [job["state"] for job in finished["jobs"]]
        assert states.count("done") == 20, finished["states"]
        archive = zipfile.ZipFile(io.BytesIO(client.get(finished["archive"]).content))
        corrected = [name for name in archive.namelist() if ".corrected." in name]
        assert len(corrected) == 20
        history = client.get("/api/v1/jobs", params={"batch_id": batch["id"], "page_size": 5}).json()
        assert history["total"] == 20
        assert len(history["items"]) == 5


def test_a_zip_of_photos_becomes_one_batch(system: Any) -> None:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("session/a.jpg", chart_photo(2))
        archive.writestr("session/b.jpg", chart_photo(3))
        archive.writestr("c.jpg", chart_photo(4))
    with system.client() as client:
        batch = upload(client, [("session.zip", bundle.getvalue())])
        assert sorted(job["filename"] for job in batch["jobs"]) == ["a.jpg", "b.jpg", "c.jpg"]
        finished = wait_batch(client, batch["id"])
        assert finished["states"] == {"done": 3}


def test_a_saved_profile_corrects_chartless_photos_of_the_session(system: Any) -> None:
    with system.client() as client:
        chart_job = wait_batch(client, upload(client, [("chart.jpg", chart_photo(5))])["id"])["jobs"][0]
        assert chart_job["state"] == "done"
        profile = client.post(
            "/api/v1/profiles", json={"job_id": chart_job["id"], "name": "session 5"}
        ).json()
        batch = upload(
            client,
            [("scene-1.jpg", chartless_photo(6)), ("scene-2.jpg", chartless_photo(7))],
            profile_id=profile["id"],
        )
        finished = wait_batch(client, batch["id"])
        assert finished["states"] == {"done": 2}, finished
        for job in finished["jobs"]:
            assert job["method"] == chart_job["method"]
            assert job["stage_times"].get("detected") is None
            assert client.get(job["files"]["corrected"]).status_code == 200
        renamed = client.patch(f"/api/v1/profiles/{profile['id']}", json={"name": "renamed"}).json()
        assert renamed["name"] == "renamed"
        assert client.delete(f"/api/v1/profiles/{profile['id']}").status_code == 204
        assert client.get(f"/api/v1/profiles/{profile['id']}/profile.json").status_code == 404


def test_a_photo_without_a_chart_fails_with_its_reason(system: Any) -> None:
    with system.client() as client:
        job = wait_batch(client, upload(client, [("empty.jpg", chartless_photo(8))])["id"])["jobs"][0]
        assert job["state"] == "failed"
        assert job["reason"] == "no_chart"
        assert job["message"]


def test_a_corrupt_file_fails_alone_and_a_non_image_is_refused(system: Any) -> None:
    good = chart_photo(9)
    truncated = good[: len(good) // 2]
    with system.client() as client:
        refused = client.post(
            "/api/v1/jobs", files=[("files", ("notes.jpg", b"just some text", "image/jpeg"))]
        )
        assert refused.status_code == 415
        assert refused.json()["code"] == "unsupported_media_type"
        batch = upload(client, [("good.jpg", good), ("truncated.jpg", truncated)])
        jobs = {job["filename"]: job for job in wait_batch(client, batch["id"])["jobs"]}
        assert jobs["good.jpg"]["state"] == "done"
        assert jobs["truncated.jpg"]["state"] == "failed"
        assert jobs["truncated.jpg"]["reason"] == "decode_error"


@cache
def chart_in_every_format() -> dict[str, bytes]:
    """One rendered chart scene in every accepted format (the DNG drawn from the same seed)."""
    scene = render_scene(11, chart="classic24", size=SCENE_SIZE, jpeg_quality=95)
    files = {"chart.jpg": scene.image_bytes}
    for name, image_format in (
        ("chart.png", "PNG"),
        ("chart.webp", "WEBP"),
        ("chart.heic", "HEIF"),
        ("chart.avif", "AVIF"),
    ):
        buffer = io.BytesIO()
        Image.fromarray(scene.pixels, "RGB").save(buffer, image_format, quality=95)
        files[name] = buffer.getvalue()
    deep = io.BytesIO()
    tifffile.imwrite(deep, scene.pixels.astype("uint16") * 257, photometric="rgb")
    files["chart.tif"] = deep.getvalue()
    files["chart.dng"] = render_dng_scene(11, size=SCENE_SIZE, noise=0.001).dng_bytes
    return files


def test_every_format_round_trips_through_the_pipeline(system: Any) -> None:
    files = chart_in_every_format()
    with system.client() as client:
        batch = upload(client, list(files.items()))
        jobs = {job["filename"]: job for job in wait_batch(client, batch["id"])["jobs"]}
        assert set(jobs) == set(files)
        for name, job in jobs.items():
            assert job["state"] == "done", (name, job)
            assert job["chart_type"] == "classic24", name
            assert job["delta_e2000_after"] < min(job["delta_e2000_before"], 3.0), (name, job)
            corrected = client.get(job["files"]["corrected"])
            with Image.open(io.BytesIO(corrected.content)) as image:
                assert image.size == SCENE_SIZE, name
            assert client.get(job["files"]["report.pdf"]).content.startswith(b"%PDF")


def test_a_raw_chart_shot_gives_a_wide_gamut_tiff_and_a_camera_profile(system: Any) -> None:
    dng = chart_in_every_format()["chart.dng"]
    with system.client() as client:
        batch = upload(
            client, [("chart.dng", dng)], output_format="tiff", bit_depth=16, output_space="prophoto"
        )
        job = wait_batch(client, batch["id"])["jobs"][0]
        assert job["state"] == "done", job
        corrected = client.get(job["files"]["corrected"]).content
        with tifffile.TiffFile(io.BytesIO(corrected)) as tiff:
            page = tiff.pages.first
            assert page.dtype == "uint16"
            assert bytes(page.tags[34675].value) == output_icc_profile("prophoto")
        profile = client.get(job["files"]["profile.json"]).json()
        assert profile["input_encoding"] == "linear-camera"
        assert profile["camera_model"].startswith("Chromaline Synthetic")


FORMAT_NAMES = {
    "jpg": "JPEG",
    "png": "PNG",
    "tif": "TIFF",
    "webp": "WEBP",
    "heic": "HEIF",
    "avif": "AVIF",
    "dng": "RAW",
}
"""How the failure message names each format of :func:`chart_in_every_format`."""


def test_a_damaged_file_of_every_format_is_refused_or_fails_with_a_code(system: Any) -> None:
    files = chart_in_every_format()
    assert set(FORMAT_NAMES) == {name.split(".")[1] for name in files}
    with system.client() as client:
        for name, data in files.items():
            broken = data[: len(data) // 2]
            response = client.post(
                "/api/v1/jobs", files=[("files", (f"broken-{name}", broken, "application/octet-stream"))]
            )
            if response.status_code == 422:
                assert response.json()["code"] == "corrupt_image", name
                continue
            assert response.status_code == 202, response.text
            job = wait_batch(client, response.json()["id"])["jobs"][0]
            assert job["state"] == "failed", (name, job)
            assert job["reason"] == "decode_error", (name, job)
            assert FORMAT_NAMES[name.split(".")[1]] in job["message"].upper(), (name, job)


def test_a_websocket_client_follows_a_job_to_the_end(system: Any) -> None:
    from websockets.sync.client import connect

    with system.client() as client:
        job_id = upload(client, [("live.jpg", chart_photo(10))])["jobs"][0]["id"]
    ws_url = system.base_url.replace("http://", "ws://") + f"/api/v1/jobs/{job_id}/events"
    seen = []
    token = {"Authorization": f"Bearer {system.account['access_token']}"}
    with connect(ws_url, open_timeout=30, additional_headers=token) as websocket:
        for message in websocket:
            view = json.loads(message)
            seen.append(view["progress"])
            if view["state"] in FINISHED:
                break
    assert view["state"] == "done"
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


LATTICE_ONLY_PHOTOS = {
    "qiu-digital-sg.png": "original",
    "darsia-fluidflower-tracer_0.jpg": "-1 stop",
}
"""Annotated real photos whose charts only the patch-lattice finders find, and the variant of each
sent (:data:`bench.real_variants.VARIANTS`): the one real Digital SG, and the tiny Passport of the
DarSIA tracer photo one stop darker (patches of about 15 px in 5.7 MP), which OpenCV's mcc misses,
so the detector must search the photo's tiles for the Classic 24's lattice."""


@pytest.fixture(scope="module")
def real_photo_bench() -> dict[str, ModuleType]:
    if not (REAL_PHOTOS / "corners.json").is_file():
        pytest.skip(f"the annotated real photos are not at {REAL_PHOTOS}")
    sys.path.insert(0, str(ROOT))
    try:
        return {name: importlib.import_module(f"bench.{name}") for name in ("real_photos", "real_variants")}
    finally:
        sys.path.remove(str(ROOT))


def test_real_charts_only_their_patch_lattice_shows_are_corrected_in_place(
    system: Any, real_photo_bench: dict[str, ModuleType]
) -> None:
    """The services find each chart where its annotation (``corners.json``) puts it: mean corner
    error under 5 % of the grid's diagonal, patch 1 in place."""
    photos, variants = real_photo_bench["real_photos"], real_photo_bench["real_variants"]
    annotations = {truth.name: truth for truth in photos.load_annotations(REAL_PHOTOS)}
    sent = {
        f"real-{name}": variants.variant_photo(REAL_PHOTOS, annotations[name], variant, 0)
        for name, variant in LATTICE_ONLY_PHOTOS.items()
    }
    with system.client() as client:
        jobs = wait_batch(client, upload(client, [(name, data) for name, (data, _) in sent.items()])["id"])[
            "jobs"
        ]
        corners = {
            job["filename"]: np.asarray(client.get(job["files"]["measurements"]).json()["corners"])
            for job in jobs
        }
    for job in jobs:
        truth = sent[job["filename"]][1]
        assert job["state"] == "done", job
        assert job["chart_type"] == truth.chart_type
        found = corners[job["filename"]]
        assert photos.box_right(job["chart_type"], found, truth), (
            job["filename"],
            photos.corner_error(found, truth),
        )
        assert job["delta_e2000_after"] < job["delta_e2000_before"]
