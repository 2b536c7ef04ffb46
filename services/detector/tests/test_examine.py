"""What the detector concludes about one photo: found on its own, or at the corners the uploader gave."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from chromaline.common.events.contracts import BlobRef, ChartDetected, JobOptions, ProcessingFailed
from chromaline.detector import handlers
from chromaline.detector.handlers import examine
from chromaline.detector.settings import DetectorSettings
from chromaline.engine.detect import DetectionOutcome, detect_charts
from chromaline.engine.synthetic import render_scene, side_by_side_scene

SIZE = (1200, 900)
ORIGINAL = BlobRef(bucket="originals", key="job/photo.jpg")


def _corners(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def test_corners_on_the_chart_are_measured_and_corners_elsewhere_refused() -> None:
    scene = render_scene(7, size=SIZE)
    settings = DetectorSettings()
    on_chart = examine(
        scene.image_bytes, uuid.uuid4(), ORIGINAL, JobOptions(corners=_corners(scene.corners)), settings
    )
    assert isinstance(on_chart.event, ChartDetected)

    centre = scene.corners.mean(axis=0)
    far_corner = np.array(
        [0.0 if centre[0] > SIZE[0] / 2 else SIZE[0], 0.0 if centre[1] > SIZE[1] / 2 else SIZE[1]]
    )
    elsewhere = far_corner + 0.3 * (scene.corners - centre) + 0.25 * (centre - far_corner)
    refused = examine(
        scene.image_bytes, uuid.uuid4(), ORIGINAL, JobOptions(corners=_corners(elsewhere)), settings
    )
    assert isinstance(refused.event, ProcessingFailed)
    assert refused.event.reason == "not_a_chart"
    assert refused.detection.outcome == "failed"


def test_corners_of_one_chart_still_report_the_other_chart_beside_it() -> None:
    """A photo sent again with one chart's corners ('correct with this chart') keeps the chart it
    was corrected with before in other_charts (a job with corners used to skip every search)."""
    scene = side_by_side_scene(4, "digital_sg", "classic24")
    options = JobOptions(chart_type="classic24", corners=_corners(scene.corners["classic24"]))
    examined = examine(scene.image_bytes, uuid.uuid4(), ORIGINAL, options, DetectorSettings())
    assert isinstance(examined.event, ChartDetected)
    assert examined.event.chart_type == "classic24"
    assert examined.event.charts_found == 2
    [other] = examined.event.other_charts
    assert other.chart_type == "digital_sg"
    assert np.abs(np.array(other.corners) - scene.corners["digital_sg"]).max() < 6.0


def test_a_jpeg_is_searched_on_its_reduced_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the engine, the chart is looked for on the JPEG decoded at a reduced scale, not on a
    downscale of the full decode (which cost the detector twice the CPU of the engine's search)."""
    searched_with: list[object] = []

    def detect_and_note(image: object, chart_type: str, **options: object) -> DetectionOutcome:
        searched_with.append(options.get("candidates"))
        return detect_charts(image, chart_type, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(handlers, "detect_charts", detect_and_note)
    scene = render_scene(7, size=SIZE)
    examined = examine(scene.image_bytes, uuid.uuid4(), ORIGINAL, JobOptions(), DetectorSettings())
    assert isinstance(examined.event, ChartDetected)
    assert np.abs(np.array(examined.event.corners) - scene.corners).max() < 3.0
    [candidates] = searched_with
    assert candidates is not None


def test_the_preview_is_searched_while_the_photo_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The full decode does not wait for the preview search, nor the search for the decode: the
    decode here only returns once the search has started."""
    searching = threading.Event()
    search = handlers.search_preview
    decode = handlers.decode_image
    overlapped: list[bool] = []

    def noted_search(data: bytes, chart_type: str) -> object:
        searching.set()
        return search(data, chart_type)

    def decode_during_the_search(data: bytes, **options: object) -> object:
        overlapped.append(searching.wait(timeout=10))
        return decode(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(handlers, "search_preview", noted_search)
    monkeypatch.setattr(handlers, "decode_image", decode_during_the_search)
    scene = render_scene(7, size=SIZE)
    examined = examine(scene.image_bytes, uuid.uuid4(), ORIGINAL, JobOptions(), DetectorSettings())
    assert isinstance(examined.event, ChartDetected)
    assert overlapped == [True]
