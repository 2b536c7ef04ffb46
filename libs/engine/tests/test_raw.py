"""DNG and camera RAW: linear camera RGB with the file's levels and orientation, corrected into a
wide-gamut space; profiles from a RAW chart shot reused on the same camera's RAWs."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from chromaline.engine.correct import (
    RAW_REFINEMENT_STEPS,
    chart_reference,
    correct_photo,
    measure,
    refinement_steps,
)
from chromaline.engine.detect import checked_detection_from_corners, detect_charts
from chromaline.engine.fit import MethodSpec, correction_delta_e2000, cross_validate, fit_correction
from chromaline.engine.geometry import chart_layout, layout_patch_quads
from chromaline.engine.icc import output_icc_profile
from chromaline.engine.image_io import UnsupportedImageError, decode_image, sniff_format, to_linear
from chromaline.engine.synthetic import (
    DNG_BLACK_LEVEL,
    DNG_WHITE_LEVEL,
    SyntheticRaw,
    camera_raw,
    render_dng_scene,
    render_scene,
    write_dng,
)

SIZE = (1200, 900)
NIKON = "Nikon 5100 (NPL)"
SIGMA = "Sigma SDMerill (NPL)"


def _scene(seed: int = 2, **options: object) -> SyntheticRaw:
    settings: dict[str, object] = {
        "illuminant": "D50",
        "camera": NIKON,
        "size": SIZE,
        "rotation": 0,
        "noise": 0.001,
        "exposure": 0.9,
        "vignetting": 0.0,
    }
    settings.update(options)
    return render_dng_scene(seed, **settings)  # type: ignore[arg-type]


def test_dng_levels_are_honoured_and_light_stays_linear() -> None:
    """Black maps to 0, white to 65535 and every code between in proportion, whatever LibRaw
    would have guessed from the brightest pixel."""
    levels = np.linspace(0.0, 0.6, 16)
    codes = np.round(DNG_BLACK_LEVEL + levels * (DNG_WHITE_LEVEL - DNG_BLACK_LEVEL)).astype(np.uint16)
    cfa = np.repeat(np.repeat(codes.reshape(4, 4), 32, axis=0), 32, axis=1)
    image = decode_image(write_dng(cfa, camera=NIKON, illuminant="D65"))
    assert image.linear_camera
    assert image.bit_depth == 16
    assert image.format == "dng"
    linear = to_linear(image)
    centres = linear[16::32, 16::32].reshape(16, 3)
    np.testing.assert_allclose(centres, np.repeat(levels[:, None], 3, axis=1), atol=2e-3)


def test_a_synthetic_dng_demosaics_to_the_cameras_raw_rgb() -> None:
    scene = _scene()
    assert sniff_format(scene.dng_bytes) == "raw"
    image = decode_image(scene.dng_bytes)
    assert image.camera_model == f"Chromaline Synthetic {NIKON}"
    assert image.transfer == "linear camera RGB (RAW)"
    measurement = measure(image, chart_type="classic24")
    assert np.abs(measurement.detection.corners - scene.corners).max() < 4
    np.testing.assert_allclose(measurement.measured, scene.truth_raw, rtol=0.05, atol=0.004)


@pytest.mark.parametrize("illuminant", ["A", "D65", "FL11"])
def test_a_foveon_cameras_chart_is_found_by_its_colours_as_the_camera_shows_them(illuminant: str) -> None:
    """The Sigma's raw channels overlap so much that its raw colours correlate poorly with the
    chart's: detection judges them through the file's colour matrix and as-shot white balance,
    while the corners still come from the raw codes."""
    scene = _scene(camera=SIGMA, illuminant=illuminant)
    image = decode_image(scene.dng_bytes)
    outcome = detect_charts(image, "classic24")
    assert outcome.reason is None
    assert np.abs(outcome.detections[0].corners - scene.corners).max() < 4
    assert checked_detection_from_corners(image, "classic24", scene.corners).confidence > 0.75


def test_the_display_matrix_shows_a_raw_neutral_as_neutral() -> None:
    """The as-shot white balance then the file's camera-to-sRGB matrix: the chart's white patch
    comes out grey at the level of the raw's strongest channel."""
    scene = _scene(camera=SIGMA, illuminant="A")
    image = decode_image(scene.dng_bytes)
    assert image.display_matrix is not None
    white = scene.truth_raw[18]
    shown = image.display_matrix @ white
    np.testing.assert_allclose(shown, np.full(3, white.max()), rtol=0.03)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_files_orientation_is_applied(orientation: int) -> None:
    upright = _scene(orientation=1)
    turned = _scene(orientation=orientation)
    image = decode_image(turned.dng_bytes)
    assert image.pixels.shape == decode_image(upright.dng_bytes).pixels.shape
    corners = measure(image, chart_type="classic24").detection.corners
    assert np.abs(corners - upright.corners).max() < 4


