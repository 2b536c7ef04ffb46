"""DNG Camera Profiles: the file read back by tifffile, its matrices run through colour-hdri's
implementation of the DNG specification's colour pipeline, and the chart checked against its
published colours."""

from __future__ import annotations

import io

import colour
import numpy as np
import pytest
import tifffile
from colour_hdri.models.dng import camera_neutral_to_xy, matrix_camera_space_to_XYZ

from chromaline.engine.correct import chart_reference
from chromaline.engine.dcp import (
    CALIBRATION_LIGHTS,
    Calibration,
    CalibrationLight,
    DcpError,
    camera_profile_dcp,
)
from chromaline.engine.fit import MethodSpec, validated_fit
from chromaline.engine.icc import D50_XYZ, working_to_pcs
from chromaline.engine.synthetic import camera_raw, camera_sensitivities, illuminant_power

CAMERA = "Nikon 5100 (NPL)"
CCT = {"A": 2856.0, "D50": 5003.0, "D55": 5503.0, "D65": 6504.0, "D75": 7504.0, "F2": 4230.0}


def _fit(illuminant: str) -> tuple[np.ndarray, np.ndarray]:
    """A 3×3 fit of the camera's exact raw chart values under ``illuminant``, and those values."""
    raw = camera_raw("classic24", illuminant, CAMERA)
    reference = chart_reference("classic24", "2014")
    fit = validated_fit(raw, reference, MethodSpec("linear3x3"), objective="least_squares")
    return fit.correction.coefficients, raw


def _read(data: bytes) -> dict[int, object]:
    """The DCP's tags, read by tifffile once the DCP magic is swapped for TIFF's (the only
    difference between the two containers)."""
    assert data[:4] == b"IIRC"
    with tifffile.TiffFile(io.BytesIO(b"II*\x00" + data[4:])) as tiff:
        return {tag.code: tag.value for tag in tiff.pages.first.tags}


def _matrix(value: object) -> np.ndarray:
    pairs = np.asarray(value, dtype=np.float64).reshape(9, 2)
    return (pairs[:, 0] / pairs[:, 1]).reshape(3, 3)


@pytest.mark.parametrize(("illuminant", "light"), [("A", "A"), ("D65", "D65"), ("D50", "D50")])
def test_the_dng_pipeline_of_a_dcp_gives_back_the_fit(illuminant: str, light: CalibrationLight) -> None:
    matrix, raw = _fit(illuminant)
    data = camera_profile_dcp(
        [Calibration(matrix, light)], camera_model="Chromaline Synthetic Nikon", profile_name="test"
    )
    tags = _read(data)
    assert tags[50708] == "Chromaline Synthetic Nikon"
    assert tags[50936] == "test"
    assert tags[50778] == CALIBRATION_LIGHTS[light].exif_code
    color_matrix, forward_matrix = _matrix(tags[50721]), _matrix(tags[50964])
    np.testing.assert_allclose(forward_matrix.sum(axis=1), D50_XYZ, atol=1e-5)

    camera_to_pcs = working_to_pcs() @ matrix
    neutral = np.linalg.solve(camera_to_pcs, D50_XYZ)
    cct = CCT[light]
    identity, unity = np.identity(3), np.ones(3)
    xy = camera_neutral_to_xy(
        neutral / neutral.max(), cct, cct, color_matrix, color_matrix, identity, identity, unity
    )
    np.testing.assert_allclose(xy, CALIBRATION_LIGHTS[light].xy, atol=2e-4)
    # With and without the forward matrix, the DNG pipeline's camera → XYZ D50 is the fit's, up to
    # an exposure scale (each implementation normalises the camera neutral its own way).
    for forward in (forward_matrix, identity):
        pipeline = matrix_camera_space_to_XYZ(
            xy, cct, cct, color_matrix, color_matrix, identity, identity, unity, forward, forward
        )
        scale = float(np.mean(pipeline / camera_to_pcs))
        np.testing.assert_allclose(pipeline / scale, camera_to_pcs, atol=1e-3)

    # The chart's camera RGB through the profile lands near its published colours (a 3×3 fit's error).
    xyz = raw @ (forward_matrix @ np.diag(1.0 / neutral)).T
    lab = colour.XYZ_to_Lab(xyz, colour.XYZ_to_xy(D50_XYZ))
    published = chart_reference("classic24", "2014").lab
    assert float(np.mean(colour.delta_E(lab, published, method="CIE 2000"))) < 3.0


