"""Finding and sampling a custom chart by its layout.

A custom chart is known only by its grid (rows × columns, the gap between patches) and its
reference values, so it is found the way the Digital SG is (:mod:`chromaline.engine.grid`): the
lattice of square patches separated by the darker chart body, then every placement of the chart's
grid over that lattice and both of its upright orientations, judged by how well the sampled
colours agree with the reference (:func:`chromaline.engine.detect.colour_agreement`). The box is
found on a reduced copy, then found again on a crop around it at finer scale, which brings the
corners within about a pixel of the reduced crop.

The confidence of a custom box is its colour agreement: the grid regularity used for the built-in
charts walks their fixed patch edges, which a custom layout does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.engine.custom_chart import CUSTOM_CHART_TYPE, ChartDefinition
from chromaline.engine.detect import (
    MANUAL_MIN_AGREEMENT,
    MIN_AGREEMENT,
    MIN_CONFIDENCE,
    MIN_PATCH_PX,
    ChartDetection,
    DetectionOutcome,
    NotAChartError,
    colour_agreement,
    downscale,
    encoded_rgb8,
    layout_patch_means,
    orientation_of,
    photo_too_narrow,
    refuse_degenerate_quad,
)
from chromaline.engine.geometry import ChartLayout, layout_patch_quads
from chromaline.engine.grid import grid_boxes
from chromaline.engine.image_io import DecodedImage
from chromaline.engine.sample import PatchMeasurement, sample_quads

WORKING_SIDE = 1600
"""Long side of the reduced copy searched for the lattice (as for the built-in charts)."""
CROP_BORDER = 0.15
"""Share of the chart's span kept around a found box when looking at it again more closely."""


def _to_full(box: NDArray[np.float64], factor: float, offset: NDArray[np.float64]) -> NDArray[np.float64]:
    """A box on a copy ``factor`` times smaller, whose origin sits at ``offset``, in full pixels."""
    return box * factor + (factor - 1) / 2 + offset


@dataclass(frozen=True)
class _Scored:
    corners: NDArray[np.float64]
    agreement: float


def _best_orientation(
    rgb: NDArray[np.uint8],
    definition: ChartDefinition,
    boxes: Sequence[NDArray[np.float64]],
    turns: Sequence[int],
) -> _Scored | None:
    """The box and rotation (in quarter turns of its corner order) whose colours agree best."""
    best: _Scored | None = None
    for box in boxes:
        for turn in turns:
            corners = np.roll(box, -turn, axis=0)
            agreement = colour_agreement(
                layout_patch_means(rgb, definition.layout, corners), np.asarray(definition.reference.rgb)
            )
            if best is None or agreement > best.agreement:
                best = _Scored(corners, agreement)
    return best


def _patch_side_px(layout: ChartLayout, corners: NDArray[np.float64]) -> float:
    quad = layout_patch_quads(layout, corners, margin=0.0)[0]
    return float(np.sqrt(abs(cv2.contourArea(quad.astype(np.float32)))))


