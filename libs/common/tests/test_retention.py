"""What a worker deletes on ``job.expired``, and from whom it accepts the event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import BlobRef, JobExpired
from chromaline.common.events.envelope import make_envelope
from chromaline.common.retention import accept_job_expired, own_blobs
from chromaline.common.settings import ServiceSettings

JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _expired(**changes: object) -> JobExpired:
    values: dict[str, object] = {
        "job_id": JOB,
        "organisation_id": "org",
        "filename": "a.jpg",
        "retention_days": 30,
        "cutoff": datetime(2024, 1, 1, tzinfo=UTC),
        "expired_at": datetime(2024, 1, 31, tzinfo=UTC),
        "original": BlobRef(bucket="originals", key=f"{JOB}/a.jpg"),
        "results": {
            "corrected": BlobRef(bucket="corrected", key=f"{JOB}/corrected.jpg"),
            "profile": BlobRef(bucket="corrected", key=f"{JOB}/profile.json"),
            "report_pdf": BlobRef(bucket="reports", key=f"{JOB}/report.pdf"),
        },
    }
    return JobExpired.model_validate(values | changes)


def test_a_worker_deletes_the_results_in_its_bucket_and_its_own_keys_but_not_what_is_kept() -> None:
    event = _expired(kept=[BlobRef(bucket="corrected", key=f"{JOB}/profile.json")])
    refs = own_blobs(
        event, "corrected", [f"{JOB}/corrected.jpg", f"{JOB}/measurements.json", f"{JOB}/profile.json"]
    )
    assert [(ref.bucket, ref.key) for ref in refs] == [
        ("corrected", f"{JOB}/corrected.jpg"),
        ("corrected", f"{JOB}/measurements.json"),
    ]


def test_a_worker_touches_no_other_bucket() -> None:
    assert [ref.key for ref in own_blobs(_expired(), "reports", [])] == [f"{JOB}/report.pdf"]
    assert own_blobs(_expired(), "originals", []) == []


def test_job_expired_is_accepted_only_from_our_own_services() -> None:
    settings = ServiceSettings(bus_url="amqp://chromaline:secret@broker:5672/", internal_bus_users="ops")
    envelope = make_envelope("gateway", str(JOB), _expired())
    for publisher in ("chromaline", "ops"):
        with delivered_by(publisher):
            assert accept_job_expired(envelope, settings).job_id == JOB
    for stranger in ("acme", None):
        with delivered_by(stranger), pytest.raises(PermanentError, match="not one of our services"):
            accept_job_expired(envelope, settings)


def test_a_job_expired_that_breaks_the_contract_is_dead_lettered() -> None:
    envelope = make_envelope("gateway", str(JOB), _expired())
    broken = envelope.model_copy(update={"data": {**envelope.data, "retention_days": 0}})
    with delivered_by(LOCAL_USER), pytest.raises(PermanentError, match=r"invalid job\.expired"):
        accept_job_expired(broken, ServiceSettings())
