"""The corrector writes the image the engine writes for the same photo and measurements."""

from __future__ import annotations

import uuid

import pytest

from chromaline.common.events.contracts import BlobRef, ChartDetected, JobOptions
from chromaline.corrector.handlers import correct_detected
from chromaline.corrector.settings import CorrectorSettings
from chromaline.engine.correct import correct_photo
from chromaline.engine.encode import OutputFormat
from chromaline.engine.synthetic import render_scene


@pytest.mark.parametrize("output_format", ["jpeg", "png"])
def test_a_photo_is_corrected_into_the_bytes_the_engine_writes(output_format: OutputFormat) -> None:
    """A JPEG is corrected and encoded strip by strip on two threads, as ``correct_photo`` does,
    not corrected whole and then encoded on one thread."""
    photo = render_scene(4, size=(1200, 900)).image_bytes
    engine = correct_photo(photo, output_format=output_format)
    measurement = engine.measurement
    assert measurement is not None
    event = ChartDetected(
        job_id=uuid.uuid4(),
        original=BlobRef(bucket="originals", key="job/photo.jpg"),
        chart_type=measurement.detection.chart_type,
        reference_edition="2014",
        corners=[(float(x), float(y)) for x, y in measurement.detection.corners],
        confidence=measurement.detection.confidence,
        image_size=(1200, 900),
        patches=[patch.as_sample() for patch in measurement.patches],
        charts_found=1,
        other_charts=[],
        options=JobOptions(output_format=output_format),
    )
    corrected = correct_detected(photo, event, CorrectorSettings())
    assert corrected.method == engine.correction.spec.label
    assert corrected.image.data == engine.encoded.data
