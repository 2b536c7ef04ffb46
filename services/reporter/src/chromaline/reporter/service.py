"""The reporter service: writes each corrected photo's colour report."""

from __future__ import annotations

from pathlib import Path

from chromaline.common.blobs import buckets
from chromaline.common.entrypoint import ServiceEntry
from chromaline.common.runtime import ServiceSpec
from chromaline.reporter.handlers import (
    NAME,
    on_html_requested,
    on_image_corrected,
    on_job_expired,
    on_pdf_requested,
)
from chromaline.reporter.settings import ReporterSettings

SPEC = ServiceSpec(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    buckets=(buckets.REPORTS,),
    handlers={"image.corrected": on_image_corrected, "job.expired": on_job_expired},
    requests={"report.pdf_requested": on_pdf_requested, "report.html_requested": on_html_requested},
    prefetch=1,
)


def load_settings() -> ReporterSettings:
    return ReporterSettings.for_service(NAME)


ENTRY = ServiceEntry(SPEC, load_settings)
