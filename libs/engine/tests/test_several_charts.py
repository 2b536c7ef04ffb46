"""Photos that hold more than one chart: every chart found is reported, the most confident first."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from chromaline.common.measurements import OtherChart
from chromaline.engine.correct import check_found_charts, correct_photo, measure, search_preview
from chromaline.engine.detect import ChartDetection, detect_charts
from chromaline.engine.image_io import decode_image
from chromaline.engine.synthetic import render_scene, side_by_side_scene

CORNER_TOLERANCE_PX = 6.0


def _corner_error(detection: ChartDetection, truth: NDArray[np.float64]) -> float:
    return float(np.linalg.norm(detection.corners - truth, axis=1).max())


@pytest.mark.parametrize("seed", [1, 4])
@pytest.mark.parametrize("with_preview", [True, False])
def test_a_digital_sg_and_a_classic_24_are_both_found_and_placed(seed: int, with_preview: bool) -> None:
    """Once one chart is found, charts of the other types are still looked for (before, the
    search stopped at the first type found and the Classic 24 beside the SG went unreported).
    Without a JPEG preview (a PNG or TIFF), a preview-sized copy is searched instead."""
    scene = side_by_side_scene(seed, "digital_sg", "classic24")
    data, truth = scene.image_bytes, scene.corners
    candidates = search_preview(data, "auto") if with_preview else None
    outcome = detect_charts(decode_image(data), "auto", candidates=candidates)
    found = {detection.chart_type: detection for detection in outcome.detections}
    assert set(found) == {"digital_sg", "classic24"}
    for chart_type, detection in found.items():
        assert _corner_error(detection, truth[chart_type]) <= CORNER_TOLERANCE_PX
    confidences = [detection.confidence for detection in outcome.detections]
    assert confidences == sorted(confidences, reverse=True)


def test_measure_reports_the_other_chart_beside_the_one_it_measures() -> None:
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    measurement = measure(scene.image_bytes)
    assert measurement.charts_found == 2
    [other] = measurement.other_charts
    assert {measurement.detection.chart_type, other.chart_type} == {"digital_sg", "classic24"}
    assert _corner_error(other, scene.corners[other.chart_type]) <= CORNER_TOLERANCE_PX


@pytest.mark.parametrize("given", ["classic24", "digital_sg"])
def test_a_chart_placed_by_hand_still_reports_the_other_chart_beside_it(given: str) -> None:
    """'Correct with this chart' sends the photo again with that chart's corners: the chart the
    photo was corrected with before is still found and checked (it was dropped: a job with corners
    skipped every search)."""
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    corners = [(float(x), float(y)) for x, y in scene.corners[given]]
    result = correct_photo(scene.image_bytes, chart_type=given, corners=corners)
    assert result.measurement is not None
    assert result.measurement.detection.chart_type == given
    [other] = result.measurement.other_charts
    assert other.chart_type != given
    assert _corner_error(other, scene.corners[other.chart_type]) <= CORNER_TOLERANCE_PX
    [checked] = result.other_charts
    assert checked.chart_type == other.chart_type


def test_a_chart_given_by_type_is_the_only_type_looked_for() -> None:
    data = side_by_side_scene(1, "digital_sg", "classic24").image_bytes
    outcome = detect_charts(decode_image(data), "classic24", candidates=search_preview(data, "classic24"))
    assert [detection.chart_type for detection in outcome.detections] == ["classic24"]


def test_a_photo_with_one_chart_reports_no_other() -> None:
    scene = render_scene(3, size=(2000, 1500))
    measurement = measure(scene.image_bytes)
    assert measurement.other_charts == []
    assert measurement.charts_found == 1


def test_the_correction_fitted_to_one_chart_is_checked_on_the_other() -> None:
    """The Classic 24 beside the Digital SG took no part in the fit: its ΔE2000 after correction
    is a held-out check, and it falls well below its ΔE2000 as shot."""
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    result = correct_photo(scene.image_bytes)
    [other] = result.other_charts
    assert result.measurement is not None
    assert {other.chart_type, result.measurement.detection.chart_type} == {"digital_sg", "classic24"}
    assert 0.75 * (24 if other.chart_type == "classic24" else 140) <= other.patches_compared
    assert other.delta_e2000_before is not None
    assert other.delta_e2000_after is not None
    assert other.delta_e2000_after.mean < 0.6 * other.delta_e2000_before.mean
    assert other.delta_e2000_after.mean < 4.0
    assert result.measurements("two-charts.jpg").other_charts == [other]


def test_charts_found_by_another_process_are_checked_alike() -> None:
    """The corrector gets the other charts' corners from the detector's event and checks them on
    its own decode of the photo: the same figures as the one-process path."""
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    result = correct_photo(scene.image_bytes)
    [other] = result.other_charts
    [again] = check_found_charts(decode_image(scene.image_bytes), [other], result.correction)
    assert again.delta_e2000_after is not None
    assert other.delta_e2000_after is not None
    assert again.delta_e2000_after.mean == pytest.approx(other.delta_e2000_after.mean, abs=0.05)


@pytest.mark.parametrize(
    "corners",
    [
        [(10.0, 10.0)] * 4,
        [(1e9, 1e9), (2e9, 1e9), (2e9, 2e9), (1e9, 2e9)],
    ],
    ids=["one point", "far outside the photo"],
)
def test_corners_that_cannot_be_sampled_leave_the_check_out_and_the_job_standing(
    corners: list[tuple[float, float]],
) -> None:
    """Corners come from another process's event: four times one point made the sampling raise
    (a singular homography) and failed the whole correction."""
    scene = render_scene(3, size=(1200, 900))
    result = correct_photo(scene.image_bytes)
    [checked] = check_found_charts(
        decode_image(scene.image_bytes),
        [OtherChart(chart_type="classic24", corners=corners, confidence=0.9)],
        result.correction,
    )
    assert checked.delta_e2000_after is None
    assert checked.patches_compared == 0
