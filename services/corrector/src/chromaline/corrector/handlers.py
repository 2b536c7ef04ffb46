"""The corrector fits a correction to each measured chart, applies it and stores the results.

Jobs that carry a saved profile arrive as ``image.uploaded`` and skip detection: the profile is
applied as it is. When a job expires, its results go (``job.expired``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import Delete, delete

from chromaline.common import inbox
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError, BlobStore, BlobUpload
from chromaline.common.bus.base import PermanentError, current_publisher
from chromaline.common.bus.publishers import is_known_publisher
from chromaline.common.events.contracts import (
    PROCESSING_ERROR,
    BlobRef,
    ChartDetected,
    Contract,
    DeltaESummary,
    ImageCorrected,
    ImageUploaded,
    JobOptions,
    PhotoPreviewRefs,
    ProcessingFailed,
    UnknownEventError,
    parse_data,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.forgotten_jobs import forgotten_now, job_transaction
from chromaline.common.job_publishers import claim_job, may_read, owner_name
from chromaline.common.logging import get_logger
from chromaline.common.measurements import Measurements, OtherChart, Summary
from chromaline.common.metrics import observe_stage_times, stage
from chromaline.common.outbox import add_to_outbox
from chromaline.common.retention import forget_expired_job
from chromaline.common.runtime import ServiceRuntime
from chromaline.corrector.models import Correction as CorrectionRow
from chromaline.corrector.settings import CorrectorSettings
from chromaline.engine.correct import (
    EngineError,
    apply_and_encode,
    check_found_charts,
    correct_photo,
    fit_from_measurements,
    measurements_document,
)
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.encode import EXTENSIONS, EncodedImage, EncodeError
from chromaline.engine.image_io import UnsupportedImageError, decode_image
from chromaline.engine.previews import PhotoPreviews, photo_previews
from chromaline.engine.profile import Profile, ProfileError, dump_profile, load_profile, to_cube
from chromaline.engine.rating import DEFAULT_GUIDELINE, Guideline, guideline_named

NAME = "corrector"
PROFILE_FILE = "profile.json"
CUBE_FILE = "profile.cube"
MEASUREMENTS_FILE = "measurements.json"
PREVIEW_FILES = {"original": "preview-original.jpg", "corrected": "preview-corrected.jpg"}
log = get_logger(__name__)


def corrected_file(extension: str) -> str:
    """The corrected image's file name; ``extension`` comes with its dot (``.jpg``)."""
    return f"corrected{extension}"


def result_keys(job_id: uuid.UUID) -> list[str]:
    """Every key the corrector may have written for a job, whatever its output format."""
    names = [*(corrected_file(extension) for extension in EXTENSIONS.values()), PROFILE_FILE, CUBE_FILE]
    return [f"{job_id}/{name}" for name in [*names, MEASUREMENTS_FILE, *PREVIEW_FILES.values()]]


@dataclass(frozen=True)
class Corrected:
    """The products of one correction, before they are stored."""

    image: EncodedImage
    profile: Profile
    measurements: Measurements
    method: str
    previews: PhotoPreviews


def rating_guideline(options: JobOptions) -> Guideline:
    """The guideline a job's report leads with (the gateway fills in the organisation's choice)."""
    return DEFAULT_GUIDELINE if options.guideline is None else guideline_named(options.guideline)


def _custom_chart(options: JobOptions) -> ChartDefinition | None:
    return ChartDefinition.from_contract(options.custom_chart) if options.custom_chart is not None else None


def correct_detected(data: bytes, event: ChartDetected, settings: CorrectorSettings) -> Corrected:
    """Fit to the detector's patch measurements and apply to the whole photo (CPU-bound)."""
    options = event.options
    with stage(NAME, "decode"):
        image = decode_image(data, max_pixels=settings.max_pixels)
    with stage(NAME, "fit"):
        fit = fit_from_measurements(
            event.patches,
            event.chart_type,
            event.reference_edition,
            options.method,
            chart=_custom_chart(options),
            linear_camera=image.linear_camera,
        )
    timings: dict[str, float] = {}
    encoded = apply_and_encode(
        image,
        fit.correction,
        timings,
        output_format=options.output_format,
        bit_depth=8 if options.output_format == "jpeg" else options.bit_depth,
        output_space=options.output_space,
    )
    observe_stage_times(NAME, timings)
    with stage(NAME, "previews"):
        previews = photo_previews(image, fit.correction)
    filename = event.original.key.rsplit("/", 1)[-1]
    document = measurements_document(
        filename=filename,
        correction=fit.correction,
        reference=fit.reference,
        patches=event.patches,
        image_size=(image.width, image.height),
        corners=event.corners,
        cross_validated_delta_e2000=fit.cross_validation.cross_validated_mean,
        job_id=event.job_id,
        guideline=rating_guideline(options),
        chart=_custom_chart(options),
        other_charts=check_found_charts(
            image,
            [OtherChart.model_validate(box.model_dump()) for box in event.other_charts],
            fit.correction,
            event.reference_edition,
        ),
    )
    return Corrected(encoded, fit.profile(filename, image), document, fit.correction.spec.label, previews)


