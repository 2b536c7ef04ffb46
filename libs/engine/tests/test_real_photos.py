"""Detection on real annotated photos (the shared developer set beside the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chromaline.engine.detect import MIN_CONFIDENCE, DetectionOutcome, detect_charts
from chromaline.engine.geometry import patch_centres
from chromaline.engine.image_io import decode_image

REAL_PHOTOS = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "real"
pytestmark = pytest.mark.skipif(
    not (REAL_PHOTOS / "corners.json").is_file(), reason=f"the annotated real photos are not at {REAL_PHOTOS}"
)


def _detect(name: str) -> DetectionOutcome:
    return detect_charts(decode_image((REAL_PHOTOS / name).read_bytes()))


def _truth(name: str) -> np.ndarray:
    return np.asarray(json.loads((REAL_PHOTOS / "corners.json").read_text())[name]["corners"], dtype=float)


def _corner_error(name: str, corners: np.ndarray) -> float:
    """Mean corner distance from the annotation, as a share of the annotated grid's diagonal."""
    truth = _truth(name)
    diagonal = (np.linalg.norm(truth[2] - truth[0]) + np.linalg.norm(truth[3] - truth[1])) / 2
    return float(np.linalg.norm(corners - truth, axis=1).mean() / diagonal)


@pytest.mark.parametrize(
    ("name", "chart_type"),
    [
        ("qiu-digital-sg.png", "digital_sg"),
        ("darsia-fluidflower-baseline.jpg", "classic24"),
        ("jarrelscy-203518.jpg", "classic24"),
    ],
)
def test_charts_the_first_search_misses_are_found_in_place(name: str, chart_type: str) -> None:
    outcome = _detect(name)
    assert outcome.detections, outcome.message
    best = outcome.detections[0]
    assert best.chart_type == chart_type
    assert best.confidence >= MIN_CONFIDENCE
    assert _corner_error(name, best.corners) < 0.05


def test_a_box_that_only_resembles_the_chart_is_offered_not_reported() -> None:
    outcome = _detect("plantcv-tobacco_leaves.jpg")
    assert outcome.detections == []
    assert outcome.reason == "low_confidence"
    assert outcome.candidate is not None
    assert outcome.candidate.confidence < MIN_CONFIDENCE


def test_a_tiny_chart_is_refined_on_an_enlarged_crop_so_the_box_offered_is_in_place() -> None:
    outcome = _detect("plantcv-tobacco_leaves.jpg")
    assert outcome.candidate is not None
    assert _corner_error("plantcv-tobacco_leaves.jpg", outcome.candidate.corners) < 0.05


FLAG_ONLY = {"hdri-tonemapped-clipped-classic.png": "overexposed"}
"""Photos whose right answer is a refusal with this reason (the chart is blown out)."""
MIN_RIGHT = 28


def _right(name: str, outcome: DetectionOutcome) -> bool:
    """Found within 5 % of the annotated diagonal with patch 1 in place, or refused as expected."""
    if not outcome.detections:
        return FLAG_ONLY.get(name) == outcome.reason
    best = outcome.detections[0]
    chart = json.loads((REAL_PHOTOS / "corners.json").read_text())[name]["chart"]
    truth_type = "digital_sg" if "Digital SG" in chart else "classic24"
    ours = patch_centres(best.chart_type, best.corners)[0]
    first = np.linalg.norm(patch_centres(truth_type, _truth(name)) - ours, axis=1)
    return _corner_error(name, best.corners) < 0.05 and int(np.argmin(first)) == 0


def test_every_annotated_photo_is_found_in_place_or_refused_and_no_wrong_box_is_reported() -> None:
    names = sorted(json.loads((REAL_PHOTOS / "corners.json").read_text()))
    outcomes = {name: _detect(name) for name in names}
    wrong = [n for n, o in outcomes.items() if o.detections and not _right(n, o)]
    right = [n for n, o in outcomes.items() if _right(n, o)]
    assert wrong == []
    assert len(right) >= MIN_RIGHT, sorted(set(names) - set(right))


def test_a_chart_blown_out_by_a_lamp_is_refused_as_overexposed() -> None:
    outcome = _detect("hdri-tonemapped-clipped-classic.png")
    assert outcome.detections == []
    assert outcome.reason == "overexposed"


def test_callers_that_do_not_need_the_chart_can_leave_out_the_small_chart_search() -> None:
    image = decode_image((REAL_PHOTOS / "darsia-fluidflower-baseline.jpg").read_bytes())
    assert detect_charts(image, small_charts=False).detections == []
    assert detect_charts(image).detections
