"""The synthetic renderer and the printable ArUco frame."""

from __future__ import annotations

import re

import cv2
import numpy as np

from chromaline.engine.frame import FrameSpec, render_frame_image, render_frame_pdf
from chromaline.engine.synthetic import camera_linear, render_scene, with_other_chart


def test_scenes_are_deterministic_per_seed() -> None:
    first = render_scene(21, size=(800, 600))
    again = render_scene(21, size=(800, 600))
    other = render_scene(22, size=(800, 600))
    assert first.image_bytes == again.image_bytes
    np.testing.assert_array_equal(first.corners, again.corners)
    assert first.image_bytes != other.image_bytes
    assert first.pixels.shape == (600, 800, 3)


def test_another_chart_is_rendered_under_the_same_conditions() -> None:
    scene = render_scene(23, size=(800, 600), rotation=90, noise=0.0, blur_sigma=0.0, vignetting=0.0)
    assert with_other_chart(scene, "classic24").image_bytes == scene.image_bytes
    other = with_other_chart(scene, "digital_sg")
    assert other.chart_type == "digital_sg"
    assert (other.illuminant, other.camera, other.exposure, other.rotation_degrees) == (
        scene.illuminant,
        scene.camera,
        scene.exposure,
        scene.rotation_degrees,
    )
    # The same white-balance error: each chart's white patch (SG: row 1 column 1 is white too)
    # reads the camera's value for it times the same per-channel gains.
    gains = scene.truth_linear[18] / camera_linear("classic24", scene.illuminant, scene.camera)[18]
    other_gains = other.truth_linear[0] / camera_linear("digital_sg", other.illuminant, other.camera)[0]
    np.testing.assert_allclose(other_gains, gains, rtol=1e-9)


def test_neutral_patches_are_neutral_for_every_camera() -> None:
    for camera in ("Nikon 5100 (NPL)", "Sigma SDMerill (NPL)", "ideal"):
        values = camera_linear("classic24", "A", camera)
        neutrals = values[19:24]  # the white patch is slightly yellow in the spectral data
        spread = neutrals.max(axis=1) - neutrals.min(axis=1)
        assert np.all(spread < 0.03 * neutrals.mean(axis=1) + 0.003), camera
        assert np.all(np.diff(neutrals.mean(axis=1)) < 0)


def test_cameras_differ_under_the_same_light() -> None:
    ideal = camera_linear("classic24", "FL11", "ideal")
    nikon = camera_linear("classic24", "FL11", "Nikon 5100 (NPL)")
    assert np.abs(ideal - nikon).max() > 0.01


def test_frame_page_markers_are_detectable() -> None:
    spec = FrameSpec()
    page = render_frame_image(spec, dpi=50)
    dictionary = cv2.aruco.getPredefinedDictionary(spec.dictionary)
    _, ids, _ = cv2.aruco.ArucoDetector(dictionary).detectMarkers(page)
    assert ids is not None
    assert sorted(ids.ravel().tolist()) == list(spec.marker_ids)


def test_frame_pdf_has_true_page_size() -> None:
    spec = FrameSpec()
    media_box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", render_frame_pdf(spec))
    assert media_box is not None
    width_pt, height_pt = (float(value) for value in media_box.groups())
    assert abs(width_pt - spec.page_mm[0] / 25.4 * 72) < 0.5
    assert abs(height_pt - spec.page_mm[1] / 25.4 * 72) < 0.5
