"""Where each patch sits on a chart, and how chart corners map patches into an image.

Chart-normalised coordinates: (0, 0) is the outer corner of patch 0's grid cell, u runs along
patch 0's row to (1, 0), v down the columns to (0, 1); the unit square is the patch grid from the
outer edge of the first patch to the outer edge of the last. Chart corners in an image are given
clockwise from the corner next to patch 0 (for an upright chart: top-left, top-right, bottom-right,
bottom-left), i.e. the images of (0,0), (1,0), (1,1), (0,1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.charts import chart_spec


@dataclass(frozen=True)
class ChartLayout:
    """Physical layout of a chart: a grid of patches (square unless given a height) on a dark
    chart body."""

    key: str
    rows: int
    columns: int
    patch_mm: float
    """Width of a patch, along its row."""
    gap_mm: float
    outer_mm: tuple[float, float]
    """Width and height of the whole chart body, landscape with patch 0 top-left."""
    patch_height_mm: float | None = None
    """Height of a patch that is not square."""

    @property
    def patch_size_mm(self) -> tuple[float, float]:
        """Width and height of a patch."""
        return (self.patch_mm, self.patch_mm if self.patch_height_mm is None else self.patch_height_mm)

    @property
    def pitch_mm(self) -> float:
        """Distance between the left edges of neighbouring patches in a row."""
        return self.patch_mm + self.gap_mm

    @property
    def grid_mm(self) -> tuple[float, float]:
        width, height = self.patch_size_mm
        return (
            self.columns * (width + self.gap_mm) - self.gap_mm,
            self.rows * (height + self.gap_mm) - self.gap_mm,
        )

    @property
    def grid_origin_mm(self) -> tuple[float, float]:
        """Top-left of the patch grid on the chart body (the grid is centred)."""
        width, height = self.grid_mm
        return ((self.outer_mm[0] - width) / 2, (self.outer_mm[1] - height) / 2)

    @property
    def patch_count(self) -> int:
        return self.rows * self.columns

    def patch_rects(self, margin: float = 0.0) -> NDArray[np.float64]:
        """(N, 4) ``u0, v0, u1, v1`` of each patch in chart-normalised coordinates, row-major.

        ``margin`` is the fraction of the patch side dropped on every side (0.25 keeps the
        central half of each side).
        """
        if not 0.0 <= margin < 0.5:
            raise ValueError("margin must be in [0, 0.5)")
        width, height = self.grid_mm
        patch_width, patch_height = self.patch_size_mm
        rows, columns = np.divmod(np.arange(self.patch_count), self.columns)
        inset_u, inset_v = margin * patch_width, margin * patch_height
        u0 = (columns * (patch_width + self.gap_mm) + inset_u) / width
        v0 = (rows * (patch_height + self.gap_mm) + inset_v) / height
        u1 = (columns * (patch_width + self.gap_mm) + patch_width - inset_u) / width
        v1 = (rows * (patch_height + self.gap_mm) + patch_height - inset_v) / height
        return np.stack([u0, v0, u1, v1], axis=1)

    def grid_corners_mm(self) -> NDArray[np.float64]:
        """The patch grid's corners on the chart body, patch-0-first clockwise, in mm."""
        x0, y0 = self.grid_origin_mm
        width, height = self.grid_mm
        return np.array([[x0, y0], [x0 + width, y0], [x0 + width, y0 + height], [x0, y0 + height]])


