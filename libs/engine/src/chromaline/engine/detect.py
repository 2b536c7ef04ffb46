"""Finding colour charts in a photo.

OpenCV's ``mcc`` detector (for framed charts, four ArUco markers; for the Digital SG, the lattice of
its patches) finds charts on a downscaled 8-bit copy. Its corners are only approximate, so they are
refined at full resolution by fitting the chart homography to the edges of every patch, and the
corner order is rotated so that the sampled colours best match the chart's reference colours (a
chart upside down or on its side still yields patches in reference order).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.engine.charts import chart_spec, reference_linear_rgb
from chromaline.engine.frame import FrameSpec
from chromaline.engine.geometry import (
    LAYOUT_VARIANTS,
    UNIT_SQUARE,
    ChartLayout,
    chart_homography,
    chart_layout,
    layout_patch_quads,
    map_points,
)
from chromaline.engine.grid import PatchSquares, grid_boxes
from chromaline.engine.image_io import DecodedImage, shown_pixels, srgb_decode

MCC_TYPES = {"classic24": cv2.mcc.MCC24}
"""Charts found by ``mcc``'s chart model, then, where it finds none, by their patch lattice too
(``grid.py``): mcc misses a tiny card (a Passport whose patches are about 15 px in a 5.7 MP photo)
on some exposures and noise, and the lattice, sharing the squares the Digital SG's search found on
the same image, leaves the time of a search that finds nothing about as it was."""
GRID_TYPES = frozenset({"digital_sg"})
"""Charts found by their patch lattice (``grid.py``): ``mcc``'s SG140 model misfits about a third of
SG charts and takes seconds on each photo, the lattice finds them in well under a second."""
AUTO_ORDER = ("digital_sg", "classic24", "aruco_classic24")
MIN_PATCH_PX = 5.0
"""A chart whose patches are smaller than this (full resolution) cannot be measured."""
SMALL_GRID_PX = 60.0
"""A chart whose patch grid is shorter than this on its short side is refined and scored on an
enlarged crop: on the 6-pixel patches of the annotated tobacco-leaf card, the edge walks at native
resolution step over the one-pixel gaps (box error 6 % of the diagonal, grid regularity 0.40);
enlarged three times, the same search lands within 3 % (regularity: :data:`MIN_EDGE_TOLERANCE_PX`)."""
MAX_ENLARGEMENT = 4
REDUCED_PATCH_PX = 40.0
"""A chart whose patches are at least twice this wide, and on whose patch sides the fit at full
resolution found fewer edges than :data:`MIN_EDGE_COVERAGE`, is fitted again on a copy reduced by
a whole number until they are about this wide, then refined at full resolution from there. The
edge walks look for a strong step per pixel: a chart blurred over ten or more pixels of a 12 MP
photo (out of focus, shaken) shows a few of its sides at full resolution, found too far inside the
patches, and the fit drifts (a blurred Passport on the annotated bean photo: 5.5 % of the diagonal
off, at confidence 0.77); on the reduced copy the same sides are sharp steps again (1.2 % off)."""
MIN_EDGE_COVERAGE = 0.8
"""Share of the patch sides on which the full-resolution fit must find an edge to be kept without
the reduced copy's fit: 0.89 to 1 on the annotated photos, 0.27 to 0.7 on most of them blurred by
4 to 8 % of a patch. A sharp chart, the usual case, pays nothing more."""
POLISH_MAX_MOVE = 0.2
"""Largest corner move, as a share of a patch, of the full-resolution refinement that follows a
fit on a reduced copy (:data:`REDUCED_PATCH_PX`). On the annotated photos it moves sharp charts'
corners by 0.04 to 0.12 of a patch; on the same photos blurred by 4 to 8 % of a patch, by 0.35 to
1 patch, away from the annotation."""
CLIPPED_LINEAR = 0.85
"""A patch whose brightest channel is this bright (linear) is washed out in that channel: a
saturated yellow clips in red and green long before it turns white. A well exposed chart has only
a few such patches."""
MAX_CLIPPED_PATCH_SHARE = 0.75
"""A chart found with more than this share of its patches clipped is refused as ``overexposed``:
below it, the fit leaves the clipped patches out and the report flags them."""
BLACK_LINEAR = 0.002
CLIPPED_REGION_SHARE = 0.04
"""When no chart is found and one area this large (share of the photo) is clipped to white, the
answer is ``overexposed``: a chart in the glare is the likely reason (a chart at the usual framing
covers a few percent of the photo or more)."""
MIN_AGREEMENT = 0.5
"""Below this colour agreement the sampled colours do not look like the chart at all: the box is
not even offered as a candidate."""
MANUAL_MIN_AGREEMENT = 0.6
"""Corners given by hand must enclose colours agreeing this well with the chart: on the 30
annotated real photos the annotated corners score 0.88 or more (the chart blown out by a lamp,
0.29), quads of the same size placed elsewhere in the same photos at most 0.43."""
HAND_MARKED_VARIANT_MARGIN = 0.1
"""How much more regular a variant layout's grid must be inside hand-marked corners to be chosen
over the chart type's own (:func:`_fitted_hand_marked`)."""
HAND_MARKED_MAX_MOVE = 0.05
"""Corners given by hand are fitted to the patch edges only within this share of the grid diagonal
(on average per corner): the error a detection may have and still be right."""
MIN_CONFIDENCE = 0.75
"""Below this confidence (:func:`detection_confidence`) a box is not reported as found: the
detection answers ``low_confidence`` and offers the box for the user to confirm. On the 30
annotated real photos of the benchmark, every box reported is within 5 % of the annotated corners,
at 0.80 to 0.96, and finder boxes offered up to 15 % of the grid off around the two smallest or
oddest cards (the tobacco-leaf card, the Nano) never come back as a box 5 % or more off."""
MIN_HUE_ORDER = 0.77
"""Below this hue-order score (:func:`hue_order_score`) the patches of a Classic-24-shaped card are
not the Classic 24's colours: the detection answers ``unknown_chart`` rather than correct towards
colours the card does not carry. At the annotated corners of the 28 real Classic 24 photos whose
chart is not blown out, the score is 0.876 to 0.987; a card in the same layout carrying 24 colours of
the Preferred Memory Colour chart (Luo 2024, as published in colour-science's ``SDS_COLOURCHECKERS
["PMC"]``, with its six greys in the Classic's grey row) scores 0.48."""
MIN_HUE_PATCHES = 12
"""With fewer patches neither clipped nor black, the hue order is not judged (the exposure is)."""
CLASSIC_LAYOUT = "classic24"
"""Charts whose colours the hue-order score checks (the Classic 24 and its framed variant)."""
NEUTRAL_CHROMA = 0.15
"""Reference patches with less log-opponent chroma than this are the chart's greys."""
MIN_EDGES = 12
"""Fewer patch edges than this say nothing about the grid."""
SURE_CONFIDENCE = 0.9
"""A box fitted with the chart type's own layout this confidently is not fitted with its variant
layouts too (:func:`_best_layout_fit`)."""
EDGE_TOLERANCE = 0.15
"""A patch side counts as found where the edge lies within this share of a patch of it..."""
MIN_EDGE_TOLERANCE_PX = 1.5
"""...or within this many pixels of the photo: a side of a small chart enlarged for the fit
(:data:`SMALL_GRID_PX`) is blurred over a pixel or two of the photo, whatever the enlargement. On
the 6-pixel patches of the annotated tobacco-leaf card, the edges found around the refined box lie
a median 0.6 px of the photo from their sides and 80 % within 1.1 px, so a tolerance of 0.15 of a
patch (0.9 px) counted only 0.68 of them; 1.5 px is still under a quarter of a patch there, and
under the 2.3 px (5 % of the grid's diagonal) that separates a right box from a wrong one."""


@dataclass(frozen=True)
class ChartDetection:
    chart_type: str
    corners: NDArray[np.float64]
    """(4, 2) full-resolution pixel corners of the patch grid, clockwise from the corner next to patch 0."""
    confidence: float
    orientation_degrees: int
    """Clockwise rotation of the chart in the image: 0 when patch 0 is top-left, 180 upside down."""
    layout: ChartLayout | None = None
    """Where the patches sit inside the corners when it is not the chart type's own layout (a
    ColorChecker Nano found as a Classic 24, :data:`LAYOUT_VARIANTS`); sampling follows it."""


@dataclass(frozen=True)
class DetectionOutcome:
    detections: list[ChartDetection]
    """Best first; empty when nothing usable was found."""
    reason: str | None
    """``no_chart``, ``chart_too_small``, ``overexposed``, ``underexposed``, ``low_confidence`` or
    ``unknown_chart`` when empty."""
    message: str
    candidate: ChartDetection | None = None
    """When nothing is reported as found: the best box seen, for the user to confirm or reject."""


