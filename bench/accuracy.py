"""Scoring a pipeline's output the same way whatever the pipeline.

Every pipeline hands back the patch centres it found and its corrected image as 8-bit sRGB. A
detection is *correct* when every patch centre it reports lies within ``CENTRE_TOLERANCE`` patch
pitches of the true centre, i.e. inside its own patch (a patch is 40/44 of a pitch wide), so a
chart found upside down, or a grid shifted by one patch, fails.
ΔE2000 is measured on a square window around each patch centre: the window's pixels are
linearised, averaged, converted to Lab and compared with the chart's published reference using
:mod:`chromaline.engine.metrics`, for our output and the peers' alike. The held-out chart (a
ColorChecker Digital SG photographed under the same conditions) is measured the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chromaline.engine.geometry import chart_layout
from chromaline.engine.image_io import srgb_decode
from chromaline.engine.metrics import ChartReference, delta_e, working_rgb_to_lab

CENTRE_TOLERANCE = 0.4
"""Largest allowed centre error, as a fraction of the distance between neighbouring patches."""
WINDOW_FRACTION = 0.2
"""Half-side of the sampling window, as a fraction of the patch pitch (patches are ~0.9 pitch wide)."""
CHART = "classic24"
HELD_OUT_CHART = "digital_sg"
"""The chart a pipeline's correction is checked on without having been fitted to it."""

CorrectImage = Callable[[NDArray[np.uint8]], NDArray[np.uint8]]
"""A pipeline's fitted correction applied to another (H, W, 3) 8-bit sRGB photo."""


@dataclass(frozen=True)
class PipelineOutcome:
    """What one pipeline made of one photo."""

    pipeline: str
    centres: NDArray[np.float64] | None
    """(24, 2) patch centres in reference order, full-resolution pixels; None when nothing was found."""
    corrected: NDArray[np.uint8] | None
    """(H, W, 3) corrected RGB, 8-bit sRGB; None when nothing was found."""
    seconds: float
    note: str = ""
    correct_other: CorrectImage | None = None
    """The same fitted correction, for another photo taken under the same conditions."""

    @property
    def detected(self) -> bool:
        return self.centres is not None and self.corrected is not None


def patch_pitch(centres: NDArray[np.float64], chart: str = CHART) -> float:
    """Distance between horizontally neighbouring patch centres."""
    layout = chart_layout(chart)
    rows = centres.reshape(layout.rows, layout.columns, 2)
    return float(np.median(np.linalg.norm(np.diff(rows, axis=1), axis=2)))


def centre_error(found: NDArray[np.float64], truth: NDArray[np.float64]) -> float:
    """Largest patch-centre error, in patch pitches."""
    return float(np.linalg.norm(found - truth, axis=1).max() / patch_pitch(truth))


def detection_correct(found: NDArray[np.float64] | None, truth: NDArray[np.float64]) -> bool:
    return found is not None and found.shape == truth.shape and centre_error(found, truth) <= CENTRE_TOLERANCE


def sample_linear(
    rgb8: NDArray[np.uint8], centres: NDArray[np.float64], chart: str = CHART
) -> NDArray[np.float64]:
    """(N, 3) mean linear RGB of a window around each centre."""
    half = max(1, round(WINDOW_FRACTION * patch_pitch(centres, chart)))
    height, width = rgb8.shape[:2]
    means = np.zeros((len(centres), 3))
    for index, (x, y) in enumerate(centres):
        left, top = max(round(x) - half, 0), max(round(y) - half, 0)
        right, bottom = min(round(x) + half + 1, width), min(round(y) + half + 1, height)
        window = rgb8[top:bottom, left:right].reshape(-1, 3).astype(np.float64) / 255.0
        means[index] = srgb_decode(window).mean(axis=0) if len(window) else np.nan
    return means


def chart_delta_e2000(
    rgb8: NDArray[np.uint8], centres: NDArray[np.float64], reference: ChartReference
) -> NDArray[np.float64]:
    """Per-patch ΔE2000 of the image at ``centres`` against the chart reference."""
    lab = working_rgb_to_lab(sample_linear(rgb8, centres, reference.chart_type), reference.white_xy)
    return delta_e(reference.lab, lab, "CIE 2000")


def reference_chart(chart: str = CHART) -> ChartReference:
    return ChartReference.for_chart(chart, "2014")
