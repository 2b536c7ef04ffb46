"""Finding a chart by its patch grid: square patches, then the lattice they sit on.

A chart of many small patches (the ColorChecker Digital SG) is hard for ``mcc``'s chart model, but
its patches are easy to see one by one: the chart body shows as thin dark lines between them.
Those lines are what a morphological closing fills in, so every pixel much darker than its closing
belongs to a line, and the regions between lines that look like squares are candidate patches.
Where dark patches stop the lines from standing out against the closing, the patches are found
instead as the pixels brighter than the darkest ones near them (the body). Patches as dark as the
body (the SG's black ring patches) are lost, which does not matter: a few dozen patches fix the
lattice.

The lattice is grown from a seed patch: its neighbours give two axis vectors, every square is
given lattice coordinates through the current lattice-to-image homography, the ones close to a
lattice point within a growing radius are kept and the homography is refitted to them. The chart
box then follows from the lattice's extent and the chart's rows and columns; when fewer patches
than a whole row or column were found, every placement of the chart over them is a candidate and
the caller chooses by colour. A lattice larger than the chart (a Passport's facing page sits on
its chart's lattice) gives the chart-sized windows inside it as candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.engine.geometry import ChartLayout, map_points

CLOSING_SIZES = (5, 9, 15, 25)
"""Closing kernels (working-image pixels), tried in turn: lines narrower than the kernel are found;
a wider line is a flat dark area that joins the patches around it."""
ENOUGH_PATCHES = 60
"""Once lattices this large are found, wider kernels are not tried."""
LINE_CONTRAST = 0.08
"""A pixel this much darker (relative) than its closing is part of a dark line."""
FLOOR_MARGIN = 8.0
"""A pixel this much brighter (8-bit codes) than the darkest one near it is part of a patch: above
the noise of a flat patch in a JPEG (its darkest pixel sits some 5 codes below its mean), below
the step from a black body to a patch of L* 20."""
MIN_SQUARE_AREA = 30.0
SQUARE_FILL = 0.8
"""A square's area over its bounding rectangle's; a perspective patch stays well above."""
MAX_ASPECT = 1.6
LATTICE_TOLERANCE = 0.3
"""How far (in lattice pitches) a patch centre may sit from its lattice point."""
SIZE_RATIO = 1.6
"""A lattice member's side is within this factor of its seed's."""
GROWTH_RADII = (1.5, 3.0, 5.0, 8.0, 16.0)
MIN_LATTICE_PATCHES = 12
SEEDS_TRIED = 6
MAX_PLACEMENTS = 30


@dataclass(frozen=True)
class Squares:
    centres: NDArray[np.float64]
    """(N, 2) centres in working-image pixels."""
    sides: NDArray[np.float64]
    angles: NDArray[np.float64]
    """(N,) direction of one side, radians."""


@dataclass(frozen=True)
class Lattice:
    homography: NDArray[np.float64]
    """Lattice coordinates (one unit per patch pitch, patch centres on integers) to image pixels."""
    cells: NDArray[np.int64]
    """(M, 2) integer lattice coordinates of the patches found."""
    members: NDArray[np.int64]
    """(M,) index of each found patch among the squares."""


def brightness(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The brightest channel of each pixel, lightly smoothed: a patch of any hue stands out from
    the dark body in it."""
    value = np.maximum(np.maximum(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2]).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(value, (0, 0), 0.7), dtype=np.float32)


def find_squares(value: NDArray[np.float32], closing_size: int) -> Squares:
    """Square regions of a ``brightness`` image bounded by dark lines narrower than ``closing_size``."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (closing_size, closing_size))
    closed = cv2.morphologyEx(value, cv2.MORPH_CLOSE, kernel)
    open_area = ((closed - value) < LINE_CONTRAST * closed + 3.0).astype(np.uint8)
    return _squares(open_area, value.shape)


def find_squares_above_floor(value: NDArray[np.float32], floor_size: int) -> Squares:
    """Square regions of a ``brightness`` image brighter than the darkest pixel within
    ``floor_size`` by :data:`FLOOR_MARGIN`.

    The closing of :func:`find_squares` fills a line between a bright patch and a dark one up to
    the dark patch's level, so the line stops separating them and one dark patch merges its
    neighbours into one region; a chart with many dark patches lost most of its squares. Measured
    against the body around it (the darkest pixels near a patch are the lines beside it), a dark
    patch stays apart from its neighbours as long as it is brighter than the body at all."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (floor_size, floor_size))
    floor = cv2.erode(value, kernel)
    return _squares((value > floor + FLOOR_MARGIN).astype(np.uint8), value.shape)


