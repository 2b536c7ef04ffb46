"""A photo with several charts: the job view lists those it was not corrected with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from chromaline.common.events.contracts import BlobRef, ChartBox, ChartDetected, JobOptions
from chromaline.gateway.jobs import apply_event
from chromaline.gateway.models import Job
from chromaline.gateway.views import job_view

SG_CORNERS = [(10.0, 10.0), (310.0, 10.0), (310.0, 210.0), (10.0, 210.0)]
CLASSIC_CORNERS = [(400.0, 20.0), (520.0, 20.0), (520.0, 100.0), (400.0, 100.0)]


def _detecting_job() -> Job:
    return Job(
        id=uuid.uuid4(),
        filename="two-charts.jpg",
        state="detecting",
        options={},
        original={"bucket": "originals", "key": "job/original.jpg"},
        results={},
        stage_times={},
        warnings=[],
        other_charts=[],
        created_at=datetime.now(UTC),
    )


def _detected(job: Job, other_charts: list[ChartBox]) -> ChartDetected:
    return ChartDetected(
        job_id=job.id,
        original=BlobRef(bucket="originals", key="job/original.jpg"),
        chart_type="digital_sg",
        reference_edition="2014",
        corners=SG_CORNERS,
        confidence=0.93,
        image_size=(600, 300),
        patches=[],
        charts_found=1 + len(other_charts),
        other_charts=other_charts,
        options=JobOptions(),
    )


def test_the_charts_a_job_was_not_corrected_with_are_listed() -> None:
    job = _detecting_job()
    classic = ChartBox(chart_type="classic24", corners=CLASSIC_CORNERS, confidence=0.88)
    apply_event(job, _detected(job, [classic]))
    view = job_view(job)
    assert view["chart_type"] == "digital_sg"
    assert view["other_charts"] == [
        {
            "chart_type": "classic24",
            "corners": [list(corner) for corner in CLASSIC_CORNERS],
            "confidence": 0.88,
        }
    ]


def test_a_photo_with_one_chart_lists_none() -> None:
    job = _detecting_job()
    apply_event(job, _detected(job, []))
    assert job_view(job)["other_charts"] == []
