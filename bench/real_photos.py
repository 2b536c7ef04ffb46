"""Detection on real photos scored against annotated corners.

The dataset folder holds photos and ``corners.json``: for each file the four outer corners of the
chart's patch grid, clockwise from the corner next to patch 1 (dark skin on a Classic 24, A1 on a
Digital SG). A detection is *right* when the mean distance of its corners from the annotated ones
is below :data:`CORNER_TOLERANCE` of the annotated grid's diagonal and its patch 1 sits in the
annotated patch 1 (so a chart found upside down fails even where its outline matches).

Every photo ends in one of four verdicts:

- ``right``: found, box right; or, for a photo whose chart cannot be measured (``FLAG_ONLY``),
  refused with a reason that names the problem, or found with the problem flagged;
- ``flagged``: not reported as found, but the best candidate offered for confirmation is right;
- ``wrong``: reported as found with a wrong box (the failure that must never happen);
- ``refused``: nothing reported as found, with the reason given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.peers import CCD_CHEUNG, CHROMALINE, PLANTCV, Pipeline, ccd_pipelines, plantcv_pipeline
from chromaline.engine.detect import (
    ChartDetection,
    DetectionOutcome,
    detect_charts,
    orientation_of,
    preview_candidates,
)
from chromaline.engine.geometry import patch_centres
from chromaline.engine.image_io import decode_image, decode_preview

CORNER_TOLERANCE = 0.05
"""Largest mean corner error, as a fraction of the annotated patch grid's diagonal."""
ANNOTATIONS = "corners.json"
FLAG_ONLY = frozenset({"hdri-tonemapped-clipped-classic.png"})
"""Photos whose chart is blown out: refusing it with a reason, or finding it and flagging the
clipping, is the right answer (its annotation is the card outline, not the patch grid)."""
FLAG_REASONS = frozenset({"overexposed", "clipped_chart"})
OUTLINE_TOLERANCE = 0.10
"""Tolerance where the annotation is a card outline rather than the patch grid."""
PREVIEW_MIN_SIDE = 480


@dataclass(frozen=True)
class Annotation:
    name: str
    chart: str
    corners: NDArray[np.float64]

    @property
    def chart_type(self) -> str:
        return "digital_sg" if "Digital SG" in self.chart else "classic24"

    @property
    def diagonal(self) -> float:
        c = self.corners
        return float((np.linalg.norm(c[2] - c[0]) + np.linalg.norm(c[3] - c[1])) / 2)


def load_annotations(root: Path) -> list[Annotation]:
    """The annotated photos of a dataset folder, by file name."""
    data = json.loads((root / ANNOTATIONS).read_text())
    return [
        Annotation(name, entry["chart"], np.asarray(entry["corners"], dtype=np.float64))
        for name, entry in sorted(data.items())
    ]


def corner_error(found: NDArray[np.float64], truth: Annotation) -> float:
    """Mean corner distance as a fraction of the annotated diagonal."""
    return float(np.linalg.norm(found - truth.corners, axis=1).mean()) / truth.diagonal


def first_patch_right(chart_type: str, found: NDArray[np.float64], truth: Annotation) -> bool:
    """Whether the detection's patch 1 is the annotated patch 1 (nearest of all annotated patches)."""
    truth_centres = patch_centres(truth.chart_type, truth.corners)
    ours = patch_centres(chart_type, found)[0]
    return int(np.argmin(np.linalg.norm(truth_centres - ours, axis=1))) == 0


def box_right(chart_type: str, found: NDArray[np.float64], truth: Annotation) -> bool:
    tolerance = OUTLINE_TOLERANCE if truth.name in FLAG_ONLY else CORNER_TOLERANCE
    return corner_error(found, truth) < tolerance and first_patch_right(chart_type, found, truth)


@dataclass(frozen=True)
class PhotoVerdict:
    name: str
    verdict: str
    """``right``, ``flagged``, ``wrong`` or ``refused``."""
    error: float | None
    """Corner error of the reported (or offered) box, as a fraction of the diagonal."""
    detail: str
    seconds: float


Detector = Callable[[bytes], DetectionOutcome]


def chromaline_detector(data: bytes) -> DetectionOutcome:
    """Detection as the engine runs it: the quick search on a JPEG preview, then the full image."""
    image = decode_image(data)
    preview = decode_preview(data, PREVIEW_MIN_SIDE)
    candidates = preview_candidates(*preview) if preview is not None else None
    return detect_charts(image, candidates=candidates)


