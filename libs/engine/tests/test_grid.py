"""The patch-lattice finder: squares, lattice growth and chart placements."""

from __future__ import annotations

import numpy as np
import pytest

from chromaline.engine.detect import downscale, encoded_rgb8
from chromaline.engine.geometry import chart_layout, patch_centres
from chromaline.engine.grid import (
    CLOSING_SIZES,
    MAX_PLACEMENTS,
    MIN_LATTICE_PATCHES,
    Lattice,
    PatchSquares,
    Squares,
    brightness,
    chart_placements,
    find_squares,
    fit_lattice,
    grid_boxes,
)
from chromaline.engine.image_io import decode_image
from chromaline.engine.synthetic import render_scene

SG = chart_layout("digital_sg")
PITCH_RATIO = SG.pitch_mm / SG.patch_mm


def _lattice_squares(cells: list[tuple[int, int]], pitch: float, angle: float) -> Squares:
    axes = pitch * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    centres = np.array([500.0, 400.0]) + np.array(cells, dtype=np.float64) @ axes
    count = len(cells)
    return Squares(centres, np.full(count, pitch / PITCH_RATIO), np.full(count, angle))


def test_squares_are_found_on_the_patches_of_a_rendered_chart() -> None:
    scene = render_scene(3, chart="digital_sg", size=(1600, 1200), blur_sigma=0.0, tilt_degrees=5.0)
    value = brightness(encoded_rgb8(decode_image(scene.image_bytes)))
    squares = max((find_squares(value, size) for size in CLOSING_SIZES), key=lambda found: len(found.sides))
    truth = patch_centres("digital_sg", scene.corners)
    distances = np.linalg.norm(squares.centres[:, None, :] - truth[None, :, :], axis=2)
    on_patches = distances.min(axis=1) < 2.0
    assert on_patches.sum() >= 40
    assert len(np.unique(distances.argmin(axis=1)[on_patches])) == on_patches.sum()


def test_lattice_skips_missing_patches_and_clutter() -> None:
    cells = [(u, v) for u in range(14) for v in range(10) if (u + v) % 3 != 0]
    squares = _lattice_squares(cells, pitch=30.0, angle=0.2)
    clutter = Squares(np.array([[100.0, 100.0], [950.0, 90.0]]), np.array([26.0, 26.0]), np.array([0.0, 0.5]))
    merged = Squares(
        np.vstack([squares.centres, clutter.centres]),
        np.concatenate([squares.sides, clutter.sides]),
        np.concatenate([squares.angles, clutter.angles]),
    )
    lattice = fit_lattice(merged, PITCH_RATIO)
    assert lattice is not None
    assert sorted(lattice.members.tolist()) == list(range(len(cells)))
    assert np.all(np.ptp(lattice.cells, axis=0) == [13, 9])


def test_a_full_lattice_has_one_placement_and_a_partial_one_several() -> None:
    full = Lattice(np.eye(3), np.array([[0, 0], [13, 0], [13, 9], [0, 9]]), np.arange(4))
    (box,) = chart_placements(full, SG)
    half = 0.5 * SG.patch_mm / SG.pitch_mm
    np.testing.assert_allclose(
        box, [[-half, -half], [13 + half, -half], [13 + half, 9 + half], [-half, 9 + half]]
    )
    missing_column = Lattice(np.eye(3), np.array([[0, 0], [12, 0], [12, 9], [0, 9]]), np.arange(4))
    assert len(chart_placements(missing_column, SG)) == 2
    upright = Lattice(np.eye(3), np.array([[0, 0], [9, 0], [9, 13], [0, 13]]), np.arange(4))
    (turned,) = chart_placements(upright, SG)
    assert np.linalg.norm(turned[1] - turned[0]) > np.linalg.norm(turned[2] - turned[1])


def test_a_lattice_with_more_placements_than_the_limit_has_none() -> None:
    # A 10 x 4 lattice fits the 14 x 10 SG 5 x 7 = 35 ways along its rows and 1 x 11 = 11 across.
    too_many = Lattice(np.eye(3), np.array([[0, 0], [9, 0], [9, 3], [0, 3]]), np.arange(4))
    assert chart_placements(too_many, SG) == []
    # 13 x 6 fits 2 x 5 = 10 ways along the rows and none across: all are kept.
    within = Lattice(np.eye(3), np.array([[0, 0], [12, 0], [12, 5], [0, 5]]), np.arange(4))
    assert len(chart_placements(within, SG)) == 10 <= MAX_PLACEMENTS