def test_camera_white_balance_only_when_asked() -> None:
    scene = _scene(illuminant="A")
    plain = measure(decode_image(scene.dng_bytes), chart_type="classic24").measured
    balanced = measure(decode_image(scene.dng_bytes, white_balance="camera"), chart_type="classic24").measured
    white = 18
    assert plain[white, 0] / plain[white, 2] > 2.0
    assert balanced[white, 0] / balanced[white, 2] == pytest.approx(1.0, abs=0.05)


def test_a_raw_chart_shot_is_corrected_into_a_wide_gamut_tiff_with_a_preview() -> None:
    scene = _scene()
    result = correct_photo(
        scene.dng_bytes, chart_type="classic24", output_format="tiff", bit_depth=16, output_space="prophoto"
    )
    assert result.fit is not None
    assert result.preview is not None
    assert result.fit.cross_validation.cross_validated_mean < 2.0
    assert result.profile.input_encoding == "linear-camera"
    assert result.profile.camera_model == f"Chromaline Synthetic {NIKON}"
    with tifffile.TiffFile(io.BytesIO(result.encoded.data)) as tiff:
        page = tiff.pages.first
        assert page.dtype == np.uint16
        assert page.shape == (SIZE[1], SIZE[0], 3)
        assert bytes(page.tags[34675].value) == output_icc_profile("prophoto")
    with Image.open(io.BytesIO(result.preview.data)) as preview:
        assert preview.format == "JPEG"
        assert max(preview.size) <= 2048


def test_a_raw_profile_is_checked_against_the_camera_it_corrects() -> None:
    profile = correct_photo(_scene(seed=2).dng_bytes, chart_type="classic24", output_format="tiff").profile
    same = correct_photo(
        _scene(seed=5).dng_bytes, chart_type="classic24", profile=profile, output_format="tiff"
    )
    assert same.profile_mismatches == []
    other = correct_photo(
        _scene(seed=5, camera="Sigma SDMerill (NPL)").dng_bytes,
        chart_type="classic24",
        profile=profile,
        output_format="tiff",
    )
    assert any("only fits the camera it was made with" in text for text in other.profile_mismatches)
    jpeg = render_scene(5, chart="classic24", size=SIZE, illuminant="D50", camera=NIKON, rotation=0)
    encoded = correct_photo(jpeg.image_bytes, chart_type="classic24", profile=profile)
    assert any("linear camera RGB" in text for text in encoded.profile_mismatches)


def test_a_profile_from_one_raw_corrects_another_from_the_same_camera() -> None:
    """Fitted on one shot, applied to a second under the same light: the second chart's colours
    come out about as close as its own fit would make them."""
    profile = correct_photo(_scene(seed=2).dng_bytes, chart_type="classic24", output_format="tiff").profile
    reused = correct_photo(
        _scene(seed=7).dng_bytes, chart_type="classic24", profile=profile, output_format="tiff"
    )
    own = correct_photo(_scene(seed=7).dng_bytes, chart_type="classic24", output_format="tiff")
    assert reused.report is not None
    assert own.report is not None
    assert reused.report.after["CIE 2000"].mean < own.report.after["CIE 2000"].mean + 0.5


@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_damaged_dngs_are_refused_with_a_code(damage: str) -> None:
    data = _scene(size=(400, 300)).dng_bytes
    if damage == "truncated":
        broken = data[: len(data) // 3]
    else:
        scrambled = bytearray(data)
        scrambled[8:400] = bytes(400 - 8)
        broken = bytes(scrambled)
    with pytest.raises(UnsupportedImageError) as raised:
        decode_image(broken)
    assert raised.value.code in ("decode_error", "unsupported_format")
    assert raised.value.message


def test_plain_tiffs_are_not_taken_for_raws() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 8, 3), dtype=np.uint16), photometric="rgb")
    assert sniff_format(buffer.getvalue()) == "tiff"