def correct_with_profile(data: bytes, event: ImageUploaded, profile: Profile) -> Corrected:
    """Apply a saved profile; the photo's own chart, if any, is measured to check it (CPU-bound)."""
    options = event.options
    result = correct_photo(
        data,
        chart_type=options.chart_type,
        edition=options.reference_edition,
        profile=profile,
        corners=options.corners,
        output_format=options.output_format,
        bit_depth=options.bit_depth,
        source_filename=event.filename,
        output_space=options.output_space,
        guideline=rating_guideline(options),
        chart=_custom_chart(options),
        previews=True,
    )
    observe_stage_times(NAME, result.timings)
    assert result.previews is not None
    return Corrected(
        result.encoded,
        profile,
        result.measurements(event.filename, event.job_id),
        result.method,
        result.previews,
    )


def _summary(summary: Summary | None) -> DeltaESummary | None:
    if summary is None:
        return None
    return DeltaESummary(mean=summary.mean, median=summary.median, p95=summary.p95, max=summary.max)


async def _store(
    blobs: BlobStore, job_id: uuid.UUID, corrected: Corrected, cube_size: int
) -> dict[str, BlobRef]:
    prefix = str(job_id)
    image = corrected.image
    items = {
        "corrected": (corrected_file(image.extension), image.data, image.content_type),
        "profile": (PROFILE_FILE, dump_profile(corrected.profile).encode(), "application/json"),
        "profile_cube": (
            CUBE_FILE,
            to_cube(corrected.profile, cube_size).encode(),
            "text/plain; charset=utf-8",
        ),
        "measurements": (
            MEASUREMENTS_FILE,
            corrected.measurements.model_dump_json(indent=2).encode(),
            "application/json",
        ),
        **{
            f"preview_{name}": (filename, getattr(corrected.previews, name).data, "image/jpeg")
            for name, filename in PREVIEW_FILES.items()
        },
    }
    uploads = {
        name: BlobUpload(buckets.CORRECTED, f"{prefix}/{filename}", data, content_type)
        for name, (filename, data, content_type) in items.items()
    }
    await blobs.put_many(list(uploads.values()))
    return {name: BlobRef(bucket=upload.bucket, key=upload.key) for name, upload in uploads.items()}


async def _record(
    runtime: ServiceRuntime,
    envelope: RawEnvelope,
    job_id: uuid.UUID,
    outcome: Callable[[], Awaitable[tuple[CorrectionRow, Contract]]],
) -> None:
    """Store the job's products and announce them (``outcome``) under the job's lock, unless the
    job was forgotten meanwhile: then nothing is stored."""
    async with job_transaction(runtime, job_id) as session:
        if session is None:
            log.info("corrector.forgotten_job_skipped", job_id=str(job_id))
            return
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        row, event = await outcome()
        await session.merge(row)
        await add_to_outbox(session, make_envelope(NAME, str(job_id), event))


async def _correct_and_announce(
    runtime: ServiceRuntime,
    envelope: RawEnvelope,
    job_id: uuid.UUID,
    original: BlobRef,
    chart_type: str | None,
    compute: Callable[[], Corrected],
) -> None:
    """Run the correction in a worker thread, store its products and announce the outcome."""
    settings = runtime.settings
    assert isinstance(settings, CorrectorSettings)
    try:
        corrected = await asyncio.to_thread(compute)
    except Exception as error:  # the photo is the same on every retry: fail the job, say why
        known = EngineError | UnsupportedImageError | EncodeError | ProfileError | OriginalMissingError
        if isinstance(error, known):
            code, message = getattr(error, "code", "invalid_profile"), str(error)
        else:
            log.exception("corrector.correction_failed", job_id=str(job_id))
            code = PROCESSING_ERROR
            message = f"the photo could not be corrected ({type(error).__name__}); the error is logged"
        failed = ProcessingFailed(job_id=job_id, stage="correct", reason=code, message=message)
        row = CorrectionRow(job_id=job_id, outcome="failed", reason=code, message=message)

        async def refused() -> tuple[CorrectionRow, Contract]:
            return row, failed

        await _record(runtime, envelope, job_id, refused)
        log.info("corrector.refused", job_id=str(job_id), reason=code)
        return

    async def stored() -> tuple[CorrectionRow, Contract]:
        with stage(NAME, "store"):
            refs = await _store(runtime.blobs, job_id, corrected, settings.cube_size)
        return _announced(job_id, original, chart_type, corrected, refs)

    await _record(runtime, envelope, job_id, stored)
    log.info("corrector.corrected", job_id=str(job_id), method=corrected.method)


