"""Detection on real annotated photos (the shared developer set beside the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chromaline.engine.detect import MIN_CONFIDENCE, DetectionOutcome, detect_charts
from chromaline.engine.image_io import decode_image

REAL_PHOTOS = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "real"
pytestmark = pytest.mark.skipif(
    not (REAL_PHOTOS / "corners.json").is_file(), reason=f"the annotated real photos are not at {REAL_PHOTOS}"
)


def _detect(name: str) -> DetectionOutcome:
    return detect_charts(decode_image((REAL_PHOTOS / name).read_bytes()))


def _corner_error(name: str, corners: np.ndarray) -> float:
    """Mean corner distance from the annotation, as a share of the annotated grid's diagonal."""
    truth = np.asarray(json.loads((REAL_PHOTOS / "corners.json").read_text())[name]["corners"], dtype=float)
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


def test_a_chart_blown_out_by_a_lamp_is_refused_as_overexposed() -> None:
    outcome = _detect("hdri-tonemapped-clipped-classic.png")
    assert outcome.detections == []
    assert outcome.reason == "overexposed"


def test_callers_that_do_not_need_the_chart_can_leave_out_the_small_chart_search() -> None:
    image = decode_image((REAL_PHOTOS / "darsia-fluidflower-baseline.jpg").read_bytes())
    assert detect_charts(image, small_charts=False).detections == []
    assert detect_charts(image).detections
