"""Running every pipeline on the same photos and summarising detection, ΔE2000 and time.

Rendered scenes carry their ground truth, so a detection is scored against the true patch centres
and ΔE2000 is measured at those centres (see :mod:`accuracy`). That ΔE2000 is a training error:
every pipeline is scored on the patches it fitted. So each scene is also rendered a second time
under the same conditions with a ColorChecker Digital SG instead, each pipeline's fitted correction
is applied to that photo, and ΔE2000 is measured at the SG's 140 true patch centres: the held-out
error. Real photos have no ground truth
beyond the chart's reference: there each pipeline is scored at the centres it found itself, before
(the photo as it is) and after its correction.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.accuracy import (
    CHART,
    HELD_OUT_CHART,
    PipelineOutcome,
    chart_delta_e2000,
    detection_correct,
    patch_pitch,
    reference_chart,
)
from bench.peers import PIPELINES, pipeline_names
from chromaline.engine.geometry import patch_centres
from chromaline.engine.metrics import ChartReference
from chromaline.engine.synthetic import SyntheticScene, with_other_chart

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@dataclass
class PipelineScores:
    """One pipeline's results over a set of photos."""

    pipeline: str
    photos: int = 0
    detected: int = 0
    correct: int = 0
    """Rendered scenes: detections whose patch centres agree with the truth. Real photos: unused."""
    delta_e_before: list[float] = field(default_factory=list)
    delta_e_after: list[float] = field(default_factory=list)
    """Mean ΔE2000 per photo, over the photos this pipeline got right (or, for real photos, found)."""
    seconds: list[float] = field(default_factory=list)
    after_by_photo: dict[int, float] = field(default_factory=dict)
    held_out_before_by_photo: dict[int, float] = field(default_factory=dict)
    held_out_by_photo: dict[int, float] = field(default_factory=dict)
    """Rendered scenes got right: mean ΔE2000 on the held-out chart, before and after the correction."""
    notes: list[str] = field(default_factory=list)

    @property
    def detection_rate(self) -> float:
        return self.correct / self.photos if self.photos else 0.0

    @property
    def mean_after(self) -> float | None:
        return statistics.fmean(self.delta_e_after) if self.delta_e_after else None

    @property
    def mean_before(self) -> float | None:
        return statistics.fmean(self.delta_e_before) if self.delta_e_before else None

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def mean_after_on(self, photos: set[int]) -> float | None:
        return _mean_on(self.after_by_photo, photos)

    def mean_held_out_on(self, photos: set[int]) -> float | None:
        return _mean_on(self.held_out_by_photo, photos)

    def mean_held_out_before_on(self, photos: set[int]) -> float | None:
        return _mean_on(self.held_out_before_by_photo, photos)


def _mean_on(by_photo: dict[int, float], photos: set[int]) -> float | None:
    values = [by_photo[photo] for photo in sorted(photos) if photo in by_photo]
    return statistics.fmean(values) if values else None