def _announced(
    job_id: uuid.UUID,
    original: BlobRef,
    chart_type: str | None,
    corrected: Corrected,
    refs: dict[str, BlobRef],
) -> tuple[CorrectionRow, Contract]:
    """The corrector's row and ``image.corrected`` for a correction whose products are stored."""
    document = corrected.measurements
    before = document.before.cie2000 if document.before else None
    after = document.after.cie2000 if document.after else None
    event = ImageCorrected(
        job_id=job_id,
        original=original,
        corrected=refs["corrected"],
        profile=refs["profile"],
        profile_cube=refs["profile_cube"],
        method=corrected.profile.method,
        chart_type=chart_type,
        delta_e2000_before=_summary(before),
        delta_e2000_after=_summary(after),
        cross_validated_delta_e2000=document.cross_validated_delta_e2000,
        rating=document.rating_after,
        measurements=refs["measurements"],
        warnings=list(document.warnings),
        previews=PhotoPreviewRefs(original=refs["preview_original"], corrected=refs["preview_corrected"]),
    )
    row = CorrectionRow(
        job_id=job_id,
        outcome="corrected",
        method=corrected.method,
        delta_e_before=before.mean if before else None,
        delta_e_after=after.mean if after else None,
        cross_validated=document.cross_validated_delta_e2000,
        timings_ms=document.timings_ms,
    )
    return row, event


class OriginalMissingError(Exception):
    """The job's photo is no longer in the blob store: the job was deleted after it was announced
    (its ``job.expired`` has not arrived yet), or a partner named a blob that never existed."""

    code = "original_missing"


async def _original_bytes(runtime: ServiceRuntime, original: BlobRef) -> bytes | None:
    try:
        with stage(NAME, "load"):
            return await runtime.blobs.get_bytes(original.bucket, original.key)
    except BlobNotFoundError:
        return None


def _present(data: bytes | None, original: BlobRef) -> bytes:
    if data is None:
        raise OriginalMissingError(f"no object {original.bucket}/{original.key}")
    return data


def _parse(envelope: RawEnvelope) -> object:
    try:
        return parse_data(envelope)
    except (UnknownEventError, ValidationError) as error:
        raise PermanentError(f"invalid {envelope.type}: {error}") from error


async def on_chart_detected(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    event = _parse(envelope)
    assert isinstance(event, ChartDetected)
    settings = runtime.settings
    assert isinstance(settings, CorrectorSettings)
    if await forgotten_now(runtime, event.job_id):
        return
    data = await _original_bytes(runtime, event.original)
    await _correct_and_announce(
        runtime,
        envelope,
        event.job_id,
        event.original,
        event.chart_type,
        lambda: correct_detected(_present(data, event.original), event, settings),
    )


async def on_image_uploaded(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    event = _parse(envelope)
    assert isinstance(event, ImageUploaded)
    profile_ref = event.options.profile
    if profile_ref is None:
        return
    publisher = current_publisher()
    if publisher is None or not is_known_publisher(publisher, runtime.settings):
        raise PermanentError(f"image.uploaded from unknown publisher {publisher!r}; the detector audits it")
    owner = owner_name(publisher, runtime.settings)
    named = [profile_ref, *([event.original] if event.original is not None else [])]
    if not all(may_read(owner, ref) for ref in named):
        raise PermanentError("a partner's job names only its own blobs; the detector audits it")
    async with runtime.session() as session, session.begin():
        known_before = await session.get(CorrectionRow, event.job_id) is not None
        publishers_job = await claim_job(session, event.job_id, owner, known_before=known_before)
    if not publishers_job:
        raise PermanentError(
            f"job {event.job_id} was published by someone else first; the detector audits it"
        )
    original = event.original
    if original is None:
        raise PermanentError("profile jobs need the photo in the blob store (original), not a source_url")
    if await forgotten_now(runtime, event.job_id):
        return
    data = await _original_bytes(runtime, original)
    try:
        profile_data: bytes | None = await runtime.blobs.get_bytes(profile_ref.bucket, profile_ref.key)
    except BlobNotFoundError:
        profile_data = None

    def compute() -> Corrected:
        if profile_data is None:
            raise ProfileError(f"profile {profile_ref.bucket}/{profile_ref.key} no longer exists")
        return correct_with_profile(_present(data, original), event, load_profile(profile_data))

    await _correct_and_announce(runtime, envelope, event.job_id, original, None, compute)


def _correction_row(job_id: uuid.UUID) -> Delete:
    return delete(CorrectionRow).where(CorrectionRow.job_id == job_id)


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Delete an expired job's corrected image, profile and measurements (a profile someone saved
    stays), and its row."""
    await forget_expired_job(
        runtime, envelope, bucket=buckets.CORRECTED, keys=result_keys, rows=_correction_row
    )
