"""The detector finds the chart in each uploaded photo and measures its patches; when a job
expires, what it measured goes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import httpx
import numpy as np
from pydantic import ValidationError
from sqlalchemy import Delete, delete

from chromaline.common import inbox
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError, BlobStore
from chromaline.common.bus.base import PermanentError, current_publisher
from chromaline.common.bus.publishers import is_known_publisher
from chromaline.common.events.contracts import (
    MAX_OTHER_CHARTS,
    PROCESSING_ERROR,
    BlobRef,
    ChartBox,
    ChartCandidate,
    ChartDetected,
    ChartNotFound,
    Contract,
    ImageUploaded,
    JobOptions,
    PartnerRejected,
    ProcessingFailed,
    UnknownEventError,
    parse_data,
)
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.forgotten_jobs import forgotten_now, job_transaction
from chromaline.common.job_publishers import claim_job, may_read, owner_name, partner_prefix
from chromaline.common.logging import get_logger
from chromaline.common.metrics import stage
from chromaline.common.outbox import add_to_outbox
from chromaline.common.public_urls import UnsafeUrlError, checked_address, pinned_request
from chromaline.common.retention import forget_expired_job
from chromaline.common.runtime import ServiceRuntime
from chromaline.detector.models import Detection
from chromaline.detector.settings import DetectorSettings
from chromaline.engine.correct import ChartSearch, search_preview
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.custom_detect import (
    custom_detection_from_corners,
    detect_custom_chart,
    sample_custom_chart,
)
from chromaline.engine.detect import (
    ChartDetection,
    NotAChartError,
    checked_detection_from_corners,
    detect_charts,
    with_other_charts,
)
from chromaline.engine.image_io import UnsupportedImageError, decode_image
from chromaline.engine.sample import sample_patches

NAME = "detector"
log = get_logger(__name__)


@dataclass(frozen=True)
class Examination:
    """What the detector concluded about one photo, ready to record and announce."""

    event: Contract
    detection: Detection


Box = TypeVar("Box", bound=ChartBox)


def _box(detection: ChartDetection, box: type[Box]) -> Box:
    return box(
        chart_type=detection.chart_type,
        corners=[(float(x), float(y)) for x, y in detection.corners],
        confidence=float(np.clip(detection.confidence, 0.0, 1.0)),
    )


def _candidate(detection: ChartDetection | None) -> ChartCandidate | None:
    """The box offered for confirmation when the detection was not confident enough."""
    return None if detection is None else _box(detection, ChartCandidate)


def examine(
    data: bytes, job_id: uuid.UUID, original: BlobRef, options: JobOptions, settings: DetectorSettings
) -> Examination:
    """Decode, detect and sample one photo (CPU-bound; runs in a worker thread).

    When the chart has to be searched for, a second thread looks for it on the file's reduced
    preview while the full decode runs, as the engine does: OpenCV and LibRaw release the GIL, so
    on two cores the search costs little more than the decode in latency.
    """
    if options.corners is not None or options.custom_chart is not None:
        return _examined(data, job_id, original, options, settings, None)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chart-search") as pool:
        search = pool.submit(search_preview, data, options.chart_type)
        return _examined(data, job_id, original, options, settings, search)


def _examined(
    data: bytes,
    job_id: uuid.UUID,
    original: BlobRef,
    options: JobOptions,
    settings: DetectorSettings,
    search: ChartSearch | None,
) -> Examination:
    started = time.perf_counter()
    try:
        with stage(NAME, "decode"):
            image = decode_image(data, max_pixels=settings.max_pixels)
    except UnsupportedImageError as error:
        failed = ProcessingFailed(job_id=job_id, stage="detect", reason=error.code, message=str(error))
        return Examination(
            failed, Detection(job_id=job_id, outcome="failed", reason=error.code, message=str(error))
        )
    detections: list[ChartDetection]
    custom = ChartDefinition.from_contract(options.custom_chart) if options.custom_chart is not None else None
    if custom is not None and options.corners is not None:
        try:
            detections = [custom_detection_from_corners(image, custom, options.corners)]
        except NotAChartError as error:
            refused = ProcessingFailed(job_id=job_id, stage="detect", reason=error.code, message=str(error))
            return Examination(
                refused, Detection(job_id=job_id, outcome="failed", reason=error.code, message=str(error))
            )
    elif options.corners is not None:
        chart = "classic24" if options.chart_type == "auto" else options.chart_type
        try:
            detections = with_other_charts(
                image, checked_detection_from_corners(image, chart, options.corners)
            )
        except NotAChartError as error:
            refused = ProcessingFailed(job_id=job_id, stage="detect", reason=error.code, message=str(error))
            return Examination(
                refused,
                Detection(
                    job_id=job_id,
                    outcome="failed",
                    reason=error.code,
                    message=str(error),
                    seconds=time.perf_counter() - started,
                ),
            )
    else:
        with stage(NAME, "detect"):
            outcome = (
                detect_custom_chart(image, custom)
                if custom is not None
                else detect_charts(
                    image, options.chart_type, candidates=search.result() if search is not None else None
                )
            )
        detections = outcome.detections
        if not detections:
            reason = outcome.reason or "no_chart"
            not_found = ChartNotFound(
                job_id=job_id,
                original=original,
                reason=reason,
                message=outcome.message,
                candidate=_candidate(outcome.candidate),
            )
            return Examination(
                not_found,
                Detection(
                    job_id=job_id,
                    outcome="not_found",
                    reason=reason,
                    message=outcome.message,
                    seconds=time.perf_counter() - started,
                ),
            )
    best = detections[0]
    with stage(NAME, "sample"):
        patches = (
            sample_custom_chart(image, best, custom, margin=settings.sample_margin)
            if custom is not None
            else sample_patches(image, best, margin=settings.sample_margin, edition=options.reference_edition)
        )
    corners = [(float(x), float(y)) for x, y in best.corners]
    detected = ChartDetected(
        job_id=job_id,
        original=original,
        chart_type=best.chart_type,
        reference_edition=options.reference_edition,
        corners=corners,
        confidence=float(min(max(best.confidence, 0.0), 1.0)),
        image_size=(image.width, image.height),
        patches=[patch.as_sample() for patch in patches],
        charts_found=len(detections),
        other_charts=[_box(other, ChartBox) for other in detections[1 : 1 + MAX_OTHER_CHARTS]],
        options=options,
    )
    record = Detection(
        job_id=job_id,
        outcome="detected",
        chart_type=best.chart_type,
        confidence=detected.confidence,
        corners=[list(corner) for corner in corners],
        charts_found=len(detections),
        seconds=time.perf_counter() - started,
    )
    return Examination(detected, record)


MAX_FETCH_REDIRECTS = 3


async def fetch_source(blobs: BlobStore, event: ImageUploaded, settings: DetectorSettings) -> BlobRef:
    """Copy a partner's photo from its URL into the blob store, within size and time limits.

    The URL, and each redirect's, must lead to a public address (unless
    ``fetch_allow_private_urls``), called at the address that was checked: a partner's URL
    reaches nothing inside the deployment."""
    assert event.source_url is not None
    key = f"{event.job_id}/fetched"
    url = str(event.source_url)
    received = 0

    async def body(response: httpx.Response) -> AsyncIterator[bytes]:
        nonlocal received
        async for chunk in response.aiter_bytes(1024 * 1024):
            received += len(chunk)
            if received > settings.fetch_max_bytes:
                raise PermanentError(f"source_url larger than {settings.fetch_max_bytes} bytes")
            yield chunk

    async with httpx.AsyncClient(
        timeout=settings.fetch_timeout_seconds, event_hooks={"response": [_refuse_malformed_redirect]}
    ) as client:
        for _ in range(MAX_FETCH_REDIRECTS + 1):
            try:
                address = await checked_address(url, allow_private=settings.fetch_allow_private_urls)
            except UnsafeUrlError as refused:
                raise PermanentError(f"source_url refused: {refused}") from None
            target, headers, extensions = pinned_request(url, address)
            async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.is_redirect and "location" in response.headers:
                    url = str(httpx.URL(url).join(response.headers["location"]))
                    continue
                if response.status_code >= 400:
                    message = f"source_url answered {response.status_code}"
                    if 400 <= response.status_code < 500:
                        raise PermanentError(message)
                    raise RuntimeError(message)
                await blobs.put_stream(
                    buckets.ORIGINALS, key, body(response), max_bytes=settings.fetch_max_bytes
                )
                return BlobRef(bucket=buckets.ORIGINALS, key=key)
    raise PermanentError(f"source_url redirected more than {MAX_FETCH_REDIRECTS} times")


async def _refuse_malformed_redirect(response: httpx.Response) -> None:
    """A redirect to an address that is not a URL fails the job: the client would raise a protocol
    error, which is retried like a dropped connection, when asking again gets the same answer."""
    if not response.has_redirect_location:
        return
    try:
        httpx.URL(response.headers["location"])
    except httpx.InvalidURL:
        raise PermanentError("source_url redirected to an address that is not a URL") from None


async def refuse_unknown_publisher(
    runtime: ServiceRuntime, envelope: RawEnvelope, publisher: str | None
) -> None:
    """Audit a message from no known publisher and send it to the dead-letter queue."""
    reason = f"publisher {publisher!r} is neither one of our services nor a known partner"
    await refuse_publisher(runtime, envelope, publisher, reason)


async def refuse_publisher(
    runtime: ServiceRuntime, envelope: RawEnvelope, publisher: str | None, reason: str
) -> None:
    """Audit a refused message (``partner.rejected``, for the auth service's audit log, once per
    event) and send it to the dead-letter queue."""
    log.warning(
        "detector.publisher_refused", audit=True, publisher=publisher, event_id=str(envelope.event_id)
    )
    rejected = PartnerRejected(
        routing_key=envelope.type,
        event_id=envelope.event_id,
        publisher=publisher,
        consumer=NAME,
        reason=reason,
    )
    async with runtime.session() as session, session.begin():
        if await inbox.claim(session, envelope.event_id, f"{NAME}.refusals"):
            await add_to_outbox(session, make_envelope(NAME, envelope.subject, rejected))
    raise PermanentError(reason)


async def is_owners_job(runtime: ServiceRuntime, job_id: uuid.UUID, owner: str) -> bool:
    """Whether ``job_id`` is ``owner``'s to process (claimed now if nobody used it yet)."""
    async with runtime.session() as session, session.begin():
        known_before = await session.get(Detection, job_id) is not None
        return await claim_job(session, job_id, owner, known_before=known_before)