LAYOUTS: dict[str, ChartLayout] = {
    "classic24": ChartLayout("classic24", 4, 6, patch_mm=40.0, gap_mm=4.0, outer_mm=(279.4, 215.9)),
    "digital_sg": ChartLayout("digital_sg", 10, 14, patch_mm=15.0, gap_mm=2.0, outer_mm=(279.4, 215.9)),
}
"""Physical layouts. The ColorChecker Digital SG is a letter-size card (8.5 × 11 in, 215.9 × 279.4 mm)
carrying 140 patches in 14 columns (A–N) by 10 rows (1–10), the ring of patches along the edge
alternating white, grey and black to show uneven lighting (pictocolor.com, "About the ColorChecker SG
chart"; MacDonald, "An Introduction to Colour Measurement", tutorial notes, p. 17). X-Rite gives the
patches as about 1.5 cm square; the 2 mm of dark body between them is an estimate from photographs
of the chart, and the grid is taken as centred on the card (236 × 168 mm, leaving the printed row and
column labels room on every side)."""
NANO_LAYOUT = ChartLayout(
    "classic24_nano", 4, 6, patch_mm=2.5, gap_mm=1.0, outer_mm=(23.7, 14.7), patch_height_mm=2.0
)
"""The ColorChecker Nano: the Classic 24's colours on a small card, its patches wider than tall with
gaps nearly half a patch wide. No drawing of the card is published, so the proportions are measured
on a frontal photograph of one (patches 37.5 × 30 px, gaps 15 px both ways, card 355 × 220 px) and
given in units of the gap: only the proportions matter for finding the grid."""
LAYOUT_VARIANTS: dict[str, tuple[ChartLayout, ...]] = {"classic24": (NANO_LAYOUT,)}
"""Other physical layouts of a chart type's patches, same colours in the same order: a box that does
not fit the chart type's own layout well is fitted again with each of these."""
UNIT_SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def chart_layout(chart_key: str) -> ChartLayout:
    """The layout of a chart type; ArUco-framed charts use the layout of the chart inside the frame."""
    return LAYOUTS[chart_spec(chart_key).key]


def homography_from_points(source: NDArray[np.floating], target: NDArray[np.floating]) -> NDArray[np.float64]:
    """The 3×3 homography taking four source points to four target points, in float64.

    (OpenCV's version works in float32, too coarse for fitting corners by finite differences.)
    """
    src = np.asarray(source, dtype=np.float64).reshape(4, 2)
    dst = np.asarray(target, dtype=np.float64).reshape(4, 2)
    system = np.zeros((8, 8))
    rhs = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        system[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        system[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        rhs[2 * i], rhs[2 * i + 1] = u, v
    solution = np.linalg.solve(system, rhs)
    return np.append(solution, 1.0).reshape(3, 3)


def chart_homography(corners: NDArray[np.floating]) -> NDArray[np.float64]:
    """3×3 homography from chart-normalised coordinates to image pixels."""
    return homography_from_points(UNIT_SQUARE, corners)


def map_points(homography: NDArray[np.float64], points: NDArray[np.floating]) -> NDArray[np.float64]:
    """Apply a homography to (N, 2) points."""
    array = np.asarray(points, dtype=np.float64)
    flat = array.reshape(-1, 2)
    projected = flat @ homography[:, :2].T + homography[:, 2]
    mapped = projected[:, :2] / projected[:, 2:3]
    return np.asarray(mapped.reshape(array.shape), dtype=np.float64)


def layout_patch_quads(
    layout: ChartLayout, corners: NDArray[np.floating], margin: float = 0.25
) -> NDArray[np.float64]:
    """(N, 4, 2) image quads of each patch's central region, each clockwise from its top-left."""
    u0, v0, u1, v1 = layout.patch_rects(margin).T
    normalised = np.stack(
        [np.stack([u0, v0], 1), np.stack([u1, v0], 1), np.stack([u1, v1], 1), np.stack([u0, v1], 1)], axis=1
    )
    return map_points(chart_homography(corners), normalised)


def patch_quads(chart_key: str, corners: NDArray[np.floating], margin: float = 0.25) -> NDArray[np.float64]:
    """(N, 4, 2) image quads of each patch's central region of a known chart type."""
    return layout_patch_quads(chart_layout(chart_key), corners, margin)


def patch_centres(chart_key: str, corners: NDArray[np.floating]) -> NDArray[np.float64]:
    """(N, 2) image position of each patch's centre."""
    rects = chart_layout(chart_key).patch_rects()
    centres = np.stack([(rects[:, 0] + rects[:, 2]) / 2, (rects[:, 1] + rects[:, 3]) / 2], axis=1)
    return map_points(chart_homography(corners), centres)


def patch_side_px(chart_key: str, corners: NDArray[np.floating]) -> float:
    """Median side of the chart's patches in the image, in pixels (square root of each area)."""
    return layout_patch_side_px(chart_layout(chart_key), corners)


def layout_patch_side_px(layout: ChartLayout, corners: NDArray[np.floating]) -> float:
    """Median side of the layout's patches in the image, in pixels (square root of each area)."""
    quads = layout_patch_quads(layout, corners, margin=0.0)
    x, y = quads[..., 0], quads[..., 1]
    areas = 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))
    return float(np.median(np.sqrt(areas)))
