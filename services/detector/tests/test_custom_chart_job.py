"""A custom-chart job through the detector and the corrector, with nothing but the events."""

from __future__ import annotations

import uuid

import numpy as np

from chromaline.common.cgats import parse_cgats
from chromaline.common.events.contracts import BlobRef, ChartDetected, CustomChart, JobOptions
from chromaline.corrector.handlers import correct_detected
from chromaline.corrector.settings import CorrectorSettings
from chromaline.detector.handlers import examine
from chromaline.detector.settings import DetectorSettings
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.custom_render import render_custom_chart

ORIGINAL = BlobRef(bucket="originals", key="job/photo.jpg")


def custom_chart() -> CustomChart:
    rng = np.random.default_rng(11)
    lab = np.column_stack([rng.uniform(25, 95, 30), rng.uniform(-50, 50, 30), rng.uniform(-50, 50, 30)])
    rows = "".join(f"S{i} {light:.3f} {a:.3f} {b:.3f}\n" for i, (light, a, b) in enumerate(lab))
    text = f"CGATS.17\nBEGIN_DATA_FORMAT\nSAMPLE_ID LAB_L LAB_A LAB_B\nEND_DATA_FORMAT\nBEGIN_DATA\n{rows}END_DATA\n"
    return CustomChart.from_reference(
        parse_cgats(text), name="studio", rows=5, columns=6, gap=0.2, margin=0.5
    )


def test_custom_chart_job_is_detected_and_corrected_from_the_event() -> None:
    chart = custom_chart()
    photo = render_custom_chart(ChartDefinition.from_contract(chart), seed=5, size=(1600, 1200))
    options = JobOptions(chart_type="custom", custom_chart=chart)
    examined = examine(photo.image_bytes, uuid.uuid4(), ORIGINAL, options, DetectorSettings())
    event = examined.event
    assert isinstance(event, ChartDetected)
    assert event.chart_type == "custom"
    assert [patch.name for patch in event.patches][:3] == ["S0", "S1", "S2"]
    corrected = correct_detected(
        photo.image_bytes, ChartDetected.model_validate_json(event.model_dump_json()), CorrectorSettings()
    )
    assert corrected.measurements.chart_type == "custom"
    assert corrected.measurements.after is not None
    assert corrected.measurements.before is not None
    assert corrected.measurements.after.cie2000.mean < 1.5 < corrected.measurements.before.cie2000.mean
