"""The event contracts: envelope behaviour and the checked-in contract documents."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from chromaline.common import correlation
from chromaline.common.events.contracts import (
    EVENTS,
    BlobRef,
    ChartBox,
    ChartDetected,
    ImageUploaded,
    ProcessingFailed,
    ReportReady,
    UnknownEventError,
    parse_data,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.events.schema_export import render_documents

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def _uploaded() -> ImageUploaded:
    return ImageUploaded(
        job_id=uuid.uuid4(), filename="chart.jpg", original=BlobRef(bucket="originals", key="a")
    )


def test_checked_in_documents_match_the_models() -> None:
    expected = render_documents()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in DOCS.glob("*.json")}
    assert on_disk == expected, (
        "docs/events drifted from the event models: run "
        "`python -m chromaline.common.events.schema_export docs/events`"
    )


def test_every_event_has_a_past_tense_routing_key_and_a_schema() -> None:
    for spec in EVENTS:
        assert spec.routing_key.split(".")[-1].endswith(("ed", "found", "ready"))
        schema = json.loads(render_documents()[f"{spec.routing_key}.schema.json"])
        assert schema["properties"]["type"]["const"] == spec.routing_key


def test_envelope_round_trips_through_json() -> None:
    envelope = make_envelope("gateway", "job-1", _uploaded())
    decoded = RawEnvelope.model_validate_json(envelope.model_dump_json())
    assert decoded == envelope
    assert isinstance(parse_data(decoded), ImageUploaded)
    assert decoded.occurred_at.utcoffset() is not None


def test_envelope_inherits_the_correlation_of_the_work_in_hand() -> None:
    with correlation.bound("corr-1", causation_id="evt-0"):
        envelope = make_envelope("detector", "job-1", _uploaded())
    assert envelope.correlation_id == "corr-1"
    assert envelope.causation_id == "evt-0"


def test_envelope_outside_any_work_starts_a_new_correlation() -> None:
    first = make_envelope("gateway", "job-1", _uploaded())
    second = make_envelope("gateway", "job-2", _uploaded())
    assert first.correlation_id != second.correlation_id
    assert first.causation_id is None


def test_unknown_type_and_version_are_refused() -> None:
    envelope = make_envelope("gateway", "job-1", _uploaded())
    with pytest.raises(UnknownEventError):
        parse_data(envelope.model_copy(update={"type": "image.exploded"}))
    with pytest.raises(UnknownEventError):
        parse_data(envelope.model_copy(update={"schema_version": 99}))


def test_report_ready_versions_before_the_drawing_was_made_on_request_are_still_read() -> None:
    report = BlobRef(bucket="reports", key="j/report.json")
    job_id = uuid.uuid4()
    current = make_envelope(
        "reporter",
        str(job_id),
        ReportReady(job_id=job_id, report_json=report, figures_on_request=["chromaticity", "delta_e"]),
    )
    assert current.schema_version == 3
    parsed = parse_data(current)
    assert isinstance(parsed, ReportReady)
    assert (parsed.report_html, parsed.report_pdf, parsed.figures) == (None, None, {})
    html = BlobRef(bucket="reports", key="j/report.html")
    figure = BlobRef(bucket="reports", key="j/figure-delta_e.svg")
    second = {**current.data, "report_html": html.model_dump(), "figures": {"delta_e": figure.model_dump()}}
    second.pop("figures_on_request")
    pdf = BlobRef(bucket="reports", key="j/report.pdf")
    for version, data in ((2, second), (1, {**second, "report_pdf": pdf.model_dump()})):
        earlier = parse_data(current.model_copy(update={"schema_version": version, "data": data}))
        assert isinstance(earlier, ReportReady)
        assert (earlier.report_html, earlier.figures, earlier.figures_on_request) == (
            html,
            {"delta_e": figure},
            [],
        )
    with pytest.raises(UnknownEventError):
        parse_data(current.model_copy(update={"schema_version": 4}))


def test_report_ready_names_only_the_report_figures() -> None:
    with pytest.raises(ValidationError):
        ReportReady.model_validate(
            {
                "job_id": str(uuid.uuid4()),
                "report_json": {"bucket": "reports", "key": "j/report.json"},
                "figures_on_request": ["chromaticity", "../../etc/passwd"],
            }
        )


FIRST_VERSION_DETECTED = {
    "job_id": str(uuid.uuid4()),
    "original": {"bucket": "originals", "key": "a"},
    "chart_type": "digital_sg",
    "reference_edition": "2014",
    "corners": [[0, 0], [60, 0], [60, 40], [0, 40]],
    "confidence": 0.9,
    "image_size": [100, 50],
    "patches": [],
    "charts_found": 1,
    "options": {},
}
"""A ``chart.detected`` as its first version's producers send it: no ``other_charts``."""


def test_a_chart_detected_lists_the_other_charts_and_its_first_version_is_still_read() -> None:
    envelope = make_envelope("detector", "job", ChartDetected.model_validate(FIRST_VERSION_DETECTED))
    assert envelope.schema_version == 2
    first = envelope.model_copy(update={"schema_version": 1, "data": FIRST_VERSION_DETECTED})
    assert parse_data(first).other_charts == []
    other = {"chart_type": "classic24", "corners": [[70, 0], [95, 0], [95, 20], [70, 20]], "confidence": 0.8}
    two_charts = {**FIRST_VERSION_DETECTED, "charts_found": 2, "other_charts": [other]}
    [listed] = parse_data(envelope.model_copy(update={"data": two_charts})).other_charts
    assert listed == ChartBox.model_validate(other)
    with pytest.raises(ValidationError):
        ChartBox.model_validate({**other, "corners": [[float("nan"), 0], [95, 0], [95, 20], [70, 20]]})


def test_data_that_does_not_match_its_type_is_refused() -> None:
    envelope = make_envelope("gateway", "job-1", _uploaded())
    with pytest.raises(ValidationError):
        parse_data(envelope.model_copy(update={"type": "processing.failed"}))


def test_an_upload_names_exactly_one_source() -> None:
    with pytest.raises(ValidationError):
        ImageUploaded(job_id=uuid.uuid4(), filename="a.jpg")
    with pytest.raises(ValidationError):
        ImageUploaded(
            job_id=uuid.uuid4(),
            filename="a.jpg",
            original=BlobRef(bucket="b", key="k"),
            source_url="https://example.org/a.jpg",
        )


def test_unexpected_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        ProcessingFailed.model_validate(
            {"job_id": str(uuid.uuid4()), "stage": "detect", "reason": "x", "message": "m", "extra": 1}
        )
