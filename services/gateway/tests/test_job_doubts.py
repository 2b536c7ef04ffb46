"""The job view shows why a job raised doubt: the box offered when detection was unsure, and the
warnings of a correction that succeeded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from chromaline.common.events.contracts import BlobRef, ChartCandidate, ChartNotFound, ImageCorrected
from chromaline.common.measurements import ResultWarning
from chromaline.gateway.jobs import apply_event
from chromaline.gateway.models import Job
from chromaline.gateway.views import job_view

ORIGINAL = BlobRef(bucket="originals", key="job/original.jpg")


def _job(state: str) -> Job:
    return Job(
        id=uuid.uuid4(),
        filename="photo.jpg",
        state=state,
        options={},
        original={"bucket": "originals", "key": "job/original.jpg"},
        results={},
        stage_times={},
        warnings=[],
        created_at=datetime.now(UTC),
    )


def test_an_unsure_detection_fails_with_the_box_offered() -> None:
    job = _job("detecting")
    corners = [(10.0, 10.0), (110.0, 10.0), (110.0, 80.0), (10.0, 80.0)]
    apply_event(
        job,
        ChartNotFound(
            job_id=job.id,
            original=ORIGINAL,
            reason="low_confidence",
            message="unsure",
            candidate=ChartCandidate(chart_type="classic24", corners=corners, confidence=0.6),
        ),
    )
    view = job_view(job)
    assert view["state"] == "failed"
    assert view["reason"] == "low_confidence"
    assert view["candidate"] == {
        "chart_type": "classic24",
        "corners": [list(c) for c in corners],
        "confidence": 0.6,
    }


def test_a_corrected_job_lists_its_warnings() -> None:
    job = _job("correcting")
    warning = ResultWarning(code="small_patches", message="the chart's patches are about 9 px across")
    apply_event(
        job,
        ImageCorrected(
            job_id=job.id,
            original=ORIGINAL,
            corrected=BlobRef(bucket="results", key="job/corrected.jpg"),
            profile=BlobRef(bucket="results", key="job/profile.json"),
            method="linear3x3",
            chart_type="classic24",
            delta_e2000_before=None,
            delta_e2000_after=None,
            warnings=[warning],
        ),
    )
    assert job_view(job)["warnings"] == [{"code": "small_patches", "message": warning.message}]