def test_a_matrix_with_no_positive_neutral_is_refused() -> None:
    with pytest.raises(DcpError):
        camera_profile_dcp([Calibration(-np.identity(3), "D50")], camera_model="x", profile_name="x")


def test_two_calibrations_under_the_same_light_are_refused() -> None:
    matrix, _ = _fit("D65")
    with pytest.raises(DcpError, match="another light"):
        camera_profile_dcp(
            [Calibration(matrix, "D65"), Calibration(matrix, "D65")], camera_model="x", profile_name="x"
        )


def _camera_neutral(illuminant: str) -> np.ndarray:
    """The camera's raw RGB of a perfect white under ``illuminant``, strongest channel 1."""
    response = camera_sensitivities(CAMERA) @ illuminant_power(illuminant)
    return np.asarray(response / response.max())


def _chart_error(raw: np.ndarray, neutral: np.ndarray, camera_to_xyz: np.ndarray) -> float:
    """Mean ΔE2000 of the chart's raw values through camera → XYZ D50, exposed so the camera
    neutral is white, against the published chart."""
    xyz = raw @ camera_to_xyz.T / (camera_to_xyz @ neutral)[1]
    lab = colour.XYZ_to_Lab(xyz, colour.XYZ_to_xy(D50_XYZ))
    published = chart_reference("classic24", "2014").lab
    return float(np.mean(colour.delta_E(lab, published, method="CIE 2000")))


def test_a_two_illuminant_dcp_is_interpolated_by_the_dng_pipeline() -> None:
    """Calibrated under A and D65 (given in either order, written warmer first): at each fit's
    camera neutral the DNG pipeline finds that light and gives back its fit; under D50, between the two,
    it interpolates, and the chart shot under D50 comes out closer to its published colours than
    through the A calibration alone."""
    fits = {light: _fit(light)[0] for light in ("A", "D65")}
    data = camera_profile_dcp(
        [Calibration(fits["D65"], "D65"), Calibration(fits["A"], "A")],
        camera_model="Chromaline Synthetic Nikon",
        profile_name="test",
    )
    tags = _read(data)
    assert (tags[50778], tags[50779]) == (17, 21)
    matrices = (_matrix(tags[50721]), _matrix(tags[50722]), _matrix(tags[50964]), _matrix(tags[50965]))
    color_1, color_2, forward_1, forward_2 = matrices
    identity, unity = np.identity(3), np.ones(3)
    calibration = (CCT["A"], CCT["D65"], color_1, color_2, identity, identity, unity)

    for light in ("A", "D65"):
        expected = working_to_pcs() @ fits[light]
        fitted_neutral = np.linalg.solve(expected, D50_XYZ)
        xy = camera_neutral_to_xy(fitted_neutral / fitted_neutral.max(), *calibration)
        np.testing.assert_allclose(xy, CALIBRATION_LIGHTS[light].xy, atol=2e-4)
        pipeline = matrix_camera_space_to_XYZ(xy, *calibration, forward_1, forward_2)
        scale = float(np.mean(pipeline / expected))
        np.testing.assert_allclose(pipeline / scale, expected, atol=1e-3)

    neutral = _camera_neutral("D50")
    xy = camera_neutral_to_xy(neutral, *calibration)
    cct = colour.xy_to_CCT(xy, method="McCamy 1992")
    assert CCT["A"] + 500 < cct < CCT["D65"] - 500
    interpolated = matrix_camera_space_to_XYZ(xy, *calibration, forward_1, forward_2)
    single = matrix_camera_space_to_XYZ(
        camera_neutral_to_xy(neutral, CCT["A"], CCT["A"], color_1, color_1, identity, identity, unity),
        CCT["A"],
        CCT["A"],
        color_1,
        color_1,
        identity,
        identity,
        unity,
        forward_1,
        forward_1,
    )
    raw = camera_raw("classic24", "D50", CAMERA)
    between, warm_only = _chart_error(raw, neutral, interpolated), _chart_error(raw, neutral, single)
    assert between < warm_only
    assert between < 2.0
