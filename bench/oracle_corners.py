"""Leave-one-patch-out ΔE2000 on real photos at the annotated ("oracle") corners.

Detection is taken out of the comparison: every method sees the same patches, sampled by the
engine at the annotated corners, and is scored on each patch by the fit that left that patch out
(the patches the engine keeps for fitting; clipped or unusable ones are left out for everyone).

- ``chromaline``: the engine's automatic choice of method and objective
  (:func:`chromaline.engine.correct.fit_from_measurements`); its score is its own leave-one-out
  ΔE2000. The choice itself is made by that same score, so this figure flatters it slightly.
- ``Cheung 2004`` / ``Finlayson 2015``: ``colour.characterisation.matrix_colour_correction``
  (Cheung 2004 with 3 terms, i.e. a 3×3 matrix; Finlayson 2015, root-polynomial of degree 2)
  fitted in linear sRGB to the reference, one fit per left-out patch.

Photos whose chart is not a real chart or cannot be measured (``DETECTION_ONLY``) are skipped.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import colour
import numpy as np
from numpy.typing import NDArray

from bench.real_photos import Annotation, load_annotations
from chromaline.engine.correct import EngineError, chart_reference, fit_from_measurements, select_patches
from chromaline.engine.detect import detection_from_corners
from chromaline.engine.image_io import decode_image
from chromaline.engine.metrics import ChartReference, delta_e, working_rgb_to_lab
from chromaline.engine.sample import sample_patches

DETECTION_ONLY_PREFIXES = ("jarrelscy-", "hdri-tonemapped-clipped")
CHROMALINE = "chromaline"
PEER_METHODS: dict[str, dict[str, Any]] = {
    "Cheung 2004": {"method": "Cheung 2004", "terms": 3},
    "Finlayson 2015": {"method": "Finlayson 2015", "degree": 2, "root_polynomial_expansion": True},
}


@dataclass
class OracleScores:
    by_photo: dict[str, dict[str, float]] = field(default_factory=dict)
    """Photo → method → mean leave-one-out ΔE2000."""
    skipped: dict[str, str] = field(default_factory=dict)

    def mean(self, method: str) -> float | None:
        values = [scores[method] for scores in self.by_photo.values() if method in scores]
        return statistics.fmean(values) if values else None

    @property
    def methods(self) -> list[str]:
        return [CHROMALINE, *PEER_METHODS]


def _peer_leave_one_out(
    measured: NDArray[np.float64], reference: ChartReference, used: NDArray[np.bool_], options: dict[str, Any]
) -> float:
    indices = np.flatnonzero(used)
    errors = []
    for left_out in indices:
        train = indices[indices != left_out]
        matrix = colour.characterisation.matrix_colour_correction(
            measured[train], reference.rgb[train], **options
        )
        predicted = colour.characterisation.apply_matrix_colour_correction(
            measured[left_out][None], matrix, **options
        )
        lab = working_rgb_to_lab(np.asarray(predicted, dtype=np.float64), reference.white_xy)
        errors.append(float(delta_e(reference.lab[left_out][None], lab)[0]))
    return statistics.fmean(errors)


def _photo_scores(root: Path, truth: Annotation) -> dict[str, float]:
    image = decode_image((root / truth.name).read_bytes())
    detection = detection_from_corners(truth.chart_type, truth.corners)
    patches = sample_patches(image, detection)
    fit = fit_from_measurements(patches, truth.chart_type)
    scores = {CHROMALINE: fit.cross_validation.cross_validated_mean}
    reference = chart_reference(truth.chart_type, "2014")
    selection = select_patches(patches, reference)
    for name, options in PEER_METHODS.items():
        scores[name] = _peer_leave_one_out(selection.measured, reference, selection.used, options)
    return scores


def score_oracle_corners(root: Path, limit: int | None = None) -> OracleScores:
    """Every method's leave-one-out ΔE2000 on every measurable annotated photo of ``root``."""
    scores = OracleScores()
    for truth in load_annotations(root)[:limit]:
        if truth.name.startswith(DETECTION_ONLY_PREFIXES):
            continue
        try:
            scores.by_photo[truth.name] = _photo_scores(root, truth)
        except EngineError as error:
            scores.skipped[truth.name] = error.code
    return scores
