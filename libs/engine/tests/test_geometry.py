"""Patch layouts and their mapping through the chart homography."""

from __future__ import annotations

import numpy as np

from chromaline.engine.charts import reference_names
from chromaline.engine.geometry import (
    NANO_LAYOUT,
    chart_layout,
    layout_patch_quads,
    patch_centres,
    patch_quads,
)


def test_axis_aligned_chart_maps_patches_to_their_grid_cells() -> None:
    layout = chart_layout("classic24")
    width_mm, height_mm = layout.grid_mm
    scale = 2.0
    corners = np.array(
        [
            [100, 50],
            [100 + width_mm * scale, 50],
            [100 + width_mm * scale, 50 + height_mm * scale],
            [100, 50 + height_mm * scale],
        ]
    )
    quads = patch_quads("classic24", corners, margin=0.0)
    assert quads.shape == (24, 4, 2)
    np.testing.assert_allclose(quads[0, 0], [100, 50])
    np.testing.assert_allclose(quads[0, 2], [100 + 40 * scale, 50 + 40 * scale])
    last_column_left = 100 + 5 * layout.pitch_mm * scale
    np.testing.assert_allclose(quads[5, 0], [last_column_left, 50])
    np.testing.assert_allclose(quads[23, 2], corners[2])


def test_margin_keeps_the_central_region() -> None:
    corners = np.array([[0, 0], [600, 0], [600, 400], [0, 400]], dtype=float)
    full = patch_quads("classic24", corners, margin=0.0)
    central = patch_quads("classic24", corners, margin=0.25)
    full_side = full[0, 1, 0] - full[0, 0, 0]
    np.testing.assert_allclose(central[0, 1, 0] - central[0, 0, 0], full_side / 2)
    np.testing.assert_allclose(central.mean(axis=1), full.mean(axis=1))


def test_corner_order_follows_the_chart_when_rotated() -> None:
    upright = np.array([[0, 0], [600, 0], [600, 400], [0, 400]], dtype=float)
    upside_down = upright[[2, 3, 0, 1]]
    centres = patch_centres("classic24", upright)
    rotated = patch_centres("classic24", upside_down)
    np.testing.assert_allclose(rotated, centres[::-1])


def test_digital_sg_layout_matches_reference_order() -> None:
    layout = chart_layout("digital_sg")
    names = reference_names("digital_sg")
    assert layout.patch_count == len(names) == 140
    assert names[:2] == ("A1", "B1")
    assert names[13] == "N1"
    assert names[14] == "A2"
    corners = np.array([[0, 0], [1400, 0], [1400, 1000], [0, 1000]], dtype=float)
    centres = patch_centres("digital_sg", corners)
    assert centres[13, 0] > centres[0, 0]
    assert abs(centres[13, 1] - centres[0, 1]) < 1e-9
    assert centres[14, 1] > centres[0, 1]


NANO_GRID_PX = np.array([[0, 0], [300, 0], [300, 165], [0, 165]], dtype=float)
"""The Nano's patch grid as photographed frontally: 37.5 × 30 px patches, 15 px gaps."""


def test_nano_patches_are_wider_than_tall_with_wide_gaps() -> None:
    quads = layout_patch_quads(NANO_LAYOUT, NANO_GRID_PX, margin=0.0)
    np.testing.assert_allclose(quads[0], np.array([[0, 0], [37.5, 0], [37.5, 30], [0, 30]]))
    np.testing.assert_allclose(quads[1, 0], [52.5, 0])
    np.testing.assert_allclose(quads[6, 0], [0, 45])
    np.testing.assert_allclose(quads[23, 2], [300, 165])
    central = layout_patch_quads(NANO_LAYOUT, NANO_GRID_PX, margin=0.25)
    np.testing.assert_allclose(central[0, 2] - central[0, 0], [37.5 / 2, 15])


def test_classic_sampling_quads_on_a_nano_grid_stay_inside_its_patches() -> None:
    """A Nano is reported with the Classic 24's chart type and sampled with its layout."""
    nano = layout_patch_quads(NANO_LAYOUT, NANO_GRID_PX, margin=0.0)
    sampled = patch_quads("classic24", NANO_GRID_PX, margin=0.25)
    low, high = nano.min(axis=1), nano.max(axis=1)
    assert np.all(sampled >= low[:, None, :])
    assert np.all(sampled <= high[:, None, :])