def test_raw_pixel_limit() -> None:
    with pytest.raises(UnsupportedImageError) as raised:
        decode_image(_scene(size=(400, 300)).dng_bytes, max_pixels=1000)
    assert raised.value.code == "too_many_pixels"


def test_a_tiff_with_a_camera_make_and_sub_ifds_that_libraw_refuses_is_read_as_a_tiff() -> None:
    """Some cameras' and editors' TIFFs carry a Make tag and sub-IFDs (thumbnails) like a NEF."""
    pixels = np.full((16, 24, 3), 40000, dtype=np.uint16)
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tiff:
        tiff.write(pixels, photometric="rgb", subifds=1, extratags=[(271, "s", 0, "Scanner Maker", True)])
        tiff.write(pixels[::2, ::2], photometric="rgb")
    data = buffer.getvalue()
    assert sniff_format(data) == "raw"
    image = decode_image(data)
    assert image.format == "tiff"
    assert image.pixels.shape == (16, 24, 3)


def test_noise_below_the_black_level_makes_a_patch_dark_not_clipped() -> None:
    """In a very dark RAW shot the sensor's noise reaches below black and LibRaw clamps it to
    zero: those patches have too little light to fit on, none has too much."""
    measurement = measure(decode_image(_scene(exposure=0.15, noise=0.004).dng_bytes), chart_type="classic24")
    flags = {patch.index: patch.flags for patch in measurement.patches}
    assert not [index for index, patch_flags in flags.items() if "clipped" in patch_flags]
    assert "dark" in flags[23]
    assert "dark" not in flags[18]


def test_an_overexposed_raw_patch_is_still_clipped() -> None:
    measurement = measure(decode_image(_scene(exposure=1.6).dng_bytes), chart_type="classic24")
    flags = {patch.index: patch.flags for patch in measurement.patches}
    assert "clipped" in flags[18]
    assert "clipped" not in flags[23]


def test_a_raw_charts_fit_refines_longer_and_stays_leave_one_out() -> None:
    """A RAW file's Classic 24 gets more ΔE2000 refinement steps than an encoded photo's: on the
    renderer's exact raw patches of the Nikon under A its leave-one-out mean drops by more than
    0.1, and each held-out patch is still predicted by a fit refined without it."""
    reference = chart_reference("classic24", "2014")
    raw = camera_raw("classic24", "A", NIKON)
    spec = MethodSpec("root_polynomial", 2)
    steps = refinement_steps(True, reference.patch_count)
    assert steps == RAW_REFINEMENT_STEPS
    assert refinement_steps(False, reference.patch_count) is None
    assert refinement_steps(True, 140) is None
    default = cross_validate(raw, reference, spec, objective="delta_e2000")
    longer = cross_validate(raw, reference, spec, objective="delta_e2000", refinement_steps=steps)
    assert longer.cross_validated_mean < default.cross_validated_mean - 0.1
    for held_out in (0, 11, 18):
        fold = np.ones(reference.patch_count, dtype=bool)
        fold[held_out] = False
        alone = fit_correction(
            raw, reference, spec, mask=fold, objective="delta_e2000", refinement_steps=steps
        )
        error = correction_delta_e2000(alone, raw, reference)[held_out]
        assert error == pytest.approx(longer.per_patch[held_out], abs=1e-3)


def _sampled_share(data: bytes) -> float:
    """The median share of each patch's area its sample covers."""
    measurement = measure(data, chart_type="classic24")
    whole = layout_patch_quads(chart_layout("classic24"), measurement.detection.corners, margin=0.0)
    shares = [
        cv2.contourArea(patch.quad.astype(np.float32)) / cv2.contourArea(quad.astype(np.float32))
        for patch, quad in zip(measurement.patches, whole, strict=True)
    ]
    return float(np.median(shares))


def test_a_raw_files_patches_are_measured_over_half_their_area_a_jpegs_over_a_quarter() -> None:
    """A RAW file's camera RGB was sampled over the centre quarter of each patch, as a JPEG's is;
    undenoised, its noise then cost the synthetic DNGs' Digital SG fits 0.28 ΔE2000 on average."""
    assert _sampled_share(_scene().dng_bytes) == pytest.approx(0.49, abs=0.02)
    assert _sampled_share(render_scene(2, size=SIZE).image_bytes) == pytest.approx(0.25, abs=0.02)