def _input_rgb8(data: bytes) -> NDArray[np.uint8] | None:
    if not data:
        return None
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if decoded is None:
        return None
    if decoded.dtype == np.uint16:
        decoded = (np.asarray(decoded, dtype=np.uint16) >> 8).astype(np.uint8)
    if decoded.ndim == 2:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_GRAY2BGR)
    return np.asarray(cv2.cvtColor(decoded[:, :, :3], cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _run_all(data: bytes) -> list[PipelineOutcome]:
    """Every pipeline's outcome; a pipeline that raises counts as finding nothing, with the error noted."""
    outcomes: list[PipelineOutcome] = []
    for names, pipeline in PIPELINES:
        try:
            outcomes += pipeline(data)
        except Exception as error:  # a peer failing on one photo must not stop the comparison
            outcomes += [PipelineOutcome(name, None, None, 0.0, f"error: {error}") for name in names]
    return outcomes


@dataclass(frozen=True)
class HeldOutChart:
    """The held-out photo cut down to its chart (every correction compared is per pixel, so the
    rest of the photo does not change the result), with the true patch centres in the crop."""

    pixels: NDArray[np.uint8]
    centres: NDArray[np.float64]
    reference: ChartReference

    @classmethod
    def of(cls, scene: SyntheticScene, reference: ChartReference) -> HeldOutChart:
        rgb = _input_rgb8(scene.image_bytes)
        assert rgb is not None
        assert scene.chart_type is not None
        centres = patch_centres(scene.chart_type, scene.corners)
        margin = patch_pitch(centres, scene.chart_type)
        left, top = np.maximum(np.floor(scene.corners.min(axis=0) - margin), 0).astype(int)
        right, bottom = np.ceil(scene.corners.max(axis=0) + margin).astype(int)
        crop = np.ascontiguousarray(rgb[top : bottom + 1, left : right + 1])
        return cls(crop, centres - [left, top], reference)

    def delta_e2000(self, rgb8: NDArray[np.uint8]) -> float:
        return float(np.mean(chart_delta_e2000(rgb8, self.centres, self.reference)))


def compare_on_scenes(scenes: Iterable[SyntheticScene]) -> dict[str, PipelineScores]:
    """Every pipeline on every rendered scene, scored against the scene's ground truth, and its
    correction scored on the held-out chart photographed under the same conditions."""
    reference = reference_chart()
    held_out_reference = reference_chart(HELD_OUT_CHART)
    scores = {name: PipelineScores(name) for name in pipeline_names()}
    for index, scene in enumerate(scenes):
        if scene.chart_type != CHART:
            raise ValueError(f"scene {scene.seed} has a {scene.chart_type}; the comparison needs a {CHART}")
        truth = patch_centres(CHART, scene.corners)
        original = _input_rgb8(scene.image_bytes)
        assert original is not None
        before = float(np.mean(chart_delta_e2000(original, truth, reference)))
        held_out = HeldOutChart.of(with_other_chart(scene, HELD_OUT_CHART), held_out_reference)
        held_out_before = held_out.delta_e2000(held_out.pixels)
        for outcome in _run_all(scene.image_bytes):
            score = scores[outcome.pipeline]
            score.photos += 1
            score.seconds.append(outcome.seconds)
            if not outcome.detected:
                score.notes.append(f"scene {scene.seed}: {outcome.note or 'nothing found'}")
                continue
            score.detected += 1
            if not detection_correct(outcome.centres, truth):
                score.notes.append(f"scene {scene.seed}: chart found in the wrong place")
                continue
            assert outcome.corrected is not None
            after = float(np.mean(chart_delta_e2000(outcome.corrected, truth, reference)))
            score.correct += 1
            score.delta_e_before.append(before)
            score.delta_e_after.append(after)
            score.after_by_photo[index] = after
            if outcome.correct_other is not None:
                score.held_out_before_by_photo[index] = held_out_before
                score.held_out_by_photo[index] = held_out.delta_e2000(outcome.correct_other(held_out.pixels))
    return scores


def dataset_photos(root: Path, limit: int | None = None) -> list[Path]:
    photos = sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
    return photos[:limit] if limit is not None else photos


def compare_on_photos(photos: Iterable[Path]) -> dict[str, PipelineScores]:
    """Every pipeline on real photos: found or not, and ΔE2000 at its own centres before and after."""
    reference = reference_chart()
    scores = {name: PipelineScores(name) for name in pipeline_names()}
    for index, path in enumerate(photos):
        data = path.read_bytes()
        original = _input_rgb8(data)
        if original is None:
            continue
        for outcome in _run_all(data):
            score = scores[outcome.pipeline]
            score.photos += 1
            score.seconds.append(outcome.seconds)
            if not outcome.detected or outcome.centres is None or outcome.corrected is None:
                score.notes.append(f"{path.name}: {outcome.note or 'nothing found'}")
                continue
            score.detected += 1
            score.correct += 1
            before = float(np.mean(chart_delta_e2000(original, outcome.centres, reference)))
            after = float(np.mean(chart_delta_e2000(outcome.corrected, outcome.centres, reference)))
            score.delta_e_before.append(before)
            score.delta_e_after.append(after)
            score.after_by_photo[index] = after
    return scores
