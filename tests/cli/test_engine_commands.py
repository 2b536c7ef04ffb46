"""The ``chromaline`` engine commands, run as a user would, on rendered chart photos."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import pytest
import tifffile
from typer.testing import CliRunner

from chromaline.cli.main import app
from chromaline.engine.profile import load_profile
from chromaline.engine.synthetic import render_dng_scene, render_scene, side_by_side_scene

SIZE = (1600, 1200)
runner = CliRunner(env={"COLUMNS": "400"})
"""Wide enough that no line of the output is wrapped: a message naming a temporary path was
split where the path's length put the 80th column, and a phrase asserted on could straddle it."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = {
        "chart": render_scene(41, chart="classic24", size=SIZE).image_bytes,
        "scene": render_scene(42, chart=None, size=SIZE).image_bytes,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.jpg"
        paths[name].write_bytes(data)
    paths["text"] = folder / "notes.jpg"
    paths["text"].write_text("not a photo")
    return paths


def test_correct_writes_the_corrected_photo_profile_and_measurements(
    photos: dict[str, Path], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--format", "png"])
    assert result.exit_code == 0, result.output
    assert "classic24" in result.output
    corrected = cv2.imread(str(tmp_path / "chart.corrected.png"))
    assert corrected.shape[:2] == (SIZE[1], SIZE[0])
    measurements = json.loads((tmp_path / "chart.measurements.json").read_text())
    after = measurements["after"]["cie2000"]["mean"]
    assert after < measurements["before"]["cie2000"]["mean"]
    assert f"{after:.2f}" in result.output
    profile = load_profile((tmp_path / "chart.profile.json").read_bytes())
    assert measurements["objective"] == profile.objective


def test_the_objective_can_be_chosen_and_is_checked(photos: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--objective", "least_squares"]
    )
    assert result.exit_code == 0, result.output
    assert "fitted by least squares in linear RGB" in result.output
    measurements = json.loads((tmp_path / "chart.measurements.json").read_text())
    assert measurements["objective"] == "least_squares"
    refused = runner.invoke(
        app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--objective", "median"]
    )
    assert refused.exit_code == 2
    assert "objective is auto, least_squares or delta_e2000" in refused.output


def test_the_rating_guideline_can_be_chosen_and_is_checked(photos: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--guideline", "metamorfoze2"]
    )
    assert result.exit_code == 0, result.output
    assert "Metamorfoze 2.0" in result.output
    measurements = json.loads((tmp_path / "chart.measurements.json").read_text())
    assert measurements["rating_after"].startswith("Metamorfoze 2.0")
    refused = runner.invoke(
        app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--guideline", "fadgi"]
    )
    assert refused.exit_code == 2
    assert "unknown rating guideline" in refused.output


def test_a_profile_corrects_chartless_photos(photos: dict[str, Path], tmp_path: Path) -> None:
    profile = tmp_path / "session.json"
    cube = tmp_path / "session.cube"
    created = runner.invoke(
        app, ["profile", "create", str(photos["chart"]), "--out", str(profile), "--cube", str(cube)]
    )
    assert created.exit_code == 0, created.output
    assert "cross-validated" in created.output
    assert "LUT_3D_SIZE 33" in cube.read_text()
    result = runner.invoke(
        app, ["correct", str(photos["scene"]), "--out", str(tmp_path), "--profile", str(profile)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scene.corrected.jpg").stat().st_size > 0


def test_failures_are_reported_per_file_with_a_non_zero_exit(photos: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    result = runner.invoke(
        app, ["correct", str(photos["text"]), str(photos["scene"]), str(missing), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unsupported_format" in result.output or "decode_error" in result.output
    assert "no_chart" in result.output
    assert "unreadable_file" in result.output
    assert "3 of 3 photos could not be corrected" in result.output


def test_a_broken_profile_is_refused(photos: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 99}')
    result = runner.invoke(
        app, ["correct", str(photos["scene"]), "--out", str(tmp_path), "--profile", str(broken)]
    )
    assert result.exit_code == 2
    assert "cannot use profile" in result.output


def test_inspect_draws_the_chart_and_reports_the_detection(photos: dict[str, Path], tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.png"
    result = runner.invoke(app, ["inspect", str(photos["chart"]), "--out", str(overlay)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["chart_type"] == "classic24"
    assert len(report["corners"]) == 4
    assert cv2.imread(str(overlay)).shape[:2] == (SIZE[1], SIZE[0])
    no_chart = runner.invoke(app, ["inspect", str(photos["scene"]), "--out", str(overlay)])
    assert no_chart.exit_code == 1
    assert "no_chart" in no_chart.output


def test_inspect_without_an_image_name_says_so_instead_of_a_traceback(
    photos: dict[str, Path], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["inspect", str(photos["chart"]), "--out", str(tmp_path / "overlay")])
    assert result.exit_code == 1
    assert "give the overlay a .png" in " ".join(result.output.split())
    assert not isinstance(result.exception, cv2.error)


def test_a_second_chart_is_listed_by_inspect_and_checked_by_correct(tmp_path: Path) -> None:
    photo = tmp_path / "two-charts.jpg"
    photo.write_bytes(side_by_side_scene(4, "digital_sg", "classic24").image_bytes)
    inspected = runner.invoke(app, ["inspect", str(photo), "--out", str(tmp_path / "overlay.png")])
    assert inspected.exit_code == 0, inspected.output
    report = json.loads(inspected.output)
    assert report["charts_found"] == 2
    [other] = report["other_charts"]
    assert {report["chart_type"], other["chart_type"]} == {"digital_sg", "classic24"}
    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    scale = overlay.shape[1] / 3000
    (x0, y0), (x1, y1) = other["corners"][0], other["corners"][1]
    edge = overlay[round(scale * (y0 + y1) / 2), round(scale * (x0 + x1) / 2)]
    assert tuple(int(value) for value in edge) == (230, 130, 30)
    corrected = runner.invoke(app, ["correct", str(photo), "--out", str(tmp_path / "out")])
    assert corrected.exit_code == 0, corrected.output
    assert f"also in the photo: {other['chart_type']}" in corrected.output
    measurements = json.loads((tmp_path / "out" / "two-charts.measurements.json").read_text())
    [checked] = measurements["other_charts"]
    assert checked["delta_e2000_after"]["mean"] < checked["delta_e2000_before"]["mean"]


def test_chart_frame_writes_a_printable_pdf(tmp_path: Path) -> None:
    target = tmp_path / "frame.pdf"
    result = runner.invoke(app, ["chart", "frame", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"%PDF")


@pytest.fixture(scope="module")
def raw_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("raws")
    shots = {
        "nikon_chart": render_dng_scene(
            43, size=SIZE, camera="Nikon 5100 (NPL)", illuminant="D50", exposure=0.9
        ),
        "nikon_scene": render_dng_scene(
            44, chart=None, size=SIZE, camera="Nikon 5100 (NPL)", illuminant="D50"
        ),
        "sigma_chart": render_dng_scene(45, size=SIZE, camera="Sigma SDMerill (NPL)", illuminant="D50"),
        "nikon_chart_a": render_dng_scene(
            46, size=SIZE, camera="Nikon 5100 (NPL)", illuminant="A", exposure=0.9
        ),
    }
    paths = {}
    for name, shot in shots.items():
        paths[name] = folder / f"{name}.dng"
        paths[name].write_bytes(shot.dng_bytes)
    return paths


def _icc_options(path: Path) -> tuple[str, ...]:
    return ("--icc", str(path), "--method", "linear3x3")


def test_a_raw_chart_shot_makes_a_camera_profile_for_the_same_cameras_raws(
    raw_photos: dict[str, Path], tmp_path: Path
) -> None:
    profile_path, icc_path = tmp_path / "nikon.profile.json", tmp_path / "nikon.icc"
    made = runner.invoke(
        app,
        [
            "profile",
            "create",
            str(raw_photos["nikon_chart"]),
            "--out",
            str(profile_path),
            *_icc_options(icc_path),
        ],
    )
    assert made.exit_code == 0, made.output
    assert "linear camera RGB in" in made.output
    assert icc_path.read_bytes()[36:40] == b"acsp"
    profile = load_profile(profile_path.read_bytes())
    assert profile.camera_model == "Chromaline Synthetic Nikon 5100 (NPL)"
    out = tmp_path / "out"
    applied = runner.invoke(
        app,
        [
            *("correct", str(raw_photos["nikon_scene"]), str(raw_photos["sigma_chart"]), "--out", str(out)),
            *("--profile", str(profile_path), "--format", "tiff", "--bit-depth", "16", "--space", "prophoto"),
        ],
    )
    assert applied.exit_code == 0, applied.output
    assert applied.output.count("only fits the camera it was made with") == 1
    corrected = cv2.imread(str(out / "nikon_scene.corrected.tif"), cv2.IMREAD_UNCHANGED)
    assert corrected.dtype == "uint16"
    assert corrected.shape[:2] == (SIZE[1], SIZE[0])
    assert cv2.imread(str(out / "nikon_scene.preview.jpg")) is not None


def test_a_non_matrix_profile_writes_no_icc_profile(raw_photos: dict[str, Path], tmp_path: Path) -> None:
    refused = runner.invoke(
        app,
        [
            *("profile", "create", str(raw_photos["nikon_chart"]), "--out", str(tmp_path / "p.json")),
            *("--icc", str(tmp_path / "p.icc"), "--method", "root_polynomial"),
        ],
    )
    assert refused.exit_code == 1
    assert "3×3" in refused.output
    assert not (tmp_path / "p.icc").exists()


def test_an_unknown_output_space_is_refused(photos: dict[str, Path], tmp_path: Path) -> None:
    refused = runner.invoke(app, ["correct", str(photos["chart"]), "--out", str(tmp_path), "--space", "cmyk"])
    assert refused.exit_code != 0
    assert "--space" in refused.output


def test_a_raw_chart_shot_makes_a_dng_camera_profile(raw_photos: dict[str, Path], tmp_path: Path) -> None:
    """Whatever method the profile chose, the DCP holds a 3×3 fit of the same patches."""
    dcp = tmp_path / "nikon.dcp"
    result = runner.invoke(
        app,
        [
            *("profile", "create", str(raw_photos["nikon_chart"]), "--out", str(tmp_path / "p.json")),
            *("--dcp", str(dcp), "--dcp-light", "D50", "--method", "root_polynomial"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "linear3x3 fit for the DCP" in result.output
    data = dcp.read_bytes()
    assert data[:4] == b"IIRC"
    assert b"Chromaline Synthetic Nikon 5100 (NPL)\0" in data


def test_two_raw_chart_shots_under_two_lights_make_a_two_illuminant_dcp(
    raw_photos: dict[str, Path], tmp_path: Path
) -> None:
    dcp = tmp_path / "nikon.dcp"
    result = runner.invoke(
        app,
        [
            *("profile", "create", str(raw_photos["nikon_chart"]), "--out", str(tmp_path / "p.json")),
            *("--dcp", str(dcp), "--dcp-light", "D50", "--method", "linear3x3"),
            *("--dcp-second-chart", str(raw_photos["nikon_chart_a"]), "--dcp-second-light", "A"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "calibrated under D50 and A" in " ".join(result.output.split())
    data = dcp.read_bytes()
    with tifffile.TiffFile(io.BytesIO(b"II*\x00" + data[4:])) as tiff:
        tags = {tag.code: tag.value for tag in tiff.pages.first.tags}
    # The warmer light is calibration 1.
    assert (tags[50778], tags[50779]) == (17, 23)
    assert all(code in tags for code in (50721, 50722, 50964, 50965))


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (("--dcp-second-light", "D50"), 2, "both chart shots are under D50"),
        (("--dcp-second-light", "D93"), 2, "is not one of"),
    ],
)
def test_a_second_dcp_calibration_needs_another_known_light(
    raw_photos: dict[str, Path], tmp_path: Path, options: tuple[str, ...], code: int, message: str
) -> None:
    refused = runner.invoke(
        app,
        [
            *("profile", "create", str(raw_photos["nikon_chart"]), "--out", str(tmp_path / "p.json")),
            *("--dcp", str(tmp_path / "p.dcp"), "--dcp-light", "D50"),
            *("--dcp-second-chart", str(raw_photos["nikon_chart_a"]), *options),
        ],
    )
    assert refused.exit_code == code
    assert message in refused.output
    assert not (tmp_path / "p.dcp").exists()


def test_a_second_dcp_calibration_from_another_camera_is_refused(
    raw_photos: dict[str, Path], tmp_path: Path
) -> None:
    refused = runner.invoke(
        app,
        [
            *("profile", "create", str(raw_photos["nikon_chart"]), "--out", str(tmp_path / "p.json")),
            *("--dcp", str(tmp_path / "p.dcp"), "--dcp-light", "D50", "--method", "linear3x3"),
            *("--dcp-second-chart", str(raw_photos["sigma_chart"]), "--dcp-second-light", "A"),
        ],
    )
    assert refused.exit_code == 1
    assert "different cameras" in refused.output
    assert not (tmp_path / "p.dcp").exists()


def test_an_encoded_photo_makes_no_dng_camera_profile(photos: dict[str, Path], tmp_path: Path) -> None:
    refused = runner.invoke(
        app,
        [
            *("profile", "create", str(photos["chart"]), "--out", str(tmp_path / "p.json")),
            *("--dcp", str(tmp_path / "p.dcp"), "--method", "linear3x3"),
        ],
    )
    assert refused.exit_code == 1
    assert "RAW" in refused.output
    assert not (tmp_path / "p.dcp").exists()