def test_a_lattice_larger_than_the_chart_gives_the_windows_that_hold_enough_of_its_patches() -> None:
    # A Classic 24 (6 x 4) beside a Passport's facing page of 3 x 4 patches on the same lattice:
    # 9 x 4 cells, which no placement covers. Before, that lattice gave no placement at all.
    classic = chart_layout("classic24")
    cells = np.array([(u, v) for u in range(9) for v in range(4)])
    lattice = Lattice(np.eye(3), cells, np.arange(len(cells)))
    placements = chart_placements(lattice, classic)
    half = 0.5 * classic.patch_mm / classic.pitch_mm
    chart = np.array([[-half, -half], [5 + half, -half], [5 + half, 3 + half], [-half, 3 + half]])
    assert any(np.allclose(box, chart) for box in placements)
    # Along the rows: the 6 x 4 window at columns 0 to 3 (4 ways); across: 4 x 6 windows holding
    # 4 x 4 = 16 patches, at columns 0 to 5 (6 ways) and rows -2 to 0 (3 ways).
    assert len(placements) == 4 + 18
    # The chart's 24 patches and one stray square of the clutter 11 columns away: only the windows
    # holding at least MIN_LATTICE_PATCHES of the lattice's patches are placements.
    stray = np.array([(u, v) for u in range(6) for v in range(4)] + [(11, 0)])
    placements = chart_placements(Lattice(np.eye(3), stray, np.arange(len(stray))), classic)
    held = [
        int(np.sum(np.all((stray >= box.min(axis=0)) & (stray <= box.max(axis=0)), axis=1)))
        for box in placements
    ]
    assert len(placements) == 4 + 12
    assert min(held) >= MIN_LATTICE_PATCHES
    assert any(np.allclose(box, chart) for box in placements)


def test_the_square_closest_to_a_lattice_point_is_its_member() -> None:
    cells = [(u, v) for u in range(14) for v in range(10)]
    squares = _lattice_squares(cells, pitch=30.0, angle=0.0)
    # A second square a fifth of a pitch off the point of cell (5, 5): within the tolerance, farther.
    index = cells.index((5, 5))
    near_twin = squares.centres[index] + [6.0, 0.0]
    merged = Squares(
        np.vstack([near_twin, squares.centres]),
        np.concatenate([[squares.sides[index]], squares.sides]),
        np.concatenate([[0.0], squares.angles]),
    )
    lattice = fit_lattice(merged, PITCH_RATIO)
    assert lattice is not None
    assert sorted(lattice.members.tolist()) == list(range(1, len(cells) + 1))


def test_squares_along_one_line_make_no_lattice() -> None:
    squares = _lattice_squares([(u, 0) for u in range(14)], pitch=30.0, angle=0.3)
    assert fit_lattice(squares, PITCH_RATIO) is None


def test_a_photo_without_a_chart_has_no_lattice() -> None:
    scene = render_scene(9, chart=None, size=(1600, 1200))
    small, _ = downscale(encoded_rgb8(decode_image(scene.image_bytes)), 1600)
    for size in CLOSING_SIZES:
        assert fit_lattice(find_squares(brightness(small), size), PITCH_RATIO) is None


def test_the_squares_of_an_image_are_found_once_for_every_layout() -> None:
    scene = render_scene(3, chart="digital_sg", size=(1600, 1200), blur_sigma=0.0, tilt_degrees=5.0)
    small, _ = downscale(encoded_rgb8(decode_image(scene.image_bytes)), 1600)
    calls: list[int] = []

    def counted(value: np.ndarray, size: int) -> Squares:
        calls.append(size)
        return find_squares(value, size)

    squares = PatchSquares(small)
    first = squares.found(counted, 9)
    assert squares.found(counted, 9) is first
    assert calls == [9]
    shared, own = grid_boxes(PatchSquares(small), SG, 1), grid_boxes(small, SG, 1)
    assert len(shared) == len(own) == 1
    assert all(np.array_equal(a, b) for a, b in zip(shared[0], own[0], strict=True))


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_a_small_classic_24_is_found_by_its_patch_lattice(seed: int) -> None:
    # Patches of about 15 px in a 1600 x 1200 photo, the charts the lattice looks for after mcc.
    scene = render_scene(seed, chart="classic24", size=(1600, 1200), chart_scale=0.12, blur_sigma=0.0)
    placements = grid_boxes(encoded_rgb8(decode_image(scene.image_bytes)), chart_layout("classic24"), 1)
    pitch = np.linalg.norm(scene.corners[1] - scene.corners[0]) / 6
    closest = min(
        float(np.abs(np.roll(box, turn, axis=0) - scene.corners).max())
        for boxes in placements
        for box in boxes
        for turn in range(4)
    )
    assert closest < 0.3 * pitch