def _closer_look(
    rgb: NDArray[np.uint8], definition: ChartDefinition, corners: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The box found again on a crop around ``corners``, reduced less than the whole photo was;
    ``corners`` themselves when the crop shows no lattice that matches them."""
    height, width = rgb.shape[:2]
    span = np.ptp(corners, axis=0)
    low = np.maximum(np.floor(corners.min(axis=0) - CROP_BORDER * span), 0).astype(int)
    high = np.minimum(np.ceil(corners.max(axis=0) + CROP_BORDER * span), [width, height]).astype(int)
    crop = np.ascontiguousarray(rgb[low[1] : high[1], low[0] : high[0]])
    small, factor = downscale(crop, WORKING_SIDE)
    patch_px = _patch_side_px(definition.layout, corners)
    best, best_distance = corners, 0.25 * patch_px
    for placements in grid_boxes(small, definition.layout, 1):
        for box in placements:
            full = _to_full(box, factor, low.astype(np.float64))
            for turn in range(4):
                candidate = np.roll(full, -turn, axis=0)
                distance = float(np.linalg.norm(candidate - corners, axis=1).max())
                if distance < best_distance:
                    best, best_distance = candidate, distance
    return best


def detect_custom_chart(
    image: DecodedImage | NDArray[np.generic],
    definition: ChartDefinition,
    *,
    max_side: int = WORKING_SIDE,
    max_charts: int = 4,
) -> DetectionOutcome:
    """Find a custom chart by its layout, best first (same outcome codes as ``detect_charts``)."""
    rgb = encoded_rgb8(image)
    too_narrow = photo_too_narrow(rgb)
    if too_narrow is not None:
        return too_narrow
    small, factor = downscale(rgb, max_side)
    origin = np.zeros(2)
    found: list[ChartDetection] = []
    candidate: ChartDetection | None = None
    too_small = False
    for placements in grid_boxes(small, definition.layout, max_charts):
        boxes = [_to_full(box, factor, origin) for box in placements]
        coarse = _best_orientation(rgb, definition, boxes, (0, 2))
        if coarse is None or coarse.agreement < MIN_AGREEMENT:
            continue
        if _patch_side_px(definition.layout, coarse.corners) < MIN_PATCH_PX:
            too_small = True
            continue
        closer = _best_orientation(rgb, definition, [_closer_look(rgb, definition, coarse.corners)], (0,))
        scored = closer if closer is not None and closer.agreement >= coarse.agreement - 0.02 else coarse
        confidence = float(np.clip(scored.agreement, 0.0, 1.0))
        detection = ChartDetection(
            CUSTOM_CHART_TYPE, scored.corners, confidence, orientation_of(scored.corners)
        )
        if confidence >= MIN_CONFIDENCE:
            found.append(detection)
        elif candidate is None or confidence > candidate.confidence:
            candidate = detection
    found.sort(key=lambda detection: detection.confidence, reverse=True)
    if found:
        return DetectionOutcome(found, None, f"found {len(found)} chart(s) of {definition.name!r}")
    if candidate is not None:
        return DetectionOutcome(
            [],
            "low_confidence",
            f"a box that resembles {definition.name!r} was found, but with confidence {candidate.confidence:.2f} "
            f"(below {MIN_CONFIDENCE}): confirm it or give the corners",
            candidate,
        )
    if too_small:
        return DetectionOutcome(
            [], "chart_too_small", "a chart was found but its patches are too small to measure"
        )
    return DetectionOutcome(
        [], "no_chart", f"no chart laid out as {definition.name!r} was found in the photo"
    )


def custom_detection_from_corners(
    image: DecodedImage | NDArray[np.generic],
    definition: ChartDefinition,
    corners: NDArray[np.floating] | Sequence[tuple[float, float]],
) -> ChartDetection:
    """A detection from corners given by hand (clockwise from the corner next to patch 0), in the
    orientation whose colours agree best; :class:`NotAChartError` when none agrees well enough."""
    refuse_degenerate_quad(corners)
    array = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    turns = (0, 1, 2, 3) if definition.rows == definition.columns else (0, 2)
    scored = _best_orientation(encoded_rgb8(image), definition, [array], turns)
    assert scored is not None
    if not scored.agreement >= MANUAL_MIN_AGREEMENT:
        raise NotAChartError(
            f"the corners given do not enclose the chart {definition.name!r} "
            f"(colour agreement {scored.agreement:.2f}, below {MANUAL_MIN_AGREEMENT})"
        )
    return ChartDetection(
        CUSTOM_CHART_TYPE,
        scored.corners,
        float(np.clip(scored.agreement, 0.0, 1.0)),
        orientation_of(scored.corners),
    )


def sample_custom_chart(
    image: DecodedImage | NDArray[np.floating],
    detection: ChartDetection,
    definition: ChartDefinition,
    *,
    margin: float = 0.25,
) -> list[PatchMeasurement]:
    """Measure every patch of a detected custom chart, in reference order."""
    quads = layout_patch_quads(definition.layout, detection.corners, margin)
    return sample_quads(image, definition.sample_ids, quads)
