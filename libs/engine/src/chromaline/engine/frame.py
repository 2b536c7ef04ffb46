"""A printable page with four ArUco markers that frames a Classic 24 chart.

The user prints the page at true size and lays the chart in the outlined rectangle; the
markers are far easier to find than the chart itself, and their homography gives the chart's
position on the page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

MM_PER_INCH = 25.4


def _centred_chart(
    page_mm: tuple[float, float], chart_mm: tuple[float, float]
) -> tuple[float, float, float, float]:
    return ((page_mm[0] - chart_mm[0]) / 2, (page_mm[1] - chart_mm[1]) / 2, chart_mm[0], chart_mm[1])


@dataclass(frozen=True)
class FrameSpec:
    """Geometry of the frame page, all lengths in mm from the page's top-left corner."""

    dictionary: int = cv2.aruco.DICT_4X4_50
    marker_ids: tuple[int, int, int, int] = (0, 1, 2, 3)
    """Markers at the top-left, top-right, bottom-right and bottom-left of the page."""
    marker_mm: float = 40.0
    margin_mm: float = 12.0
    """Distance from the page edge to the markers (the quiet zone is white paper)."""
    page_mm: tuple[float, float] = (420.0, 297.0)
    """A3 landscape."""
    chart_mm: tuple[float, float] = (279.4, 215.9)
    """Outer size of a ColorChecker Classic 24."""
    chart_rect_mm: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))
    """x, y, width, height of the chart's place; centred on the page when left at zero."""

    def __post_init__(self) -> None:
        if self.chart_rect_mm[2] <= 0:
            object.__setattr__(self, "chart_rect_mm", _centred_chart(self.page_mm, self.chart_mm))

    def marker_origin_mm(self, position: int) -> tuple[float, float]:
        """Top-left corner of the marker at ``position`` (0 TL, 1 TR, 2 BR, 3 BL)."""
        far_x = self.page_mm[0] - self.margin_mm - self.marker_mm
        far_y = self.page_mm[1] - self.margin_mm - self.marker_mm
        near = self.margin_mm
        return [(near, near), (far_x, near), (far_x, far_y), (near, far_y)][position]

    def marker_corners_mm(self, position: int) -> NDArray[np.float64]:
        """The marker's four corners in ArUco order (clockwise from its top-left), in mm."""
        x, y = self.marker_origin_mm(position)
        size = self.marker_mm
        return np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]])

    def chart_corners_mm(self) -> NDArray[np.float64]:
        """The chart body's corners, clockwise from the top-left, in mm."""
        x, y, width, height = self.chart_rect_mm
        return np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]])


def _marker_image(spec: FrameSpec, marker_id: int, side_px: int) -> NDArray[np.uint8]:
    dictionary = cv2.aruco.getPredefinedDictionary(spec.dictionary)
    return np.asarray(cv2.aruco.generateImageMarker(dictionary, marker_id, side_px), dtype=np.uint8)


def render_frame_image(spec: FrameSpec, dpi: float) -> NDArray[np.uint8]:
    """The page as an 8-bit grey image (white paper, black markers, chart outline) at ``dpi``."""
    px_per_mm = dpi / MM_PER_INCH
    width = round(spec.page_mm[0] * px_per_mm)
    height = round(spec.page_mm[1] * px_per_mm)
    page = np.full((height, width), 255, dtype=np.uint8)
    for position, marker_id in enumerate(spec.marker_ids):
        x, y = spec.marker_origin_mm(position)
        side = round(spec.marker_mm * px_per_mm)
        left, top = round(x * px_per_mm), round(y * px_per_mm)
        page[top : top + side, left : left + side] = _marker_image(spec, marker_id, side)
    corners = np.round(spec.chart_corners_mm() * px_per_mm).astype(np.int32)
    cv2.polylines(page, [corners], isClosed=True, color=0, thickness=max(1, round(0.5 * px_per_mm)))
    return page


def render_frame_pdf(spec: FrameSpec) -> bytes:
    """The page as a true-size PDF (print at 100 %, no fitting to the paper).

    matplotlib (the engine's ``frame-pdf`` extra) is imported here, so that detecting a frame
    does not load it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    page_w, page_h = spec.page_mm
    figure = plt.figure(figsize=(page_w / MM_PER_INCH, page_h / MM_PER_INCH))
    try:
        axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
        axes.set_xlim(0, page_w)
        axes.set_ylim(page_h, 0)
        axes.set_axis_off()
        for position, marker_id in enumerate(spec.marker_ids):
            x, y = spec.marker_origin_mm(position)
            marker = _marker_image(spec, marker_id, 6 * 60)
            axes.imshow(
                marker,
                cmap="gray",
                vmin=0,
                vmax=255,
                interpolation="nearest",
                extent=(x, x + spec.marker_mm, y + spec.marker_mm, y),
            )
        chart_x, chart_y, chart_w, chart_h = spec.chart_rect_mm
        axes.add_patch(Rectangle((chart_x, chart_y), chart_w, chart_h, fill=False, linewidth=1.0))
        axes.text(
            page_w / 2,
            chart_y - 4,
            "Place the ColorChecker Classic 24 here, dark skin patch top-left. Print at 100 %.",
            ha="center",
            va="bottom",
            fontsize=9,
        )
        axes.set_xlim(0, page_w)
        axes.set_ylim(page_h, 0)
        pdf = io.BytesIO()
        figure.savefig(pdf, format="pdf")
        return pdf.getvalue()
    finally:
        plt.close(figure)
