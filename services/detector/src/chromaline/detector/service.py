"""The detector service: finds charts in uploaded photos and measures their patches."""

from __future__ import annotations

from pathlib import Path

from chromaline.common.blobs import buckets
from chromaline.common.entrypoint import ServiceEntry
from chromaline.common.runtime import ServiceSpec
from chromaline.detector.handlers import NAME, on_image_uploaded, on_job_expired
from chromaline.detector.settings import DetectorSettings

SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    buckets=(buckets.ORIGINALS,),
    handlers={"image.uploaded": on_image_uploaded, "job.expired": on_job_expired},
    prefetch=1,
)


def load_settings() -> DetectorSettings:
    return DetectorSettings.for_service(NAME)


ENTRY = ServiceEntry(SPEC, load_settings)
