"""Patch sampling: accuracy against the rendered truth and the reliability flags."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from chromaline.engine.detect import ChartDetection, detect_charts, detection_from_corners
from chromaline.engine.image_io import DecodedImage, decode_image, to_linear
from chromaline.engine.sample import (
    _byte_histograms,
    _channel_statistics,
    _channel_statistics_of_codes,
    _clip_fraction,
    _clip_fraction_of_histogram,
    _masked_pixels,
    _percentiles,
    _statistics_of_histograms,
    sample_patches,
)
from chromaline.engine.synthetic import render_scene

SIZE = (2000, 1500)


def test_clean_scene_measures_the_recorded_values() -> None:
    scene = render_scene(11, size=SIZE, vignetting=0.0, noise=0.001)
    image = decode_image(scene.image_bytes)
    detection = detect_charts(image, "classic24").detections[0]
    patches = sample_patches(image, detection)
    measured = np.array([patch.rgb for patch in patches])
    np.testing.assert_allclose(measured, scene.truth_linear, atol=0.004, rtol=0.03)
    assert [patch.name for patch in patches][:2] == ["dark skin", "light skin"]
    assert all(np.all(patch.spread < 0.03) for patch in patches)


def test_linear_input_gives_the_same_means_as_decoded_input() -> None:
    scene = render_scene(12, size=SIZE, vignetting=0.0)
    image = decode_image(scene.image_bytes)
    detection = detect_charts(image, "classic24").detections[0]
    from_codes = np.array([patch.rgb for patch in sample_patches(image, detection)])
    from_linear = np.array([patch.rgb for patch in sample_patches(to_linear(image), detection)])
    np.testing.assert_allclose(from_linear, from_codes, atol=1e-5)


def test_glare_is_flagged_non_uniform() -> None:
    scene = render_scene(11, size=SIZE, vignetting=0.0, glare_patch=7)
    image = decode_image(scene.image_bytes)
    patches = sample_patches(image, detect_charts(image, "classic24").detections[0])
    assert "non_uniform" in patches[7].flags
    assert sum("non_uniform" in patch.flags for patch in patches) == 1


def test_overexposed_patches_are_flagged_clipped() -> None:
    scene = render_scene(11, size=SIZE, vignetting=0.0, exposure=1.6)
    image = decode_image(scene.image_bytes)
    patches = sample_patches(image, detect_charts(image, "classic24").detections[0])
    clipped = {patch.index for patch in patches if "clipped" in patch.flags}
    white_index = 18
    assert white_index in clipped
    assert 23 not in clipped  # black stays far from both ends


def _noisy_patch_near_white(mean_code: float, sigma: float) -> tuple[DecodedImage, ChartDetection]:
    """An 8-bit flat image whose codes scatter around ``mean_code``; the ones above 255 clip."""
    codes = np.random.default_rng(5).normal(mean_code, sigma, (300, 400, 3))
    pixels = np.clip(np.rint(codes), 0, 255).astype(np.uint8)
    detection = detection_from_corners(
        "classic24", [(10.0, 10.0), (390.0, 10.0), (390.0, 290.0), (10.0, 290.0)]
    )
    return DecodedImage(pixels, 8, "sRGB", None, None, "png"), detection


def test_a_few_clipped_pixels_leave_the_robust_mean_true_and_the_patch_in_the_fit() -> None:
    """Noise pushes about 5 % of the codes past 255: the trimmed mean leaves them out anyway."""
    image, detection = _noisy_patch_near_white(245.0, 6.0)
    patch = sample_patches(image, detection)[5]
    assert "clipped" not in patch.flags
    true_level = to_linear(DecodedImage(np.full((1, 1, 3), 245, np.uint8), 8, "sRGB", None, None, "png"))
    np.testing.assert_allclose(patch.rgb, true_level[0, 0], rtol=0.004)


def test_a_patch_clipped_beyond_the_trimmed_share_is_flagged() -> None:
    """About a third of the codes clip: the trimmed mean would be pulled below the truth."""
    image, detection = _noisy_patch_near_white(252.0, 6.0)
    assert "clipped" in sample_patches(image, detection)[5].flags


def test_patches_outside_the_image_are_flagged() -> None:
    pixels = np.full((300, 400, 3), 128, dtype=np.uint8)
    image = DecodedImage(pixels, 8, "sRGB", None, None, "png")
    detection = detection_from_corners(
        "classic24", [(-200.0, 10.0), (350.0, 10.0), (350.0, 290.0), (-200.0, 290.0)]
    )
    patches = sample_patches(image, detection)
    assert "outside_frame" in patches[0].flags
    assert "outside_frame" not in patches[5].flags
    np.testing.assert_allclose(patches[5].rgb, to_linear(image)[0, 0], atol=1e-5)


def test_black_image_patches_are_dark() -> None:
    image = DecodedImage(np.zeros((300, 400, 3), dtype=np.uint8), 8, "sRGB", None, None, "png")
    detection = detection_from_corners(
        "classic24", [(10.0, 10.0), (390.0, 10.0), (390.0, 290.0), (10.0, 290.0)]
    )
    assert all({"dark", "clipped"} <= set(patch.flags) for patch in sample_patches(image, detection))


def test_noise_alone_does_not_make_patches_non_uniform() -> None:
    flagged = 0
    for seed in range(6):
        scene = render_scene(seed, size=SIZE, noise=0.004)
        image = decode_image(scene.image_bytes)
        patches = sample_patches(image, detect_charts(image, "classic24").detections[0])
        flagged += sum("non_uniform" in patch.flags for patch in patches)
    assert flagged == 0


def _flat_chart(level: float = 0.2) -> tuple[NDArray[np.float32], ChartDetection]:
    image = np.full((600, 900, 3), level, dtype=np.float32)
    corners = [(100.0, 100.0), (800.0, 100.0), (800.0, 500.0), (100.0, 500.0)]
    return image, detection_from_corners("classic24", corners)


def test_a_shadow_across_a_patch_makes_it_non_uniform() -> None:
    image, detection = _flat_chart()
    noise = np.random.default_rng(3).normal(0, 0.01, image.shape).astype(np.float32)
    image += noise
    quad = sample_patches(image, detection)[4].quad
    left, top = np.floor(quad.min(axis=0)).astype(int)
    right, bottom = np.ceil(quad.max(axis=0)).astype(int)
    ramp = np.linspace(1.0, 0.7, right - left, dtype=np.float32)
    image[top:bottom, left:right] *= ramp[None, :, None]
    flags = {patch.index: patch.flags for patch in sample_patches(image, detection)}
    assert "non_uniform" in flags[4]
    assert all("non_uniform" not in patch_flags for index, patch_flags in flags.items() if index != 4)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_clip_fraction_is_the_most_clipped_channels_share(dtype: type[np.unsignedinteger]) -> None:
    """8 % of the pixels clip in each channel, different pixels each time: every channel's
    trimmed mean is safe, though nearly a quarter of the pixels have some channel at an end."""
    top = int(np.iinfo(dtype).max)
    codes = np.full((1000, 3), top // 2, dtype=dtype)
    codes[0:80, 0] = top
    codes[80:160, 1] = 0
    codes[160:240, 2] = top - 1
    codes[240:300, 2] = 0
    low, high = top * 0.002, top * 0.995
    assert _clip_fraction(codes, low, high) == pytest.approx(0.14)
    assert _clip_fraction(codes[:, :2], low, high) == pytest.approx(0.08)
    if dtype == np.uint8:
        assert _clip_fraction_of_histogram(_byte_histograms(codes), low, high) == _clip_fraction(
            codes, low, high
        )


@pytest.mark.parametrize("seed", range(3))
def test_a_charts_patches_at_once_equal_each_patch_alone(seed: int) -> None:
    """Every patch's statistics and clipped share from one batch of histograms, as from its own
    sorted linear values, with patches of different sizes, spreads and clipping."""
    rng = np.random.default_rng(seed)
    tables = rng.random((3, 256)).astype(np.float32)
    tables[0] = np.linspace(0.0, 1.0, 256, dtype=np.float32) ** 2.2
    patches = []
    for _ in range(24):
        count = int(rng.integers(1, 3000))
        centre = rng.integers(0, 256, 3)
        codes = np.clip(centre + rng.normal(0.0, rng.uniform(0.5, 20), (count, 3)), 0, 255).astype(np.uint8)
        patches.append(codes)
    together = _statistics_of_histograms(np.stack([_byte_histograms(codes) for codes in patches]), tables)
    for codes, statistics in zip(patches, together, strict=True):
        linear = np.stack([tables[channel][codes[:, channel]] for channel in range(3)], axis=1)
        alone = _channel_statistics(linear)
        np.testing.assert_allclose(statistics.mean, alone.mean, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(statistics.spread, alone.spread)
        histogram = _byte_histograms(codes)
        assert _clip_fraction_of_histogram(histogram, 0.51, 253.7) == _clip_fraction(codes, 0.51, 253.7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("seed", range(4))
def test_statistics_from_code_counts_equal_those_from_sorted_linear_values(
    dtype: type[np.unsignedinteger], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    levels = int(np.iinfo(dtype).max) + 1
    # A curve that is not monotonic, so the counts must be ordered by value, not by code.
    tables = rng.random((3, levels)).astype(np.float32)
    tables[0] = np.linspace(0.0, 1.0, levels, dtype=np.float32) ** 2.2
    count = int(rng.integers(1, 5000))
    centre = rng.integers(0, levels, 3)
    width = rng.uniform(0.5, levels / 30)
    codes = np.clip(centre + rng.normal(0.0, width, (count, 3)), 0, levels - 1).astype(dtype)
    linear = np.stack([tables[channel][codes[:, channel]] for channel in range(3)], axis=1)
    from_sorting = _channel_statistics(linear)
    from_counts = _channel_statistics_of_codes(codes, tables)
    np.testing.assert_allclose(from_counts.mean, from_sorting.mean, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(from_counts.spread, from_sorting.spread)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_masked_pixels_are_those_boolean_indexing_selects(dtype: type[np.unsignedinteger]) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, int(np.iinfo(dtype).max) + 1, (40, 60, 3)).astype(dtype)
    region = pixels[5:30, 7:50]
    mask = rng.random(region.shape[:2]) < 0.4
    np.testing.assert_array_equal(_masked_pixels(region, mask), region[mask])


@pytest.mark.parametrize("seed", range(6))
def test_percentiles_by_binned_selection_equal_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 30_000))
    # Few distinct values with many ties, as a patch's luminance has, and sometimes all equal.
    levels = rng.random(int(rng.integers(1, 400))).astype(np.float32) ** 3
    values = rng.choice(levels, count)
    quantiles = (0.0, 2.5, 50.0, 98.0, 100.0)
    assert _percentiles(values, quantiles) == list(np.percentile(values, quantiles))
