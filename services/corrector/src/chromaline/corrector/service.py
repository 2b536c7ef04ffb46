"""The corrector service: fits, applies and measures colour corrections."""

from __future__ import annotations

from pathlib import Path

from chromaline.common.blobs import buckets
from chromaline.common.entrypoint import ServiceEntry
from chromaline.common.runtime import ServiceSpec
from chromaline.corrector.handlers import NAME, on_chart_detected, on_image_uploaded, on_job_expired
from chromaline.corrector.settings import CorrectorSettings

SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    buckets=(buckets.CORRECTED,),
    handlers={
        "chart.detected": on_chart_detected,
        "image.uploaded": on_image_uploaded,
        "job.expired": on_job_expired,
    },
    prefetch=1,
)


def load_settings() -> CorrectorSettings:
    return CorrectorSettings.for_service(NAME)


ENTRY = ServiceEntry(SPEC, load_settings)