def _squares(open_area: NDArray[np.uint8], shape: tuple[int, ...]) -> Squares:
    """The regions of ``open_area`` (non-zero) shaped like squares, of a plausible patch size."""
    contours, hierarchy = cv2.findContours(open_area, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    max_area = (max(shape) / 8.0) ** 2
    centres, sides, angles = [], [], []
    for contour, links in zip(contours, hierarchy[0] if hierarchy is not None else [], strict=True):
        if links[3] != -1:
            continue
        area = cv2.contourArea(contour)
        if not MIN_SQUARE_AREA <= area <= max_area:
            continue
        (x, y), (width, height), angle = cv2.minAreaRect(contour)
        if area < SQUARE_FILL * width * height or max(width, height) > MAX_ASPECT * min(width, height):
            continue
        centres.append((x, y))
        sides.append(np.sqrt(area))
        angles.append(np.deg2rad(angle))
    return Squares(
        np.array(centres, dtype=np.float64).reshape(-1, 2),
        np.array(sides, dtype=np.float64),
        np.array(angles, dtype=np.float64),
    )


def _neighbour_counts(squares: Squares, pitch_ratio: float) -> NDArray[np.int64]:
    """How many squares sit about one pitch from each square (its lattice neighbours)."""
    distances = np.linalg.norm(squares.centres[:, None, :] - squares.centres[None, :, :], axis=2)
    pitch = squares.sides * pitch_ratio
    near = (distances > 0.8 * pitch[:, None]) & (distances < 1.25 * pitch[:, None])
    return np.asarray(near.sum(axis=1), dtype=np.int64)


def _seed_homography(squares: Squares, seed: int, pitch_ratio: float) -> NDArray[np.float64]:
    """Affine lattice-to-image map from one square: its side direction and its neighbours' distance."""
    centre = squares.centres[seed]
    distances = np.linalg.norm(squares.centres - centre, axis=1)
    expected = squares.sides[seed] * pitch_ratio
    near = distances[(distances > 0.8 * expected) & (distances < 1.25 * expected)]
    pitch = float(np.median(near)) if len(near) else expected
    angle = squares.angles[seed]
    first = pitch * np.array([np.cos(angle), np.sin(angle)])
    second = np.array([-first[1], first[0]])
    return np.array([[first[0], second[0], centre[0]], [first[1], second[1], centre[1]], [0.0, 0.0, 1.0]])


def _assign(
    squares: Squares, homography: NDArray[np.float64], radius: float, tolerance: float, seed_side: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Squares close to a lattice point within ``radius`` of the origin, one per lattice point, and
    about the seed's size (a printed mark or a label on the chart body is much smaller)."""
    similar = np.abs(np.log(squares.sides / seed_side)) < np.log(SIZE_RATIO)
    lattice = map_points(np.asarray(np.linalg.inv(homography), dtype=np.float64), squares.centres)
    cells = np.round(lattice).astype(np.int64)
    error = np.abs(lattice - cells).max(axis=1)
    candidates = np.flatnonzero((error < tolerance) & (np.abs(cells).max(axis=1) <= radius) & similar)
    closest_first = candidates[np.argsort(error[candidates])]
    # One key per lattice point (|cell| <= radius); np.unique keeps each key's first occurrence.
    width = 2 * int(radius) + 1
    keys = cells[closest_first, 0] * width + cells[closest_first, 1]
    _, first = np.unique(keys, return_index=True)
    members = np.sort(closest_first[first]).astype(np.int64)
    return cells[members], members


def _off_one_line(cells: NDArray[np.int64]) -> bool:
    """Whether the lattice cells are not all on one line: exact in integers, where a rank test
    costs a singular value decomposition on every growth step."""
    offsets = cells - cells[0]
    apart = offsets[np.any(offsets != 0, axis=1)]
    if len(apart) == 0:
        return False
    cross = offsets[:, 0] * apart[0, 1] - offsets[:, 1] * apart[0, 0]
    return bool(np.any(cross != 0))


def _fit(cells: NDArray[np.int64], centres: NDArray[np.float64]) -> NDArray[np.float64] | None:
    source = cells.astype(np.float64)
    if len(cells) >= 8 and _off_one_line(cells):
        homography, _ = cv2.findHomography(source, centres, 0)
        if homography is not None:
            return np.asarray(homography, dtype=np.float64)
    if len(cells) < 3:
        return None
    design = np.column_stack([source, np.ones(len(source))])
    solution, _, rank, _ = np.linalg.lstsq(design, centres, rcond=None)
    if rank < 3:
        return None
    return np.vstack([solution.T, [0.0, 0.0, 1.0]])


def _grow(squares: Squares, seed: int, pitch_ratio: float) -> Lattice | None:
    homography: NDArray[np.float64] | None = _seed_homography(squares, seed, pitch_ratio)
    cells = members = np.zeros(0, dtype=np.int64)
    for radius in GROWTH_RADII:
        assert homography is not None
        previous = cells, members
        cells, members = _assign(squares, homography, radius, LATTICE_TOLERANCE, float(squares.sides[seed]))
        if len(members) and np.array_equal(members, previous[1]) and np.array_equal(cells, previous[0]):
            continue  # the same patches on the same lattice points as the last fit: the same fit
        homography = _fit(cells, squares.centres[members])
        if homography is None:
            return None
    assert homography is not None
    connected = _connected(cells)
    if not connected.all():
        cells, members = cells[connected], members[connected]
        homography = _fit(cells, squares.centres[members])
        if homography is None:
            return None
    return Lattice(homography, cells, members)


def _connected(cells: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Lattice members with another member at most two cells away: a square of the clutter that
    happens to fall on a lattice point far from the chart stands alone."""
    steps = np.abs(cells[:, None, :] - cells[None, :, :]).max(axis=2)
    np.fill_diagonal(steps, np.iinfo(np.int64).max)
    return np.asarray(steps.min(axis=1) <= 2, dtype=np.bool_)


def fit_lattice(squares: Squares, pitch_ratio: float) -> Lattice | None:
    """The largest lattice of squares, grown from the best-connected seeds."""
    if len(squares.centres) < MIN_LATTICE_PATCHES:
        return None
    counts = _neighbour_counts(squares, pitch_ratio)
    seeds = [int(seed) for seed in np.argsort(-counts, kind="stable")[:SEEDS_TRIED] if counts[seed] >= 2]
    best: Lattice | None = None
    for seed in seeds:
        lattice = _grow(squares, seed, pitch_ratio)
        if lattice is not None and (best is None or len(lattice.members) > len(best.members)):
            best = lattice
    if best is None or len(best.members) < MIN_LATTICE_PATCHES:
        return None
    return best


def _window_starts(low: int, high: int, extent: int) -> range:
    """First lattice row (or column) of each chart placement along one axis: windows covering the
    whole lattice, or, where the lattice is longer than the chart, windows inside it."""
    last = high - extent + 1
    return range(min(low, last), max(low, last) + 1)


@dataclass(frozen=True)
class _Window:
    """One placement of the chart on a lattice: its first cell, its extent in cells along the
    lattice's two axes, and how many of the lattice's patches it holds."""

    along_first: bool
    origin: NDArray[np.int64]
    extent: NDArray[np.int64]
    held: int


def _chart_covers(lattice: Lattice, layout: ChartLayout) -> bool:
    """Whether one placement of the chart, in either orientation, covers the whole lattice."""
    short, long = sorted(int(cells) + 1 for cells in np.ptp(lattice.cells, axis=0))
    return short <= min(layout.rows, layout.columns) and long <= max(layout.rows, layout.columns)


def _windows(lattice: Lattice, layout: ChartLayout) -> list[_Window]:
    """The chart's placements on ``lattice``: covering it whole or, on a lattice larger than the
    chart, inside it holding at least :data:`MIN_LATTICE_PATCHES` of its patches."""
    low = lattice.cells.min(axis=0)
    high = lattice.cells.max(axis=0)
    covers = _chart_covers(lattice, layout)
    windows = []
    for along_first, extent in (
        (True, np.array([layout.columns, layout.rows])),
        (False, np.array([layout.rows, layout.columns])),
    ):
        if covers and np.any(high - low + 1 > extent):
            continue
        for first in _window_starts(int(low[0]), int(high[0]), int(extent[0])):
            for second in _window_starts(int(low[1]), int(high[1]), int(extent[1])):
                origin = np.array([first, second])
                inside = np.all((lattice.cells >= origin) & (lattice.cells < origin + extent), axis=1)
                held = int(inside.sum())
                if covers or held >= MIN_LATTICE_PATCHES:
                    windows.append(_Window(along_first, origin, extent, held))
    return windows


def _placement_boxes(
    lattice: Lattice, layout: ChartLayout, windows: list[_Window]
) -> list[NDArray[np.float64]]:
    """The chart boxes of ``windows`` in image pixels; none when there are more than
    :data:`MAX_PLACEMENTS`."""
    if len(windows) > MAX_PLACEMENTS:
        return []
    half = 0.5 * layout.patch_mm / layout.pitch_mm
    boxes = []
    for window in windows:
        u0, v0 = window.origin - half
        u1, v1 = window.origin + window.extent - 1 + half
        corners = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
        if not window.along_first:
            corners = np.roll(corners, 1, axis=0)
        boxes.append(map_points(lattice.homography, corners))
    return boxes


def chart_placements(lattice: Lattice, layout: ChartLayout) -> list[NDArray[np.float64]]:
    """Every chart box (image corners, clockwise, first side along the rows) covering the lattice.

    A lattice larger than the chart (a Passport's facing page of patches, or a tiled floor, on the
    same lattice) gives every chart-sized window inside it that holds :data:`MIN_LATTICE_PATCHES`
    of its patches; the caller chooses by colour."""
    return _placement_boxes(lattice, layout, _windows(lattice, layout))


@dataclass
class _LatticesFound:
    """The placements of each lattice found with one finder and line width: of the lattices the
    chart covers whole, and of those larger than the chart (a window of them may be the chart),
    with the patches each kind holds."""

    whole: list[list[NDArray[np.float64]]] = field(default_factory=list)
    whole_patches: int = 0
    windowed: list[list[NDArray[np.float64]]] = field(default_factory=list)
    windowed_patches: int = 0


def _lattices(squares: Squares, layout: ChartLayout, max_charts: int) -> _LatticesFound:
    """Placements of each lattice among ``squares`` that the chart fits, whole or in a window."""
    pitch_ratio = layout.pitch_mm / layout.patch_mm
    found = _LatticesFound()
    while len(found.whole) + len(found.windowed) < max_charts:
        lattice = fit_lattice(squares, pitch_ratio)
        if lattice is None:
            break
        windows = _windows(lattice, layout)
        placements = _placement_boxes(lattice, layout, windows)
        if placements and _chart_covers(lattice, layout):
            found.whole.append(placements)
            found.whole_patches += len(lattice.members)
        elif placements:
            # The patches of a facing page or of clutter beyond the chart do not count: only the
            # most that one placement holds.
            found.windowed.append(placements)
            found.windowed_patches += max(window.held for window in windows)
        keep = np.ones(len(squares.centres), dtype=bool)
        keep[lattice.members] = False
        squares = Squares(squares.centres[keep], squares.sides[keep], squares.angles[keep])
    return found


SquareFinder = Callable[[NDArray[np.float32], int], Squares]


class PatchSquares:
    """The square regions of one image for each finder and line width, each found once: the
    lattice searches of several layouts on the same image (the Digital SG's, then the Classic
    24's) share them, and only the fit of the lattice depends on the layout."""

    def __init__(self, rgb: NDArray[np.uint8]) -> None:
        self.rgb = rgb
        self._found: dict[tuple[SquareFinder, int], Squares] = {}

    @cached_property
    def _value(self) -> NDArray[np.float32]:
        return brightness(self.rgb)

    def found(self, find: SquareFinder, size: int) -> Squares:
        key = (find, size)
        if key not in self._found:
            self._found[key] = find(self._value, size)
        return self._found[key]


def grid_boxes(
    image: NDArray[np.uint8] | PatchSquares, layout: ChartLayout, max_charts: int
) -> list[list[NDArray[np.float64]]]:
    """For each lattice found (up to ``max_charts``), its candidate chart boxes in the image's
    pixels (``image``: its pixels, or the squares already found in it).

    The lattices the chart covers whole come from the finder and line width that found the most
    of their patches; then those larger than the chart, from the finder and line width whose
    windows hold the most. Ranked together, a regular structure larger than the chart (a
    Passport's facing page, a grid on the wall) would push aside the finder setting that shows
    the chart alone."""
    squares = image if isinstance(image, PatchSquares) else PatchSquares(image)
    whole = windowed = _LatticesFound()
    for size in CLOSING_SIZES:
        for find in (find_squares, find_squares_above_floor):
            found = _lattices(squares.found(find, size), layout, max_charts)
            if found.whole_patches > whole.whole_patches:
                whole = found
            if found.windowed_patches > windowed.windowed_patches:
                windowed = found
            if whole.whole_patches >= ENOUGH_PATCHES:
                return whole.whole
    return whole.whole + windowed.windowed
