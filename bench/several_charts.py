"""Photos holding two charts under one light: are both found, and how does the correction fitted
to one do on the other?

Each photo is :func:`chromaline.engine.synthetic.side_by_side_scene`: a Digital SG and a Classic
24 rendered in the same scene, one per half. A chart counts as found when every corner lies within
5 % of its patch grid's diagonal of the truth. The held-out figure is the ΔE2000 of the second
chart's patches after the correction fitted to the first (``CorrectionResult.other_charts``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from chromaline.engine.correct import EngineError, correct_photo
from chromaline.engine.synthetic import side_by_side_scene

PAIRS = (("digital_sg", "classic24"), ("classic24", "digital_sg"))
CORNER_SHARE = 0.05


@dataclass
class SeveralChartScores:
    photos: int = 0
    charts: int = 0
    found: int = 0
    held_out_before: list[float] = field(default_factory=list)
    held_out_after: list[float] = field(default_factory=list)

    @property
    def mean_held_out_before(self) -> float | None:
        return statistics.fmean(self.held_out_before) if self.held_out_before else None

    @property
    def mean_held_out_after(self) -> float | None:
        return statistics.fmean(self.held_out_after) if self.held_out_after else None


def _placed(corners: list[tuple[float, float]] | np.ndarray, truth: np.ndarray) -> bool:
    diagonal = float(np.linalg.norm(truth[2] - truth[0]))
    return float(np.linalg.norm(np.asarray(corners) - truth, axis=1).max()) <= CORNER_SHARE * diagonal


def score_several_charts(seeds: range) -> SeveralChartScores:
    scores = SeveralChartScores()
    for seed in seeds:
        for pair in PAIRS:
            scene = side_by_side_scene(seed, *pair)
            scores.photos += 1
            scores.charts += 2
            try:
                result = correct_photo(scene.image_bytes)
            except EngineError:
                continue
            if result.measurement is None:
                continue
            fitted = result.measurement.detection
            scores.found += int(_placed(fitted.corners, scene.corners[fitted.chart_type]))
            for other in result.other_charts:
                if not _placed(other.corners, scene.corners[other.chart_type]):
                    continue
                scores.found += 1
                if other.delta_e2000_before is not None and other.delta_e2000_after is not None:
                    scores.held_out_before.append(other.delta_e2000_before.mean)
                    scores.held_out_after.append(other.delta_e2000_after.mean)
    return scores
