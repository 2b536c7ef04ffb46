"""Patch sampling: accuracy against the rendered truth and the reliability flags."""

from __future__ import annotations

import numpy as np

from chromaline.detector.detect import detect_charts, detection_from_corners
from chromaline.detector.image_io import DecodedImage, decode_image, to_linear
from chromaline.detector.sample import sample_patches
from chromaline.detector.synthetic import render_scene

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
