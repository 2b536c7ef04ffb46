"""Input no camera makes but a hostile or broken client sends: photos one pixel across or a long
strip, four corners on one line, a reference without variation. Each gets an answer (no chart,
not a chart, no agreement) instead of an exception the workers cannot name, or gigabytes."""

from __future__ import annotations

import numpy as np
import pytest

from chromaline.engine.detect import (
    NotAChartError,
    checked_detection_from_corners,
    colour_agreement,
    detect_charts,
    downscale,
)


@pytest.mark.parametrize("shape", [(1, 4000), (4000, 1), (3, 30000), (5, 5), (40, 30000), (100, 60000)])
def test_a_photo_too_narrow_or_too_long_for_a_chart_has_none(shape: tuple[int, int]) -> None:
    """The strips crashed OpenCV's resize (a side of 0 px) or had OpenCV's mcc finder enlarge a
    2 × 1578 working copy to a short side of 1000 px: 789 MB for one allocation."""
    outcome = detect_charts(np.full((*shape, 3), 128, dtype=np.uint8), "auto")
    assert (outcome.detections, outcome.reason) == ([], "no_chart")


@pytest.mark.parametrize("shape", [(1, 4000), (4000, 1), (3, 30000)])
def test_downscaling_a_strip_keeps_every_side_at_least_one_pixel(shape: tuple[int, int]) -> None:
    small, _ = downscale(np.zeros((*shape, 3), dtype=np.uint8), 800)
    assert min(small.shape[:2]) >= 1
    assert max(small.shape[:2]) == 800


@pytest.mark.parametrize(
    "corners",
    [
        [(100.0, 100.0)] * 4,
        [(100.0, 100.0), (200.0, 100.0), (300.0, 100.0), (400.0, 100.0)],
        [(100.0, 100.0), (200.0, 100.0), (300.0, 100.0), (300.0, 300.0)],
        [(100.0, 100.0), (100.0, 100.0), (300.0, 300.0), (100.0, 300.0)],
    ],
    ids=["one-point", "one-line", "three-on-a-line", "two-on-one-point"],
)
def test_corners_that_enclose_no_quadrilateral_are_not_a_chart(corners: list[tuple[float, float]]) -> None:
    """Solving for the chart's homography raised a singular-matrix error."""
    with pytest.raises(NotAChartError):
        checked_detection_from_corners(np.full((500, 500, 3), 128, dtype=np.uint8), "classic24", corners)


def test_a_reference_that_does_not_vary_agrees_with_nothing() -> None:
    """A custom chart of one colour gave a NaN agreement, which passed every threshold check."""
    measured = np.random.default_rng(1).uniform(0.05, 0.9, (24, 3))
    assert colour_agreement(measured, np.full((24, 3), 0.18)) == 0.0
    greys = np.repeat(np.linspace(0.03, 0.9, 24)[:, None], 3, axis=1)
    assert colour_agreement(greys * [1.0, 0.9, 0.8], greys) > 0.99