# ---------------------------------------------------------------------------------------------
# Image preparation


def encoded_rgb8(image: DecodedImage | NDArray[np.generic]) -> NDArray[np.uint8]:
    """8-bit RGB view of encoded pixels or a decoded image (16-bit data keeps its high byte)."""
    pixels = image.pixels if isinstance(image, DecodedImage) else np.asarray(image)
    if pixels.dtype == np.uint16:
        return np.asarray(pixels >> 8, dtype=np.uint8)
    if pixels.dtype != np.uint8:
        raise TypeError("chart detection needs encoded 8- or 16-bit RGB pixels")
    return np.asarray(pixels, dtype=np.uint8)


def _shown_rgb8(image: DecodedImage | NDArray[np.generic], rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The 8-bit view whose colours are compared with the chart's: ``rgb`` itself, except for a RAW
    file, whose camera RGB is shown as the camera would show it (:func:`shown_pixels`). Edges and
    grids are found on ``rgb``: the raw codes are less noisy."""
    if not isinstance(image, DecodedImage) or image.display_matrix is None:
        return rgb
    return encoded_rgb8(shown_pixels(image))


def downscale(rgb: NDArray[np.uint8], max_side: int) -> tuple[NDArray[np.uint8], float]:
    """A copy whose long side is at most ``max_side``, and the factor from it to full resolution.

    Large photos shrink by a whole number (from 3 up): OpenCV averages whole blocks of pixels
    many times faster than fractional areas (3 ms instead of 60 on 12 MP), leaving out the last
    rows and columns that do not fill a block. Smaller ones keep the exact ``max_side``.
    """
    height, width = rgb.shape[:2]
    factor = max(height, width) / max_side
    if factor <= 1.0:
        return rgb, 1.0
    if factor > 2.0 and min(height, width) >= np.ceil(factor):
        blocks = int(np.ceil(factor))
        size = (width // blocks, height // blocks)
        whole_blocks = rgb[: size[1] * blocks, : size[0] * blocks]
        small = cv2.resize(whole_blocks, size, interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.uint8), float(blocks)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), width / size[0]


# ---------------------------------------------------------------------------------------------
# Corner refinement: fit the homography to the edges of all patches


@dataclass(frozen=True)
class _EdgeSamples:
    chart_points: NDArray[np.float64]
    """(M, 2) points on patch sides in chart-normalised coordinates."""
    chart_normals: NDArray[np.float64]
    """(M, 2) outward normal of each side, chart-normalised (unit in mm terms)."""


@dataclass(frozen=True)
class _EdgeFits:
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    """Two chart-normalised points along each found edge's side, to form the side line."""
    found: NDArray[np.float64]
    """(M, 2) image position of the edge found along each side's normal."""


@dataclass(frozen=True)
class _EdgeWalks:
    samples: _EdgeSamples
    tangents: NDArray[np.float64]
    """(M, 2) direction of each side in chart-normalised coordinates."""
    reach: NDArray[np.float64]
    """(M,) half a patch along each side's normal, chart-normalised."""
    steps: NDArray[np.float64]
    """Positions along each walk, in units of ``reach`` from the side."""
    along: NDArray[np.float64]
    """(M, len(steps), 2) chart-normalised points of every walk."""


@lru_cache(maxsize=8)
def _edge_walks(layout: ChartLayout, per_side: int = 4) -> _EdgeWalks:
    """Points along every patch side and the walks across them: fixed per layout, so made once."""
    rects = layout.patch_rects()
    fractions = (np.arange(per_side) + 0.5) / per_side * 0.7 + 0.15
    points, normals, tangents = [], [], []
    for u0, v0, u1, v1 in rects:
        for f in fractions:
            u = u0 + f * (u1 - u0)
            v = v0 + f * (v1 - v0)
            points += [(u, v0), (u1, v), (u, v1), (u0, v)]
            normals += [(0, -1), (1, 0), (0, 1), (-1, 0)]
            tangents += [(1, 0), (0, 1), (1, 0), (0, 1)]
    samples = _EdgeSamples(np.array(points), np.array(normals, dtype=np.float64))
    width_mm, height_mm = layout.grid_mm
    patch_width, patch_height = layout.patch_size_mm
    half_patch = np.array([patch_width / width_mm, patch_height / height_mm]) / 2
    reach = np.abs(samples.chart_normals) @ half_patch
    steps = np.linspace(-1.0, 0.9, 96)
    along = samples.chart_points[:, None, :] + samples.chart_normals[:, None, :] * (
        reach[:, None, None] * steps[None, :, None]
    )
    return _EdgeWalks(samples, np.array(tangents, dtype=np.float64), reach, steps, along)


def _find_edges(
    grey: NDArray[np.float32], layout: ChartLayout, corners: NDArray[np.float64], offset: NDArray[np.float64]
) -> _EdgeFits:
    """Walk from each patch's centre outwards along every side's normal to the first strong edge."""
    walks = _edge_walks(layout)
    samples, tangents, reach, steps, along = (
        walks.samples,
        walks.tangents,
        walks.reach,
        walks.steps,
        walks.along,
    )
    homography = chart_homography(corners - offset)
    image_points = (
        cv2.perspectiveTransform(along.reshape(-1, 1, 2), homography).reshape(along.shape).astype(np.float32)
    )
    profiles = cv2.remap(grey, image_points[..., 0], image_points[..., 1], cv2.INTER_LINEAR, borderValue=-1.0)
    step_px = np.linalg.norm(np.diff(image_points, axis=1), axis=2)
    gradient = np.abs(np.diff(profiles, axis=1)) / np.maximum(step_px, 1e-6)
    strength = gradient.max(axis=1)
    strong = gradient >= 0.5 * strength[:, None]
    first = np.argmax(strong, axis=1)
    rows = np.arange(len(first))
    usable = (strength > 3.0) & (first > 0) & (first < gradient.shape[1] - 1) & (profiles.min(axis=1) >= 0)
    # Climb to the local maximum after the first strong step, then interpolate it.
    peak = first.copy()
    for _ in range(4):
        nxt = np.minimum(peak + 1, gradient.shape[1] - 1)
        peak = np.where(gradient[rows, nxt] > gradient[rows, peak], nxt, peak)
    left = gradient[rows, np.maximum(peak - 1, 0)]
    centre = gradient[rows, peak]
    right = gradient[rows, np.minimum(peak + 1, gradient.shape[1] - 1)]
    denominator = left - 2 * centre + right
    shift = np.divide(
        0.5 * (left - right), denominator, out=np.zeros_like(denominator), where=np.abs(denominator) > 1e-6
    )
    position = np.clip(peak + 0.5 + np.clip(shift, -0.5, 0.5), 0, len(steps) - 1)
    t = np.interp(position, np.arange(len(steps)), steps)
    chart_found = samples.chart_points + samples.chart_normals * (reach * t)[:, None]
    found = map_points(homography, chart_found) + offset
    a = samples.chart_points[usable]
    b = a + tangents[usable] * 0.01
    return _EdgeFits(a, b, found[usable])


def _unit_square_homographies(corners: NDArray[np.float64]) -> NDArray[np.float64]:
    """(K, 3, 3) homographies from the unit square to each of K quads (K, 4, 2), solved together."""
    count = len(corners)
    system = np.zeros((count, 8, 8))
    rhs = corners.reshape(count, 8)
    for i, (x, y) in enumerate(UNIT_SQUARE):
        u, v = corners[:, i, 0], corners[:, i, 1]
        system[:, 2 * i, :3] = (x, y, 1.0)
        system[:, 2 * i + 1, 3:6] = (x, y, 1.0)
        system[:, 2 * i, 6], system[:, 2 * i, 7] = -u * x, -u * y
        system[:, 2 * i + 1, 6], system[:, 2 * i + 1, 7] = -v * x, -v * y
    solution = np.linalg.solve(system, rhs[..., None])[..., 0]
    return np.concatenate([solution, np.ones((count, 1))], axis=1).reshape(count, 3, 3)


def _map_batch(homographies: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """(K, M, 2) images of (M, 2) points under K homographies.

    Written out element by element rather than as matrix products: this stays off BLAS, whose
    threads keep spinning after a call and slow the OpenCV work that follows.
    """
    h = homographies[:, None, :, :]
    x, y = points[None, :, 0], points[None, :, 1]
    denominator = h[..., 2, 0] * x + h[..., 2, 1] * y + h[..., 2, 2]
    u = (h[..., 0, 0] * x + h[..., 0, 1] * y + h[..., 0, 2]) / denominator
    v = (h[..., 1, 0] * x + h[..., 1, 1] * y + h[..., 1, 2]) / denominator
    return np.stack([u, v], axis=-1)


def _side_residuals(params: NDArray[np.float64], fits: _EdgeFits) -> NDArray[np.float64]:
    """(K, M) signed distances of the found edges from the patch sides under K corner sets (K, 8)."""
    homographies = _unit_square_homographies(params.reshape(-1, 4, 2))
    a = _map_batch(homographies, fits.a)
    b = _map_batch(homographies, fits.b)
    direction = b - a
    direction /= np.linalg.norm(direction, axis=2, keepdims=True)
    delta = fits.found[None] - a
    return np.asarray(direction[..., 0] * delta[..., 1] - direction[..., 1] * delta[..., 0], dtype=np.float64)


def _residuals_and_jacobian(
    params: NDArray[np.float64], fits: _EdgeFits
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The residuals and their forward-difference Jacobian (M, 8), all nine evaluations in one batch."""
    steps = np.sqrt(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(params))
    shifted = params[None] + np.diag(steps)
    residuals = _side_residuals(np.concatenate([params[None], shifted]), fits)
    jacobian = ((residuals[1:] - residuals[0]) / steps[:, None]).T
    return residuals[0], np.asarray(jacobian, dtype=np.float64)


def _soft_l1_cost(residuals: NDArray[np.float64], scale: float) -> float:
    return float(np.sum(2.0 * (np.sqrt(1.0 + (residuals / scale) ** 2) - 1.0)))


def _fit_corners(
    corners: NDArray[np.float64], fits: _EdgeFits, scale: float, max_steps: int = 30
) -> NDArray[np.float64]:
    """Corners minimising the soft-L1 cost of the side residuals: Gauss-Newton on reweighted
    residuals (weights 1/sqrt(1 + (r/scale)²)), halving any step that raises the cost."""
    params = corners.ravel().copy()
    residuals, jacobian = _residuals_and_jacobian(params, fits)
    cost = _soft_l1_cost(residuals, scale)
    for _ in range(max_steps):
        weights = 1.0 / np.sqrt(1.0 + (residuals / scale) ** 2)
        normal = np.einsum("mi,mj->ij", jacobian * weights[:, None], jacobian)
        gradient = np.einsum("mi,m->i", jacobian, weights * residuals)
        step = np.linalg.lstsq(normal, -gradient, rcond=None)[0]
        for _ in range(10):
            trial = params + step
            trial_residuals = _side_residuals(trial[None], fits)[0]
            trial_cost = _soft_l1_cost(trial_residuals, scale)
            if trial_cost <= cost:
                break
            step = step / 2
        else:
            break
        params = trial
        converged = cost - trial_cost <= 1e-8 * max(cost, 1.0) or float(np.abs(step).max()) < 1e-3
        cost = trial_cost
        if converged:
            break
        residuals, jacobian = _residuals_and_jacobian(params, fits)
    return params.reshape(4, 2)


def _crop_bounds(
    rgb: NDArray[np.uint8], corners: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The top-left and bottom-right (exclusive) pixel of the part of the photo around ``corners``:
    a tenth of the chart's span beyond them."""
    height, width = rgb.shape[:2]
    span = np.ptp(corners, axis=0)
    low = np.maximum(np.floor(corners.min(axis=0) - 0.1 * span), 0).astype(np.int64)
    high = np.minimum(np.ceil(corners.max(axis=0) + 0.1 * span), [width, height]).astype(np.int64)
    return low, high


def _crop_around(
    rgb: NDArray[np.uint8], corners: NDArray[np.float64]
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """The part of the photo around ``corners`` (:func:`_crop_bounds`), and its top-left corner."""
    low, high = _crop_bounds(rgb, corners)
    return rgb[low[1] : high[1], low[0] : high[0]], low.astype(np.float64)


class BlurredLuma:
    """The blurred luma around a box of one photo, kept for the next box that lies within it.

    Refining a box and then scoring its grid each blurred the crop around it: two passes over a
    chart-sized part of the photo, about a tenth of a 12 MP photo's correction. The corners move
    little between the two, so the second is cut from the first (its border pixels then have their
    true neighbours instead of mirrored ones, four pixels deep: far from any patch side).
    """

    def __init__(self, rgb: NDArray[np.uint8]) -> None:
        self._rgb = rgb
        self._grey: NDArray[np.float32] | None = None
        self._low = np.zeros(2, dtype=np.int64)

    def around(self, corners: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        """The blurred luma of the crop around ``corners`` (:func:`_crop_around`) and its offset."""
        low, high = _crop_bounds(self._rgb, corners)
        grey = self._grey
        if grey is not None:
            start, stop = low - self._low, high - self._low
            if (start >= 0).all() and (stop <= [grey.shape[1], grey.shape[0]]).all():
                return grey[start[1] : stop[1], start[0] : stop[0]], low.astype(np.float64)
        self._grey = _blurred_luma(self._rgb[low[1] : high[1], low[0] : high[0]])
        self._low = low
        return self._grey, low.astype(np.float64)


REFINE_ITERATIONS = 3
"""Rounds of finding the patch edges and fitting the corners to them that a box usually needs..."""
MAX_REFINE_ITERATIONS = 8
"""...and the most a box still moving by more than :data:`UNSETTLED_SHARE` of a patch gets. A box
a finder placed a third of a patch off moves towards the chart by less than that in each round
while the walks from its misplaced patch centres find the wrong sides: on the DarSIA baseline
Passport (patches of 15 px) turned by 35°, three rounds left patch 1's corner 16 px away and the
box, scored 0.79, was reported; the rounds after brought it within 1.4 px."""
UNSETTLED_SHARE = 0.02


def refine_corners(
    rgb: NDArray[np.uint8],
    chart_type: str,
    corners: NDArray[np.float64],
    iterations: int = REFINE_ITERATIONS,
    *,
    layout: ChartLayout | None = None,
    luma: BlurredLuma | None = None,
) -> NDArray[np.float64]:
    """Fit the chart homography to the patch edges around approximate ``corners`` (full resolution),
    with the chart type's layout or another ``layout`` of its patches; ``luma`` is ``rgb``'s, to
    share with the grid's scoring. After ``iterations`` rounds, a box still moving by more than
    :data:`UNSETTLED_SHARE` of a patch gets more, up to :data:`MAX_REFINE_ITERATIONS`."""
    layout = chart_layout(chart_type) if layout is None else layout
    grey, offset = (luma or BlurredLuma(rgb)).around(corners)
    current = np.asarray(corners, dtype=np.float64)
    for done in range(1, max(iterations, MAX_REFINE_ITERATIONS) + 1):
        fits = _find_edges(grey, layout, current, offset)
        if len(fits.found) < MIN_EDGES:
            break
        patch_px = float(np.linalg.norm(current[1] - current[0])) / layout.columns
        fitted = _fit_corners(current, fits, max(1.0, 0.02 * patch_px))
        moved = float(np.abs(fitted - current).max())
        current = fitted
        if moved < 0.05 or (done >= iterations and moved <= UNSETTLED_SHARE * patch_px):
            break
    return current


def _blurred_luma(crop: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The 8-bit luma blurred straight into float32: GaussianBlur's float kernel (9 taps for σ = 1)
    without first converting the whole crop."""
    luma = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return np.asarray(cv2.sepFilter2D(luma, cv2.CV_32F, _LUMA_KERNEL, _LUMA_KERNEL), dtype=np.float32)


_LUMA_KERNEL = cv2.getGaussianKernel(9, 1.0, cv2.CV_32F)


@dataclass(frozen=True)
class _GridEdges:
    regularity: float
    """Share of the edges found that lie on the side the corners predict (:func:`grid_regularity`)."""
    coverage: float
    """Share of the patch sides walked across on which a strong edge was found at all."""


def _grid_edges(
    rgb: NDArray[np.uint8],
    chart_type: str,
    corners: NDArray[np.float64],
    layout: ChartLayout | None,
    min_tolerance_px: float,
    luma: BlurredLuma | None = None,
) -> _GridEdges:
    layout = chart_layout(chart_type) if layout is None else layout
    grey, offset = (luma or BlurredLuma(rgb)).around(corners)
    fits = _find_edges(grey, layout, corners, offset)
    coverage = len(fits.found) / len(_edge_walks(layout).samples.chart_points)
    if len(fits.found) < MIN_EDGES:
        return _GridEdges(0.0, coverage)
    patch_px = _patch_size_px(layout, corners)
    residuals = _side_residuals(corners.ravel()[None], fits)[0]
    in_place = np.abs(residuals) <= max(EDGE_TOLERANCE * patch_px, min_tolerance_px)
    return _GridEdges(float(np.mean(in_place)), coverage)


def grid_regularity(
    rgb: NDArray[np.uint8],
    chart_type: str,
    corners: NDArray[np.float64],
    *,
    layout: ChartLayout | None = None,
    min_tolerance_px: float = 0.0,
) -> float:
    """Share of the strong edges found near the chart's patch sides that lie on the side the
    corners predict (within :data:`EDGE_TOLERANCE` of a patch, and at least ``min_tolerance_px``):
    near 1 for a real chart, low for a box that only roughly covers one, or covers something else."""
    return _grid_edges(rgb, chart_type, corners, layout, min_tolerance_px).regularity


# ---------------------------------------------------------------------------------------------
# Orientation


def _patch_means(
    rgb: NDArray[np.uint8], chart_type: str, corners: NDArray[np.float64]
) -> NDArray[np.float64]:
    return layout_patch_means(rgb, chart_layout(chart_type), corners)


def layout_patch_means(
    rgb: NDArray[np.uint8], layout: ChartLayout, corners: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Mean linear colour of each patch's centre, sampled at its centre point and four neighbours."""
    quads = layout_patch_quads(layout, corners, margin=0.3)
    centres = quads.mean(axis=1)
    points = np.concatenate([centres[:, None, :], 0.5 * (quads + centres[:, None, :])], axis=1).reshape(-1, 2)
    height, width = rgb.shape[:2]
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    codes = rgb[ys, xs].astype(np.float64) / 255.0
    return np.asarray(srgb_decode(codes).reshape(len(quads), 5, 3).mean(axis=1), dtype=np.float64)


def colour_agreement(measured: NDArray[np.float64], reference: NDArray[np.float64]) -> float:
    """How well patch colours match the reference, whatever the exposure and white balance: the mean
    per-channel correlation of log values (a gain or a gamma only shifts or scales logs)."""
    eps = 1e-3
    scores = []
    for channel in range(3):
        m = np.log(np.maximum(measured[:, channel], 0.0) + eps)
        r = np.log(np.maximum(reference[:, channel], 0.0) + eps)
        if m.std() < 1e-6:
            return 0.0
        if r.std() < 1e-6:
            continue  # a channel the reference does not vary in says nothing (its correlation is NaN)
        scores.append(float(np.corrcoef(m, r)[0, 1]))
    return float(np.mean(scores)) if scores else 0.0


def _log_opponent(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 2) red-green and yellow-blue log-opponent coordinates of linear RGB colours."""
    logs = np.log(np.maximum(linear, 1e-4))
    return np.stack([logs[:, 0] - logs[:, 1], (logs[:, 0] + logs[:, 1]) / 2 - logs[:, 2]], axis=1)


def hue_order_score(
    measured: NDArray[np.float64], reference: NDArray[np.float64], usable: NDArray[np.bool_] | None = None
) -> float:
    """Share of pairs of coloured patches whose hues turn the same way (clockwise or not) in the
    photo as in the reference, once balanced on the greys: a gain, a white-balance error or a
    camera's mild channel mixing keeps the order of the hues around the circle, another card's
    colours do not. Only the ``usable`` patches (all by default) take part."""
    usable = np.ones(len(reference), dtype=bool) if usable is None else usable
    reference_opponent = _log_opponent(reference)
    neutral = np.hypot(reference_opponent[:, 0], reference_opponent[:, 1]) < NEUTRAL_CHROMA
    greys = neutral & usable if np.any(neutral & usable) else neutral
    measured_opponent = _log_opponent(measured)
    measured_opponent = measured_opponent - measured_opponent[greys].mean(axis=0)
    coloured = ~neutral & usable
    reference_hue = np.arctan2(reference_opponent[coloured, 1], reference_opponent[coloured, 0])
    measured_hue = np.arctan2(measured_opponent[coloured, 1], measured_opponent[coloured, 0])
    first, second = np.triu_indices(len(reference_hue), 1)
    turns_reference = np.sign(np.sin(reference_hue[first] - reference_hue[second]))
    turns_measured = np.sign(np.sin(measured_hue[first] - measured_hue[second]))
    return float(np.mean(turns_reference == turns_measured))


def orient_corners(
    rgb: NDArray[np.uint8],
    chart_type: str,
    corners: NDArray[np.float64],
    *,
    layout: ChartLayout | None = None,
) -> tuple[NDArray[np.float64], float]:
    """The cyclic rotation of ``corners`` whose sampled colours best match the reference, and its score."""
    layout = chart_layout(chart_type) if layout is None else layout
    reference = reference_linear_rgb(chart_type)
    best, best_score = corners, -np.inf
    for shift in range(4):
        candidate = np.roll(corners, -shift, axis=0)
        score = colour_agreement(layout_patch_means(rgb, layout, candidate), reference)
        if score > best_score:
            best, best_score = candidate, score
    return best, float(best_score)


def orientation_of(corners: NDArray[np.float64]) -> int:
    """Clockwise rotation of the chart, to the nearest quarter turn, from its first row's direction."""
    dx, dy = corners[1] - corners[0]
    return int(np.round(np.degrees(np.arctan2(dy, dx)) / 90.0)) % 4 * 90


def _is_clockwise(corners: NDArray[np.float64]) -> bool:
    x, y = corners[:, 0], corners[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) > 0


def _patch_size_px(layout: ChartLayout, corners: NDArray[np.float64]) -> float:
    quads = layout_patch_quads(layout, corners, margin=0.0)
    return float(np.sqrt(np.abs(cv2.contourArea(quads[0].astype(np.float32)))))


# ---------------------------------------------------------------------------------------------
# Finders


MCC_VARIANTS: tuple[dict[str, float], ...] = ({}, {"B0factor": 1.0}, {"adaptiveThreshConstant": 3.0})
"""mcc parameter sets tried in turn: its grid model sometimes misfits a chart that another set fits."""
QUICK_MCC: dict[str, float] = {
    "minImageSize": 1,
    "adaptiveThreshWinSizeMin": 7,
    "adaptiveThreshWinSizeMax": 47,
    "adaptiveThreshWinSizeStep": 8,
}
"""mcc on a quick preview (long side about 500): no enlarging to mcc's usual 1000-pixel short side,
which costs four times the work, and threshold windows shrunk with the image."""


MCC_MAX_ASPECT = 8.0
"""mcc enlarges an image until its short side is about 1000 px: a long strip (a 40 × 30000 photo's
working copy is 2 × 1578) would become gigabytes. Strips that long are left to the other finders."""


def _mcc_boxes(
    small_rgb: NDArray[np.uint8], chart_type: str, max_charts: int, variant: dict[str, float]
) -> list[NDArray[np.float64]]:
    short, long = sorted(small_rgb.shape[:2])
    if short < MIN_PHOTO_SIDE_PX or long > MCC_MAX_ASPECT * short:
        return []
    detector = cv2.mcc.CCheckerDetector_create()  # type: ignore[attr-defined]  # missing from the stubs
    detector.setColorChartType(MCC_TYPES[chart_type])
    parameters = cv2.mcc.DetectorParametersMCC()
    for name, value in variant.items():
        setattr(parameters, name, value)
    detector.setDetectionParams(parameters)
    bgr = np.ascontiguousarray(small_rgb[:, :, ::-1])
    if not detector.process(bgr, max_charts):
        return []
    return [
        np.asarray(checker.getBox(), dtype=np.float64).reshape(4, 2)
        for checker in detector.getListColorChecker()
    ]


def _grid_boxes(squares: PatchSquares, chart_type: str, max_charts: int) -> list[NDArray[np.float64]]:
    """The best placement of the chart over each patch lattice found among ``squares``, judged by
    colour."""
    boxes = []
    for placements in grid_boxes(squares, chart_layout(chart_type), max_charts):
        scored = [orient_corners(squares.rgb, chart_type, box) for box in placements]
        boxes.append(max(scored, key=lambda pair: pair[1])[0])
    return boxes


def _aruco_boxes(small_rgb: NDArray[np.uint8], spec: FrameSpec) -> list[NDArray[np.float64]]:
    """The Classic 24 grid's corners from the frame's marker homography (at least two markers)."""
    dictionary = cv2.aruco.getPredefinedDictionary(spec.dictionary)
    parameters = cv2.aruco.DetectorParameters()
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(dictionary, parameters)
    grey = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
    marker_corners, ids, _ = detector.detectMarkers(grey)
    if ids is None:
        return []
    page_points, image_points = [], []
    for quad, marker_id in zip(marker_corners, ids.ravel(), strict=True):
        if int(marker_id) in spec.marker_ids:
            position = spec.marker_ids.index(int(marker_id))
            page_points.append(spec.marker_corners_mm(position))
            image_points.append(np.asarray(quad, dtype=np.float64).reshape(4, 2))
    if len(page_points) < 2:
        return []
    homography, _ = cv2.findHomography(np.concatenate(page_points), np.concatenate(image_points))
    if homography is None:
        return []
    layout = chart_layout("aruco_classic24")
    chart_x, chart_y = spec.chart_rect_mm[:2]
    grid_on_page = layout.grid_corners_mm() + np.array([chart_x, chart_y])
    return [map_points(np.asarray(homography, dtype=np.float64), grid_on_page)]


def _overlaps(corners: NDArray[np.float64], others: list[ChartDetection]) -> bool:
    centre = corners.mean(axis=0)
    for other in others:
        contour = other.corners.astype(np.float32).reshape(-1, 1, 2)
        if cv2.pointPolygonTest(contour, (float(centre[0]), float(centre[1])), False) >= 0:
            return True
    return False


def _largest_clipped_share(small: NDArray[np.uint8]) -> float:
    """Share of the photo taken by its largest region clipped to white in every channel."""
    clipped = (small.min(axis=2) >= 250).astype(np.uint8)
    clipped = cv2.morphologyEx(clipped, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(clipped)
    if count <= 1:
        return 0.0
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / clipped.size


def _exposure_problem(rgb: NDArray[np.uint8]) -> tuple[str, str] | None:
    small, _ = downscale(rgb, 400)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    if np.mean(luma >= 250) > 0.4 or np.median(luma) >= 240:
        return "overexposed", "no chart found and the photo is overexposed (most pixels are at full scale)"
    clipped = _largest_clipped_share(small)
    if clipped >= CLIPPED_REGION_SHARE:
        return (
            "overexposed",
            f"no chart found, and {clipped:.0%} of the photo is one area clipped to white: "
            "a chart there cannot be measured (light it less, or move it out of the glare)",
        )
    if np.percentile(luma, 99) < 40:
        return (
            "underexposed",
            "no chart found and the photo is underexposed (almost all pixels are near black)",
        )
    return None


def _chart_exposure_problem(rgb: NDArray[np.uint8], detection: ChartDetection) -> tuple[str, str] | None:
    """A chart whose patches are mostly clipped or mostly black cannot be measured."""
    means = _patch_means(rgb, detection.chart_type, detection.corners)
    if np.mean(means.max(axis=1) >= CLIPPED_LINEAR) > MAX_CLIPPED_PATCH_SHARE:
        return (
            "overexposed",
            "the chart was found but most of its patches are clipped in at least one colour channel: "
            "expose less (or light the chart less) and send it again",
        )
    if np.mean(means.max(axis=1) <= BLACK_LINEAR) > 0.5:
        return "underexposed", "the chart was found but most of its patches are black"
    return None


def _candidate_boxes(
    small: NDArray[np.uint8], squares: PatchSquares, chart_type: str, max_charts: int
) -> Iterator[list[NDArray[np.float64]]]:
    """Successive sets of approximate chart boxes, from the most to the least likely finder settings."""
    if chart_type == "aruco_classic24":
        yield _aruco_boxes(small, FrameSpec())
    elif chart_type in GRID_TYPES or chart_type in MCC_TYPES:
        yield from _finder_boxes(small, squares, chart_type, max_charts, MCC_VARIANTS)
    else:
        raise ValueError(f"cannot detect charts of type {chart_type!r}")


def _finder_boxes(
    small: NDArray[np.uint8],
    squares: PatchSquares,
    chart_type: str,
    max_charts: int,
    mcc_settings: tuple[dict[str, float], ...],
) -> Iterator[list[NDArray[np.float64]]]:
    """The patch lattice's boxes for :data:`GRID_TYPES`; for :data:`MCC_TYPES`, mcc's with each of
    ``mcc_settings`` in turn, then the lattice's."""
    if chart_type in MCC_TYPES:
        for setting in mcc_settings:
            yield _mcc_boxes(small, chart_type, max_charts, setting)
    if chart_type in GRID_TYPES or chart_type in MCC_TYPES:
        yield _grid_boxes(squares, chart_type, max_charts)


@dataclass(frozen=True)
class CandidateSet:
    """Approximate boxes of one chart type from one finder setting, at full resolution."""

    chart_type: str
    boxes: list[NDArray[np.float64]]


def _full_resolution(chart_type: str, boxes: list[NDArray[np.float64]], factor: float) -> CandidateSet:
    """Boxes found on an image ``factor`` times smaller, in full-resolution pixel coordinates."""
    return CandidateSet(chart_type, [box * factor + (factor - 1) / 2 for box in boxes])


TILE_OVERLAP = 0.25
"""Share of a tile's side that overlaps its neighbour, so that a chart cut by one tile's edge lies
whole in the next (a chart under a quarter of the tile's side)."""
TILE_FINDER_SETTINGS: tuple[dict[str, float], ...] = (QUICK_MCC,)
"""mcc settings tried on each tile: the quick ones alone found every small chart of the annotated
real photos that mcc's defaults found, in about 40 % less time."""


ENLARGED_REDUCTION = 0.5
"""A photo no larger than the search copy is searched last enlarged twice, on tiles: mcc misses a
Classic 24 whose patches are about 10 px wide (a chart across the room in a photo of 1000 to 1600
px, as a messaging app or a web page keeps it) at its own size, and finds it enlarged twice. On
the annotated photos shrunk until the patch grid is 60 to 120 px long, two charts of 1 to 1.2 MP
photos were missed before; a photo this small has at most four such tiles."""


def _tile_origins(length: int, tile: int) -> list[int]:
    if length <= tile:
        return [0]
    count = int(np.ceil((length - tile) / (tile * (1 - TILE_OVERLAP)))) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _finer_reductions(long_side: int, max_side: int) -> list[float]:
    """The reductions :func:`finer_sets` searches at: each half the previous down to full
    resolution, then, for a photo no larger than ``max_side``, :data:`ENLARGED_REDUCTION`."""
    reductions = []
    reduction = long_side / max_side
    while reduction > 1.0:
        reduction = max(reduction / 2, 1.0)
        reductions.append(reduction)
    if long_side <= max_side:
        reductions.append(ENLARGED_REDUCTION)
    return reductions


def _tile_view(crop: NDArray[np.uint8], reduction: float, max_side: int) -> tuple[NDArray[np.uint8], float]:
    """A tile as the finders see it, and the factor from it to the photo."""
    if reduction >= 1.0:
        return downscale(crop, max_side)
    enlarged = cv2.resize(crop, None, fx=1 / reduction, fy=1 / reduction, interpolation=cv2.INTER_CUBIC)
    return np.asarray(enlarged, dtype=np.uint8), reduction


def finer_sets(
    rgb: NDArray[np.uint8], max_side: int, chart_type: str = "auto", *, max_charts: int = 4
) -> Iterator[CandidateSet]:
    """Finders on overlapping tiles of the photo at ever finer scales, for a chart too small to be
    seen on the ``max_side`` copy: each scale halves the previous one's reduction down to full
    resolution (a photo no larger than ``max_side``: enlarged, :data:`ENLARGED_REDUCTION`), and
    every tile is ``max_side`` pixels on its long side at that scale."""
    height, width = rgb.shape[:2]
    for reduction in _finer_reductions(max(height, width), max_side):
        tile = int(np.ceil(max_side * reduction))
        for top in _tile_origins(height, tile):
            for left in _tile_origins(width, tile):
                crop = np.ascontiguousarray(rgb[top : top + tile, left : left + tile])
                small, factor = _tile_view(crop, reduction, max_side)
                squares = PatchSquares(small)
                for candidate_type in _chart_types(chart_type):
                    for boxes in _finder_boxes(
                        small, squares, candidate_type, max_charts, TILE_FINDER_SETTINGS
                    ):
                        found = _full_resolution(candidate_type, boxes, factor)
                        origin = np.array([left, top], dtype=np.float64)
                        yield CandidateSet(candidate_type, [box + origin for box in found.boxes])


def _chart_types(chart_type: str) -> tuple[str, ...]:
    return AUTO_ORDER if chart_type == "auto" else (chart_type,)


def candidate_sets(
    small: NDArray[np.uint8], factor: float, chart_type: str = "auto", *, max_charts: int = 4
) -> Iterator[CandidateSet]:
    """Every finder's boxes on ``small`` (``factor`` times smaller than the photo), most likely first.

    Each set is computed only when asked for: detection stops at the first set that holds a chart.
    """
    squares = PatchSquares(small)
    for candidate_type in _chart_types(chart_type):
        for boxes in _candidate_boxes(small, squares, candidate_type, max_charts):
            yield _full_resolution(candidate_type, boxes, factor)


def quick_candidate_sets(
    preview: NDArray[np.uint8], factor: float, chart_type: str = "auto", *, max_charts: int = 4
) -> Iterator[CandidateSet]:
    """The cheapest finders on a small preview (long side about 500, ``factor`` times smaller than
    the photo): the patch lattice, and mcc with :data:`QUICK_MCC`. A chart they miss is left to
    :func:`candidate_sets` on a larger image, which :func:`detect_charts` runs next."""
    for candidate_type in _chart_types(chart_type):
        if candidate_type in GRID_TYPES:
            boxes = _grid_boxes(PatchSquares(preview), candidate_type, max_charts)
            yield _full_resolution(candidate_type, boxes, factor)
        elif candidate_type in MCC_TYPES:
            boxes = _mcc_boxes(preview, candidate_type, max_charts, QUICK_MCC)
            yield _full_resolution(candidate_type, boxes, factor)


def search_ahead(sets: Iterator[CandidateSet]) -> Iterator[CandidateSet]:
    """Compute ``sets`` now up to the first that holds a box; the rest stay lazy.

    Run in a worker thread on a preview while the full image decodes, it leaves only the
    refinement for later in the usual case.
    """
    ready: list[CandidateSet] = []
    for candidate in sets:
        ready.append(candidate)
        if candidate.boxes:
            break
    return itertools.chain(ready, sets)


def preview_candidates(
    preview: NDArray[np.uint8], reduction: float, chart_type: str = "auto", *, max_charts: int = 4
) -> Iterator[CandidateSet]:
    """Quick candidate sets from a ``reduction`` times smaller preview of the photo, the first
    that holds a box found now."""
    return search_ahead(quick_candidate_sets(preview, reduction, chart_type, max_charts=max_charts))


def detection_confidence(agreement: float, regularity: float) -> float:
    """How sure a box is the chart, 0 to 1: the lower of the colour agreement with the chart's
    reference in its best orientation (:func:`colour_agreement`) and the grid regularity
    (:func:`grid_regularity`). Either alone is fooled: a box shifted by a patch still correlates
    with the reference, and any square lattice has regular edges."""
    return float(np.clip(min(agreement, regularity), 0.0, 1.0))


@dataclass
class _Search:
    found: list[ChartDetection]
    best_candidate: ChartDetection | None = None
    """The most confident box not reported as found."""
    too_small: bool = False
    unknown_card: bool = False
    """A regular grid of patches in the chart's layout was seen, carrying other colours."""

    def offer(self, detection: ChartDetection) -> None:
        if self.best_candidate is None or detection.confidence > self.best_candidate.confidence:
            self.best_candidate = detection


def _other_colours(rgb: NDArray[np.uint8], chart_type: str, fit: _LayoutFit) -> bool:
    """Whether the patches inside the fitted box carry colours other than the chart's: too little
    colour agreement, or (for the Classic 24's colours) hues in another order (:data:`MIN_HUE_ORDER`)."""
    if fit.agreement < MIN_AGREEMENT:
        return True
    if chart_layout(chart_type).key != CLASSIC_LAYOUT:
        return False
    measured = layout_patch_means(rgb, fit.layout, fit.corners)
    brightest = measured.max(axis=1)
    usable = (brightest < CLIPPED_LINEAR) & (brightest > BLACK_LINEAR)
    if np.count_nonzero(usable) < MIN_HUE_PATCHES:
        return False
    return hue_order_score(measured, reference_linear_rgb(chart_type), usable) < MIN_HUE_ORDER


def _enlargement(corners: NDArray[np.float64]) -> int:
    """How many times to enlarge the photo around a chart whose grid is under :data:`SMALL_GRID_PX`."""
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    short_side = float(sides.min())
    if short_side >= SMALL_GRID_PX:
        return 1
    return int(min(MAX_ENLARGEMENT, np.ceil(SMALL_GRID_PX / max(short_side, 1.0))))


def _reduction(layout: ChartLayout, corners: NDArray[np.float64]) -> int:
    """How many whole times to reduce the photo around a chart for its patches to be about
    :data:`REDUCED_PATCH_PX` wide (1: they are narrower than twice that)."""
    return max(1, int(_patch_size_px(layout, corners) // REDUCED_PATCH_PX))


def _reduced_crop(
    rgb: NDArray[np.uint8], corners: NDArray[np.float64], reduction: int
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """The part of the photo around ``corners``, averaged over whole blocks of ``reduction`` pixels
    (pixel ``(i, j)`` covers the photo's ``offset + reduction * (i, j)`` onwards), and that offset."""
    crop, offset = _crop_around(rgb, corners)
    height, width = crop.shape[0] // reduction, crop.shape[1] // reduction
    blocks = crop[: height * reduction, : width * reduction]
    return np.asarray(cv2.resize(blocks, (width, height), interpolation=cv2.INTER_AREA), np.uint8), offset


def _polished(
    rgb: NDArray[np.uint8], chart_type: str, reduced: _LayoutFit, reduction: int, origin: NDArray[np.float64]
) -> _LayoutFit:
    """A fit on a copy reduced ``reduction`` times (pixel ``(0, 0)`` of it at ``origin``) brought
    to full resolution: refined and scored there when the refinement stays within
    :data:`POLISH_MAX_MOVE` (a sharp chart: full-resolution precision), kept as it is otherwise (a
    blurred chart, whose sides the full-resolution walks find too few of and too far inside)."""
    corners = reduced.corners * reduction + origin
    luma = BlurredLuma(rgb)
    refined = refine_corners(rgb, chart_type, corners, layout=reduced.layout, luma=luma)
    if float(np.abs(refined - corners).max()) > POLISH_MAX_MOVE * _patch_size_px(reduced.layout, corners):
        return replace(reduced, corners=corners)
    edges = _grid_edges(rgb, chart_type, refined, reduced.layout, 0.0, luma)
    return replace(reduced, corners=refined, regularity=edges.regularity, coverage=edges.coverage)


def _reduced_fit(
    rgb: NDArray[np.uint8],
    shown: NDArray[np.uint8],
    chart_type: str,
    coarse: NDArray[np.float64],
    reduction: int,
) -> _LayoutFit:
    """The box fitted on a copy of the photo around it reduced ``reduction`` times, then brought to
    full resolution (:func:`_polished`)."""
    view, offset = _reduced_crop(rgb, coarse, reduction)
    shown_view = view if shown is rgb else _reduced_crop(shown, coarse, reduction)[0]
    origin = offset + (reduction - 1) / 2
    reduced = _best_layout_fit(view, shown_view, chart_type, (coarse - origin) / reduction, 1)
    return _polished(rgb, chart_type, reduced, reduction, origin)


@dataclass(frozen=True)
class _LayoutFit:
    """A box refined and oriented with one physical layout of the chart's patches."""

    layout: ChartLayout
    corners: NDArray[np.float64]
    agreement: float
    regularity: float
    coverage: float
    """Share of the patch sides on which an edge was found (:class:`_GridEdges`)."""

    @property
    def confidence(self) -> float:
        return detection_confidence(self.agreement, self.regularity)


def _fit_layout(
    view: NDArray[np.uint8],
    shown_view: NDArray[np.uint8],
    chart_type: str,
    layout: ChartLayout,
    local: NDArray[np.float64],
    scale: int,
) -> _LayoutFit:
    """Edges and grid found on ``view``, colours compared on ``shown_view`` (:func:`_shown_rgb8`)."""
    luma = BlurredLuma(view)
    refined = refine_corners(view, chart_type, local, layout=layout, luma=luma)
    if not _is_clockwise(refined) or _patch_size_px(layout, refined) < MIN_PATCH_PX * scale:
        refined = local
    oriented, agreement = orient_corners(shown_view, chart_type, refined, layout=layout)
    edges = _grid_edges(view, chart_type, oriented, layout, MIN_EDGE_TOLERANCE_PX * scale, luma)
    return _LayoutFit(layout, oriented, agreement, edges.regularity, edges.coverage)


def _best_layout_fit(
    view: NDArray[np.uint8],
    shown_view: NDArray[np.uint8],
    chart_type: str,
    local: NDArray[np.float64],
    scale: int,
) -> _LayoutFit:
    """The box fitted with the chart type's layout, or, when that fit is not confident, with the
    variant layout (:data:`LAYOUT_VARIANTS`) that fits best.

    Variants are not tried on a small chart enlarged for the fit: there, the edges count as in
    place within :data:`MIN_EDGE_TOLERANCE_PX` of the photo, wider than the gaps by which the
    layouts differ, so a variant fits a Classic about as well as its own layout and may win on a
    box a few pixels off (on the annotated tobacco-leaf card, boxes 5 % off scored 0.86 with the
    Nano layout, 0.70 with the Classic's)."""
    layout = chart_layout(chart_type)
    best = _fit_layout(view, shown_view, chart_type, layout, local, scale)
    for variant in LAYOUT_VARIANTS.get(chart_type, ()) if scale == 1 else ():
        if best.confidence >= SURE_CONFIDENCE:
            break
        fit = _fit_layout(view, shown_view, chart_type, variant, local, scale)
        if fit.confidence > best.confidence:
            best = fit
    return best


def _examine(
    rgb: NDArray[np.uint8],
    shown: NDArray[np.uint8],
    chart_type: str,
    coarse: NDArray[np.float64],
    search: _Search,
) -> None:
    """Refine, orient and score one approximate box (edges on ``rgb``, colours on ``shown``, see
    :func:`_shown_rgb8`); report it when it is confidently the chart, offer it as a candidate when it
    only resembles it."""
    if _patch_size_px(chart_layout(chart_type), coarse) < MIN_PATCH_PX:
        search.too_small = True
        return
    scale = _enlargement(coarse)
    if scale > 1:
        crop, offset = _crop_around(rgb, coarse)
        view = np.asarray(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), np.uint8)
        shown_crop, _ = _crop_around(shown, coarse)
        shown_view = np.asarray(
            cv2.resize(shown_crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), np.uint8
        )
        origin = offset - (scale - 1) / (2 * scale)
        fit = _best_layout_fit(view, shown_view, chart_type, (coarse - origin) * scale, scale)
        oriented = fit.corners / scale + origin
    else:
        shown_view = shown
        fit = _best_layout_fit(rgb, shown, chart_type, coarse, 1)
        reduction = _reduction(chart_layout(chart_type), coarse)
        if reduction > 1 and fit.coverage < MIN_EDGE_COVERAGE:
            fit = _reduced_fit(rgb, shown, chart_type, coarse, reduction)
        oriented = fit.corners
    if _overlaps(oriented, search.found):
        return
    if _other_colours(shown_view, chart_type, fit):
        search.unknown_card = search.unknown_card or fit.regularity >= MIN_CONFIDENCE
        return
    confidence = fit.confidence
    variant = fit.layout if fit.layout != chart_layout(chart_type) else None
    detection = ChartDetection(chart_type, oriented, confidence, orientation_of(oriented), variant)
    if confidence >= MIN_CONFIDENCE:
        search.found.append(detection)
    else:
        search.offer(detection)


OTHER_CHART_PREVIEW_SIDE = 800
"""Long side of the copy searched for charts of other types once one chart is found in a photo
with no JPEG or RAW preview: within the 480 to 960 pixels of a JPEG's reduced decode."""


def _other_type_sets(
    rgb: NDArray[np.uint8],
    preview_sets: Iterator[CandidateSet],
    found: list[ChartDetection],
    had_preview: bool,
    max_charts: int,
) -> Iterator[CandidateSet]:
    """Boxes of the chart types not found yet, once one chart is: a photo may hold a Digital SG
    beside a Classic 24, and each is reported. Only the quick finders look, on the preview (its
    sets not yet examined) or on a preview-sized copy, so a few milliseconds are added and the
    other chart is found when it spans about a third of the photo or more; the slow search for
    small charts is not run again for it."""
    found_types = {detection.chart_type for detection in found}
    if had_preview:
        sets: Iterator[CandidateSet] = preview_sets
    else:
        preview, factor = downscale(rgb, OTHER_CHART_PREVIEW_SIDE)
        sets = (
            candidate
            for chart_type in AUTO_ORDER
            if chart_type not in found_types
            for candidate in quick_candidate_sets(preview, factor, chart_type, max_charts=max_charts)
        )
    return (candidate for candidate in sets if candidate.chart_type not in found_types)


def _examine_other_types(
    rgb: NDArray[np.uint8],
    shown: NDArray[np.uint8],
    search: _Search,
    preview_sets: Iterator[CandidateSet],
    had_preview: bool,
    max_charts: int,
) -> None:
    """Examine the boxes of the chart types not in ``search.found`` yet (:func:`_other_type_sets`)."""
    for candidate in _other_type_sets(rgb, preview_sets, search.found, had_preview, max_charts):
        for box in candidate.boxes:
            _examine(rgb, shown, candidate.chart_type, box, search)


def with_other_charts(
    image: DecodedImage | NDArray[np.generic], detection: ChartDetection, *, max_charts: int = 4
) -> list[ChartDetection]:
    """A chart placed by hand, then the charts of other types found beside it, most confident
    first: a photo sent again with one chart's corners ("correct with this chart") still reports
    the chart it was corrected with before. Only the quick finders look, on a preview-sized copy
    (:func:`_other_type_sets`), so this adds tens of milliseconds, not the small-chart search."""
    rgb = encoded_rgb8(image)
    shown = _shown_rgb8(image, rgb)
    search = _Search([detection])
    _examine_other_types(rgb, shown, search, iter(()), False, max_charts)
    others = sorted(search.found[1:], key=lambda found: found.confidence, reverse=True)
    return [detection, *others]


CLASSIC_BLOCK_OF_DIGITAL_SG = np.array([[-4 / 6, -1 / 4], [10 / 6, -1 / 4], [10 / 6, 9 / 4], [-4 / 6, 9 / 4]])
"""The Digital SG's patch-grid corners in the coordinates of the Classic 24's grid (unit square):
the SG carries the Classic 24's colours in the Classic's layout in its columns E to J, rows 2 to 5,
with four columns on either side, one row above and five below (:func:`_digital_sg_around`)."""


def _digital_sg_around(
    rgb: NDArray[np.uint8], shown: NDArray[np.uint8], classic: ChartDetection
) -> _Search | None:
    """The search for the Digital SG whose Classic 24 block ``classic`` is, or None when the
    photo holds no SG around it (the SG's box leaves the photo, or its colours do not agree with
    the SG's as well as a chart's must, :data:`MIN_CONFIDENCE`)."""
    box = map_points(chart_homography(classic.corners), CLASSIC_BLOCK_OF_DIGITAL_SG)
    height, width = rgb.shape[:2]
    if box.min() < 0 or box[:, 0].max() > width - 1 or box[:, 1].max() > height - 1:
        return None
    measured = layout_patch_means(shown, chart_layout("digital_sg"), box)
    if colour_agreement(measured, reference_linear_rgb("digital_sg")) < MIN_CONFIDENCE:
        return None
    search = _Search([])
    _examine(rgb, shown, "digital_sg", box, search)
    return search


def _digital_sgs_for_their_classic_blocks(
    rgb: NDArray[np.uint8], shown: NDArray[np.uint8], search: _Search
) -> None:
    """Every Classic 24 found that is the Classic block of a Digital SG becomes that SG, or, when the
    SG is not confidently found, is dropped and the SG offered instead.

    mcc finds the block of a Digital SG too small for the patch lattice (patches of 6 to 8 px) as
    a Classic 24 at high confidence, the colours being the Classic's: of six copies of the annotated
    SG photo shrunk until its grid is 63 to 109 px long, three were reported as a Classic 24."""
    kept = []
    for detection in search.found:
        around = _digital_sg_around(rgb, shown, detection) if detection.chart_type == "classic24" else None
        if around is None:
            kept.append(detection)
        elif around.found:
            kept.append(around.found[0])
        elif around.best_candidate is not None:
            search.offer(around.best_candidate)
    search.found = kept


MIN_PHOTO_SIDE_PX = 32
"""A photo narrower than this holds no chart whose patches could be measured (the smallest chart
found, a patch grid 60 px long, is about 40 px across)."""


def photo_too_narrow(rgb: NDArray[np.uint8]) -> DetectionOutcome | None:
    """The outcome for a photo too narrow to hold a chart (searching one is slow and pointless)."""
    height, width = rgb.shape[:2]
    if min(height, width) >= MIN_PHOTO_SIDE_PX:
        return None
    return DetectionOutcome(
        [], "no_chart", f"the photo is {width}×{height} px: too small on one side to hold a colour chart"
    )


def detect_charts(
    image: DecodedImage | NDArray[np.generic],
    chart_type: str = "auto",
    *,
    max_side: int = 1600,
    max_charts: int = 4,
    candidates: Iterable[CandidateSet] | None = None,
    small_charts: bool = True,
) -> DetectionOutcome:
    """Find the charts in an image (encoded RGB pixels, or a decoded image), best first.

    ``candidates`` are approximate boxes already found (e.g. by :func:`preview_candidates` on a
    preview), tried first; when none of them holds a chart, the finders run on a downscaled copy
    of the image. With ``small_charts`` the photo's tiles are then searched at finer scales
    (:func:`finer_sets`): seconds more on a photo without a chart, so callers for whom the chart
    is optional leave it out.
    """
    rgb = encoded_rgb8(image)
    too_narrow = photo_too_narrow(rgb)
    if too_narrow is not None:
        return too_narrow
    shown = _shown_rgb8(image, rgb)

    def downscaled_sets() -> Iterator[CandidateSet]:
        small, factor = downscale(rgb, max_side)
        yield from candidate_sets(small, factor, chart_type, max_charts=max_charts)
        if small_charts:
            yield from finer_sets(rgb, max_side, chart_type, max_charts=max_charts)

    search = _Search([])
    preview_sets = iter(candidates or ())
    for candidate in itertools.chain(preview_sets, downscaled_sets()):
        for box in candidate.boxes:
            _examine(rgb, shown, candidate.chart_type, box, search)
        if search.found:
            break
    if search.found and chart_type == "auto":
        _examine_other_types(rgb, shown, search, preview_sets, candidates is not None, max_charts)
    if chart_type == "auto":
        _digital_sgs_for_their_classic_blocks(rgb, shown, search)
    found = search.found
    too_small = search.too_small
    found.sort(key=lambda detection: detection.confidence, reverse=True)
    chart_problem = _chart_exposure_problem(rgb, found[0]) if found else None
    if chart_problem is not None:
        return DetectionOutcome([], chart_problem[0], chart_problem[1])
    if found:
        return DetectionOutcome(found, None, f"found {len(found)} chart(s)")
    if search.best_candidate is not None:
        return DetectionOutcome(
            [],
            "low_confidence",
            f"a box that resembles the chart was found, but with confidence "
            f"{search.best_candidate.confidence:.2f} (below {MIN_CONFIDENCE}): confirm it or give the corners",
            search.best_candidate,
        )
    if too_small:
        return DetectionOutcome(
            [], "chart_too_small", "a chart was found but its patches are too small to measure"
        )
    problem = _exposure_problem(rgb)
    if problem is not None:
        return DetectionOutcome([], problem[0], problem[1])
    if search.unknown_card:
        return DetectionOutcome(
            [],
            "unknown_chart",
            "a card of patches was found, but its colours are not those of a supported chart "
            "(another maker's card?): correcting towards them would shift the photo's colours",
        )
    return DetectionOutcome([], "no_chart", "no colour chart was found in the photo")


class NotAChartError(ValueError):
    """Corners given by hand enclose something that does not look like the chart."""

    code = "not_a_chart"


MIN_QUAD_TRIANGLE_PX = 8.0
"""Smallest area (pixels²) of the triangle any three of four hand-given corners make: below it,
three corners lie on one line (or two on one point) and no chart fills the quad."""


def refuse_degenerate_quad(corners: NDArray[np.floating] | Sequence[tuple[float, float]]) -> None:
    """Raise :class:`NotAChartError` for four corners that enclose no quadrilateral."""
    quad = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    for first in range(4):
        a, b, c = quad[first], quad[(first + 1) % 4], quad[(first + 2) % 4]
        twice_area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
        if not twice_area >= 2 * MIN_QUAD_TRIANGLE_PX:
            raise NotAChartError("the four corners given do not enclose a quadrilateral")


def checked_detection_from_corners(
    image: DecodedImage | NDArray[np.generic],
    chart_type: str,
    corners: NDArray[np.floating] | list[tuple[float, float]],
) -> ChartDetection:
    """A detection from corners given by hand, once the quad's colours agree with the chart's in
    one of its four orientations (:data:`MANUAL_MIN_AGREEMENT`); its confidence is that agreement.
    The corners are taken clockwise and in that orientation: a hand that goes round the other way,
    or starts at another corner than the first patch's, still measures each patch against its own
    reference.

    Raises :class:`NotAChartError` otherwise: correcting towards a chart that is not there shifts
    the whole photo's colours.
    """
    refuse_degenerate_quad(corners)
    given = detection_from_corners(chart_type, corners)
    if not _is_clockwise(given.corners):
        given = detection_from_corners(chart_type, given.corners[::-1])
    rgb = encoded_rgb8(image)
    oriented, agreement = orient_corners(_shown_rgb8(image, rgb), given.chart_type, given.corners)
    if not agreement >= MANUAL_MIN_AGREEMENT:
        raise NotAChartError(
            f"the corners given do not enclose a {chart_spec(chart_type).title} in any orientation "
            f"(colour agreement {agreement:.2f}, below {MANUAL_MIN_AGREEMENT})"
        )
    detection = detection_from_corners(given.chart_type, oriented)
    layout, fitted = _fitted_hand_marked(rgb, detection.chart_type, detection.corners)
    return ChartDetection(
        detection.chart_type,
        fitted,
        float(np.clip(agreement, 0.0, 1.0)),
        detection.orientation_degrees,
        layout,
    )


def _fitted_to_edges(
    rgb: NDArray[np.uint8], chart_type: str, corners: NDArray[np.float64], layout: ChartLayout
) -> tuple[NDArray[np.float64], float]:
    """The corners fitted to the edges of ``layout``'s patches, and how regular that grid is; the
    corners as given when the fit moves them further than :data:`HAND_MARKED_MAX_MOVE`."""
    refined = refine_corners(rgb, chart_type, corners, layout=layout)
    diagonal = float(np.linalg.norm(corners[2] - corners[0]))
    moved = float(np.mean(np.linalg.norm(refined - corners, axis=1)))
    if not _is_clockwise(refined) or moved > HAND_MARKED_MAX_MOVE * diagonal:
        refined = corners
    return refined, grid_regularity(rgb, chart_type, refined, layout=layout)


def _fitted_hand_marked(
    rgb: NDArray[np.uint8], chart_type: str, corners: NDArray[np.float64]
) -> tuple[ChartLayout | None, NDArray[np.float64]]:
    """Corners given by hand, fitted to the chart's patch edges where that grid is regular enough to
    be found on its own (:data:`MIN_CONFIDENCE`), with the layout they fit: None for the chart
    type's own, or a variant (:data:`LAYOUT_VARIANTS`).

    A hand is a few pixels off. On the 28 annotated Classic-type photos, at the annotated corners and
    at four copies moved by up to 2 % of the diagonal, the corners were fitted in 126 of 140 trials,
    always within 4 % of the annotation; the most patches a photo had flagged unevenly lit (quads
    reaching over a patch edge) fell on 22 photos (from 14 to 3 on one, from 12 to 0 on another) and
    rose on none.

    The layouts carry the same colours, so colour agreement cannot tell them apart (within 0.01 on
    those photos). Their edges differ: fitted to each layout, the annotated Nano scores 0.88 as a
    Nano and 0.66 to 0.72 as a Classic, and every other card at least 0.08 higher as a Classic,
    except a 40 × 25 px card below 0.45 either way. A variant is taken only when it is
    :data:`HAND_MARKED_VARIANT_MARGIN` more regular than the chart type's own layout."""
    given = grid_regularity(rgb, chart_type, corners)
    own_fit, own = _fitted_to_edges(rgb, chart_type, corners, chart_layout(chart_type))
    chosen: tuple[ChartLayout | None, NDArray[np.float64]] = (
        (None, own_fit) if own >= max(given, MIN_CONFIDENCE) else (None, corners)
    )
    best = max(own + HAND_MARKED_VARIANT_MARGIN, MIN_CONFIDENCE)
    for variant in LAYOUT_VARIANTS.get(chart_type, ()):
        fitted, regularity = _fitted_to_edges(rgb, chart_type, corners, variant)
        if regularity >= best:
            chosen, best = (variant, fitted), regularity
    return chosen


def detection_from_corners(
    chart_type: str, corners: NDArray[np.floating] | list[tuple[float, float]]
) -> ChartDetection:
    """A detection from corners the caller supplies (clockwise from the corner next to patch 0)."""
    array = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    chart_layout(chart_type)
    return ChartDetection(chart_type, array, 1.0, orientation_of(array))
