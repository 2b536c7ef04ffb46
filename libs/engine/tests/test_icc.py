"""ICC profiles written here, checked by a second implementation (LittleCMS through Pillow)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from chromaline.engine.correct import correct_photo
from chromaline.engine.icc import (
    COLOUR_SPACES,
    OUTPUT_SPACES,
    OutputSpace,
    output_icc_profile,
    working_to_output,
)
from chromaline.engine.image_io import parse_icc_profile, srgb_encode
from chromaline.engine.profile import Profile, ProfileError, to_icc
from chromaline.engine.synthetic import render_dng_scene, render_scene

SRGB = ImageCms.createProfile("sRGB")


def _littlecms_to_srgb(codes: NDArray[np.uint8], profile: bytes) -> NDArray[np.float64]:
    converted = ImageCms.profileToProfile(
        Image.fromarray(codes.reshape(1, -1, 3), "RGB"),
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        SRGB,
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    assert converted is not None
    return np.asarray(converted, dtype=np.float64).reshape(-1, 3)


@pytest.mark.parametrize("space", OUTPUT_SPACES)
def test_output_profiles_mean_what_our_encoding_means(space: OutputSpace) -> None:
    codes = np.random.default_rng(3).integers(0, 256, (400, 3)).astype(np.uint8)
    working = COLOUR_SPACES[space].curve.decode(codes / 255.0) @ np.linalg.inv(working_to_output(space)).T
    ours = srgb_encode(working) * 255
    in_gamut = (working > 0.005).all(axis=1) & (working < 0.995).all(axis=1)
    assert in_gamut.sum() > 20
    assert np.abs(_littlecms_to_srgb(codes, output_icc_profile(space)) - ours)[in_gamut].max() <= 1.0
    description = ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(output_icc_profile(space)))
    )
    assert description.strip() == COLOUR_SPACES[space].name
    np.testing.assert_allclose(
        parse_icc_profile(output_icc_profile(space)).to_working,  # type: ignore[arg-type]
        np.linalg.inv(working_to_output(space)),
        atol=5e-4,
    )


def _patch_codes(linear: NDArray[np.float64], curve: str) -> NDArray[np.uint8]:
    encoded = srgb_encode(linear) if curve == "srgb" else np.clip(linear, 0.0, 1.0)
    return np.asarray(np.rint(encoded * 255), dtype=np.uint8)


@pytest.mark.parametrize("source", ["jpeg", "dng"])
def test_a_camera_profile_gives_the_fitted_colours_through_littlecms(source: str) -> None:
    """LittleCMS turns the chart's patches, through the exported input profile, into the same sRGB
    colours as the fitted correction does."""
    if source == "jpeg":
        data = render_scene(3, chart="classic24", size=(1200, 900), rotation=0, illuminant="D65").image_bytes
    else:
        data = render_dng_scene(3, size=(1200, 900), rotation=0, illuminant="D65", noise=0.001).dng_bytes
    result = correct_photo(data, chart_type="classic24", method="linear3x3", output_format="tiff")
    assert result.fit is not None
    profile = to_icc(result.profile)
    curve = "srgb" if source == "jpeg" else "linear"
    codes = _patch_codes(result.fit.measured, curve)
    quantised = codes / 255.0
    linear_in = quantised if curve == "linear" else COLOUR_SPACES["srgb"].curve.decode(quantised)
    fitted = srgb_encode(result.correction.apply_to_pixels(linear_in)) * 255
    in_gamut = (fitted > 1).all(axis=1) & (fitted < 254).all(axis=1)
    assert in_gamut.sum() >= 12
    assert np.abs(_littlecms_to_srgb(codes, profile) - fitted)[in_gamut].max() <= 1.5
    header = ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile
    assert header.device_class == "scnr"
    assert header.xcolor_space == "RGB "


def test_only_3x3_profiles_become_icc_profiles() -> None:
    data = render_scene(3, chart="classic24", size=(1200, 900), rotation=0).image_bytes
    profile: Profile = correct_photo(data, chart_type="classic24", method="root_polynomial").profile
    with pytest.raises(ProfileError, match="3×3"):
        to_icc(profile)