def judge(truth: Annotation, outcome: DetectionOutcome, seconds: float) -> PhotoVerdict:
    if outcome.detections:
        best = outcome.detections[0]
        error = corner_error(best.corners, truth)
        right = box_right(best.chart_type, best.corners, truth)
        detail = f"{best.chart_type}, confidence {best.confidence:.2f}, {len(outcome.detections)} chart(s)"
        return PhotoVerdict(truth.name, "right" if right else "wrong", error, detail, seconds)
    reason = outcome.reason or "no_chart"
    if truth.name in FLAG_ONLY and reason in FLAG_REASONS:
        return PhotoVerdict(truth.name, "right", None, f"refused: {reason}", seconds)
    candidate = outcome.candidate
    if candidate is not None:
        error = corner_error(candidate.corners, truth)
        if box_right(candidate.chart_type, candidate.corners, truth):
            return PhotoVerdict(truth.name, "flagged", error, f"{reason}, candidate right", seconds)
        return PhotoVerdict(truth.name, "refused", error, f"{reason}, candidate wrong", seconds)
    return PhotoVerdict(truth.name, "refused", None, reason, seconds)


@dataclass
class DetectionScores:
    verdicts: list[PhotoVerdict] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for v in self.verdicts if v.verdict == verdict)

    @property
    def photos(self) -> int:
        return len(self.verdicts)


Judge = Callable[[Annotation, bytes], PhotoVerdict]
"""Runs one detector on one photo's bytes and judges it against the annotation."""


def by_corners(detector: Detector) -> Judge:
    """A detector that reports chart corners, judged on them."""

    def run(truth: Annotation, data: bytes) -> PhotoVerdict:
        start = time.perf_counter()
        outcome = detector(data)
        return judge(truth, outcome, time.perf_counter() - start)

    return run


def centre_error(centres: NDArray[np.float64], truth: Annotation) -> float:
    """Mean patch-centre distance as a fraction of the annotated diagonal."""
    truth_centres = patch_centres(truth.chart_type, truth.corners)
    return float(np.linalg.norm(centres - truth_centres, axis=1).mean()) / truth.diagonal


def by_centres(pipeline: Pipeline, name: str) -> Judge:
    """A bench pipeline that reports the Classic 24's patch centres in reference order, judged on
    them: right when their mean error is under the corner tolerance and patch 1 is in place."""

    def run(truth: Annotation, data: bytes) -> PhotoVerdict:
        start = time.perf_counter()
        outcome = next(o for o in pipeline(data) if o.pipeline == name)
        seconds = time.perf_counter() - start
        if outcome.centres is None:
            return PhotoVerdict(truth.name, "refused", None, outcome.note or "nothing found", seconds)
        if truth.chart_type != "classic24":
            return PhotoVerdict(
                truth.name, "wrong", None, f"a Classic 24 reported on a {truth.chart_type}", seconds
            )
        error = centre_error(outcome.centres, truth)
        truth_centres = patch_centres(truth.chart_type, truth.corners)
        first = int(np.argmin(np.linalg.norm(truth_centres - outcome.centres[0], axis=1))) == 0
        right = error < CORNER_TOLERANCE and first
        return PhotoVerdict(truth.name, "right" if right else "wrong", error, "patch centres", seconds)

    return run


def score_detector(root: Path, judged: Judge, limit: int | None = None) -> DetectionScores:
    """Run a detector on every annotated photo of ``root`` and judge each against its annotation."""
    scores = DetectionScores()
    annotations: Iterable[Annotation] = load_annotations(root)[:limit]
    for truth in annotations:
        scores.verdicts.append(judged(truth, (root / truth.name).read_bytes()))
    return scores


def opencv_mcc_detector(data: bytes) -> DetectionOutcome:
    """OpenCV's ``mcc`` on the full photo with default parameters (SG140 tried after MCC24), its
    box taken in the order it gives."""
    rgb = decode_image(data).pixels
    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
    if bgr.dtype == np.uint16:
        bgr = (bgr >> 8).astype(np.uint8)
    for chart_type, mcc_type in (("classic24", cv2.mcc.MCC24), ("digital_sg", cv2.mcc.SG140)):
        detector = cv2.mcc.CCheckerDetector_create()  # type: ignore[attr-defined]  # missing from the stubs
        detector.setColorChartType(mcc_type)
        if detector.process(bgr, 1):
            box = np.asarray(detector.getListColorChecker()[0].getBox(), dtype=np.float64).reshape(4, 2)
            found = ChartDetection(chart_type, box, 1.0, orientation_of(box))
            return DetectionOutcome([found], None, "found")
    return DetectionOutcome([], "no_chart", "mcc found no chart")


DETECTORS: dict[str, Judge] = {
    CHROMALINE: by_corners(chromaline_detector),
    "opencv mcc": by_corners(opencv_mcc_detector),
    "colour-checker-detection": by_centres(ccd_pipelines, CCD_CHEUNG),
    PLANTCV: by_centres(plantcv_pipeline, PLANTCV),
}
"""Ours and OpenCV's mcc judged on corners; colour-checker-detection (segmentation) and PlantCV,
which report swatches rather than a grid, on their patch centres."""