async def on_image_uploaded(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    settings = runtime.settings
    assert isinstance(settings, DetectorSettings)
    publisher = current_publisher()
    if not is_known_publisher(publisher, settings):
        await refuse_unknown_publisher(runtime, envelope, publisher)
    try:
        event = parse_data(envelope)
    except (UnknownEventError, ValidationError) as error:
        raise PermanentError(f"invalid image.uploaded: {error}") from error
    assert isinstance(event, ImageUploaded)
    assert publisher is not None
    owner = owner_name(publisher, settings)
    named = [ref for ref in (event.original, event.options.profile) if ref is not None]
    if not all(may_read(owner, ref) for ref in named):
        reason = (
            f"a partner's job names only its own blobs, in {buckets.ORIGINALS} under {partner_prefix(owner)}"
        )
        await refuse_publisher(runtime, envelope, publisher, reason)
    if not await is_owners_job(runtime, event.job_id, owner):
        reason = (
            f"job {event.job_id} was published by someone else first; a partner's job ids must be its own"
        )
        await refuse_publisher(runtime, envelope, publisher, reason)
    if event.options.profile is not None:
        return
    if await forgotten_now(runtime, event.job_id):
        log.info("detector.forgotten_job_skipped", job_id=str(event.job_id))
        return
    if event.original is not None:
        original = event.original
    else:
        with stage(NAME, "fetch"):
            original = await fetch_source(runtime.blobs, event, settings)
    try:
        with stage(NAME, "load"):
            data = await runtime.blobs.get_bytes(original.bucket, original.key)
    except BlobNotFoundError:
        result = Examination(
            ProcessingFailed(
                job_id=event.job_id,
                stage="detect",
                reason="original_missing",
                message=f"no object {original.bucket}/{original.key}",
            ),
            Detection(job_id=event.job_id, outcome="failed", reason="original_missing"),
        )
    else:
        try:
            result = await asyncio.to_thread(examine, data, event.job_id, original, event.options, settings)
        except Exception as error:  # the photo is the same on every retry: fail the job, say why
            log.exception("detector.examination_failed", job_id=str(event.job_id))
            result = _unexpected_failure(event.job_id, error)
    async with job_transaction(runtime, event.job_id) as session:
        if session is None:
            log.info("detector.forgotten_job_skipped", job_id=str(event.job_id))
            return
        if not await inbox.claim(session, envelope.event_id, NAME):
            return
        await session.merge(result.detection)
        await add_to_outbox(session, make_envelope(NAME, str(event.job_id), result.event))
    log.info("detector.examined", job_id=str(event.job_id), outcome=result.detection.outcome)


def _unexpected_failure(job_id: uuid.UUID, error: Exception) -> Examination:
    """A photo the engine failed on in a way it does not name: retried, it fails the same way
    (into the dead-letter queue, the job stuck until the watchdog's timeout hides why)."""
    message = f"the photo could not be examined ({type(error).__name__}); the error is logged"
    failed = ProcessingFailed(job_id=job_id, stage="detect", reason=PROCESSING_ERROR, message=message)
    return Examination(
        failed, Detection(job_id=job_id, outcome="failed", reason=PROCESSING_ERROR, message=message)
    )


def _detection_row(job_id: uuid.UUID) -> Delete:
    return delete(Detection).where(Detection.job_id == job_id)


async def on_job_expired(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
    """Delete an expired job's detection (the gateway's jobs bring their photo, so the detector
    stored no blob for them)."""
    await forget_expired_job(runtime, envelope, rows=_detection_row)
