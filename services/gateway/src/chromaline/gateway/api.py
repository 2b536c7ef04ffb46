"""The public HTTP API, versioned under ``/api/v1``.

Every route runs :func:`~chromaline.gateway.access.authorize` first (its rule is in
``access.ROUTE_RULES``), and every query is limited to the caller's organisation: another
organisation's job, batch, file, profile or upload answers 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Annotated, Any, Literal

import httpx
from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Query,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
)
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import AfterValidator, Field, ValidationError
from sqlalchemy import and_, delete, func, select
from starlette.background import BackgroundTask

from chromaline.common import idempotency
from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobNotFoundError, BlobTooLargeError
from chromaline.common.client_models import ClientModel
from chromaline.common.events.contracts import BlobRef, JobOptions, ProcessingChoices
from chromaline.common.idempotency import json_part
from chromaline.common.logging import get_logger
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.visible_text import hides_characters
from chromaline.gateway import jobs as job_service
from chromaline.gateway import report_on_request
from chromaline.gateway.access import CurrentPrincipal, authorize
from chromaline.gateway.auth_proxy import add_auth_proxy
from chromaline.gateway.charts import custom_chart_options
from chromaline.gateway.concurrency import SlotsTaken, UserSlots
from chromaline.gateway.filenames import content_disposition
from chromaline.gateway.models import (
    DELETED,
    TERMINAL_STATES,
    Batch,
    Job,
    JobState,
    Notification,
    PendingUpload,
    SavedProfile,
)
from chromaline.gateway.organisation_limits import refuse_past_limit
from chromaline.gateway.orphans import original_key
from chromaline.gateway.retention import saved_profile_blobs
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.uploads import (
    ACCEPTED,
    SNIFF_BYTES,
    ZipLimits,
    check_image,
    named_after_archive,
    read_member_bounded,
    safe_member_name,
    sniff_content_type,
    zip_image_members,
)
from chromaline.gateway.views import RESULT_FILES, batch_view, job_view, profile_view

log = get_logger(__name__)

CONSUMING_QUEUES = ("gateway", "detector", "corrector", "reporter", "reporter.requests")
WS_POLL_SECONDS = 0.5
MAX_PROFILES_PER_ORGANISATION = 500
"""Saved profiles are listed whole, so an organisation keeps this many."""
StagedFile = tuple[str, IO[bytes], str, int]
"""An image of an upload ready to store: its name, its bytes, its content type and its size."""
WS_TOO_MANY_CONNECTIONS = 4429
ARCHIVE_RETRY_AFTER_SECONDS = 5


STREAMED_UPLOAD_ROUTES = frozenset({("PUT", "/api/v1/uploads/stream")})
"""Routes that count an image's bytes as they store it: they enforce the upload limit themselves."""
MULTIPART_UPLOAD_ROUTES = frozenset({("POST", "/api/v1/jobs")})
"""Upload routes whose bodies FastAPI reads before it authorizes the caller (see ``AdmitUploadersFirst``)."""
MAX_PAGE = 100_000
CORNERS_MAX_CHARS = 512


def visible_name(name: str) -> str:
    """A profile's name, shown in lists and naming its downloads: no control or invisible characters."""
    if hides_characters(name):
        raise ValueError("a name may not hold control or invisible characters")
    return name


VisibleName = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(visible_name)]


class ProfileCreate(ClientModel):
    job_id: uuid.UUID
    name: VisibleName


class ProfileRename(ClientModel):
    name: VisibleName


class PresignRequest(ClientModel):
    filename: str = Field(min_length=1, max_length=255)
    options: ProcessingChoices = ProcessingChoices()
    profile_id: uuid.UUID | None = Field(
        default=None,
        description="A saved profile of the caller's organisation to apply instead of detecting.",
    )
    chart_id: uuid.UUID | None = Field(
        default=None, description="A custom chart of the caller's organisation to detect and fit with."
    )


def build_router(
    runtime: ServiceRuntime, settings: GatewaySettings, auth_client: httpx.AsyncClient
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])
    add_auth_proxy(router, auth_client)
    progress_sockets = UserSlots(settings.max_progress_sockets_per_user)
    archive_builds = UserSlots(settings.max_archive_builds_per_user)

    async def resolve_options(
        organisation_id: str,
        chart_type: str,
        method: str,
        edition: str,
        output_format: str,
        bit_depth: int,
        profile_id: uuid.UUID | None,
        corners: str | None,
        output_space: str = "srgb",
        guideline: str | None = None,
        chart_id: uuid.UUID | None = None,
    ) -> JobOptions:
        raw: dict[str, Any] = {
            "chart_type": chart_type,
            "method": method,
            "reference_edition": edition,
            "output_format": output_format,
            "bit_depth": bit_depth,
            "output_space": output_space,
            "guideline": guideline,
        }
        if corners:
            try:
                raw["corners"] = json.loads(corners)
            except (json.JSONDecodeError, RecursionError):
                raise ApiError(422, "invalid_corners", "corners must be JSON: [[x, y], ×4]") from None
        if profile_id is not None:
            raw["profile"] = (await load_profile(profile_id, organisation_id)).blob
        return await checked_options(raw, organisation_id, chart_id)

    async def checked_options(
        raw: dict[str, Any], organisation_id: str, chart_id: uuid.UUID | None
    ) -> JobOptions:
        """``raw`` as job options, with ``chart_id``'s definition when one is named (422 or 404 if
        they do not fit together or the chart is not the organisation's)."""
        if chart_id is not None:
            raw.update(await custom_chart_options(runtime, chart_id, organisation_id, raw["chart_type"]))
        elif raw["chart_type"] == "custom":
            raise ApiError(422, "chart_id_required", "chart_type custom needs the chart_id of a custom chart")
        try:
            return JobOptions.model_validate(raw)
        except ValidationError as error:
            raise ApiError(
                422,
                "invalid_options",
                str(error).splitlines()[0],
                errors=[{"loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()],
            ) from None

    async def store_original(job_key: str, fileobj: IO[bytes], content_type: str) -> BlobRef:
        fileobj.seek(0)
        await runtime.blobs.put_file(buckets.ORIGINALS, job_key, fileobj, content_type=content_type)
        return BlobRef(bucket=buckets.ORIGINALS, key=job_key)

    @router.post("/jobs", status_code=202, summary="Upload one image, several, or a ZIP")
    async def upload(
        request: Request,
        principal: CurrentPrincipal,
        files: Annotated[
            list[UploadFile],
            File(description="Images (JPEG, PNG, TIFF, WebP, HEIC, AVIF, DNG, camera RAW) or ZIP archives"),
        ],
        chart_type: Annotated[str, Form()] = "auto",
        method: Annotated[str, Form()] = "auto",
        reference_edition: Annotated[str, Form()] = "2014",
        output_format: Annotated[str, Form()] = "jpeg",
        bit_depth: Annotated[int, Form()] = 8,
        profile_id: Annotated[uuid.UUID | None, Form()] = None,
        corners: Annotated[str | None, Form(max_length=CORNERS_MAX_CHARS)] = None,
        output_space: Annotated[str, Form()] = "srgb",
        guideline: Annotated[
            str | None, Form(description="Rating guideline; left out, the organisation's setting")
        ] = None,
        chart_id: Annotated[
            uuid.UUID | None, Form(description="A custom chart of your organisation (GET /api/v1/charts)")
        ] = None,
        sent_again_from: Annotated[
            uuid.UUID | None,
            Form(description="The job whose photo this is, sent again (with corners, or another chart)"),
        ] = None,
    ) -> dict[str, Any]:
        if sent_again_from is not None:
            await load_job(sent_again_from, principal.organisation_id)
        options = await resolve_options(
            principal.organisation_id,
            chart_type,
            method,
            reference_edition,
            output_format,
            bit_depth,
            profile_id,
            corners,
            output_space,
            guideline,
            chart_id,
        )
        if len(files) > settings.max_files_per_batch:
            raise ApiError(
                413, "too_many_files", f"{len(files)} files, over the limit of {settings.max_files_per_batch}"
            )
        idempotent = idempotency.from_request(request, principal.organisation_id, json_part(options))
        if idempotent is not None:
            await asyncio.to_thread(fold_files, idempotent, files)
            await replay_if_known(idempotent)
        with tempfile.TemporaryDirectory(prefix="chromaline-upload-") as scratch:
            staged = await asyncio.to_thread(stage_batch, files, scratch)
            stored = []
            for filename, fileobj, content_type, size in staged:
                key = original_key(filename)
                stored.append(
                    (filename, content_type, size, await store_original(key, fileobj, content_type))
                )
                fileobj.close()
        originals = [blob for *_, blob in stored]
        async with discarded_on_failure(originals), runtime.session() as session, session.begin():
            batch, created = await job_service.create_batch(
                session, principal.organisation_id, stored, options, sent_again_from=sent_again_from
            )
            record_owner(created, principal.user_id)
            view = batch_view(batch, created)
            await idempotency.remember(session, idempotent, 202, view)
        return view

    async def replay_if_known(idempotent: idempotency.IdempotentRequest | None) -> None:
        async with runtime.session() as session:
            await idempotency.replay_if_known(session, idempotent)

    @asynccontextmanager
    async def discarded_on_failure(originals: list[BlobRef]) -> AsyncIterator[None]:
        """Delete the stored ``originals`` when their jobs could not be recorded (the orphan
        sweep deletes them later if this process dies first, or the store fails now)."""
        try:
            yield
        except BaseException:
            for blob in originals:
                try:
                    await asyncio.shield(runtime.blobs.delete(blob.bucket, blob.key))
                except Exception:
                    log.warning("upload.original_not_discarded", bucket=blob.bucket, key=blob.key)
            raise

    def checked_part(upload_file: UploadFile) -> StagedFile | list[zipfile.ZipInfo]:
        """Check one uploaded part: an image is checked whole, a ZIP's directory is checked and
        its image members returned, to be expanded once the whole batch is known to fit."""
        sent_as = upload_file.filename or "upload"
        try:
            name = safe_member_name(sent_as)
        except ApiError as refused:
            refused.extra.setdefault("filename", sent_as)  # which part, so a client can send the rest
            raise
        size = upload_file.size or 0
        if size > settings.max_upload_bytes:
            raise ApiError(
                413,
                "file_too_large",
                f"{name}: {size} bytes exceeds {settings.max_upload_bytes}",
                filename=name,
            )
        fileobj = upload_file.file
        fileobj.seek(0)
        kind = sniff_content_type(fileobj.read(SNIFF_BYTES))
        fileobj.seek(0)
        if kind != "application/zip":
            return (name, fileobj, check_image(fileobj, name, settings.max_pixels), size)
        limits = ZipLimits(
            max_entries=settings.max_zip_entries,
            max_uncompressed_bytes=settings.max_zip_uncompressed_bytes,
            max_ratio=settings.max_zip_ratio,
            max_entry_bytes=settings.max_upload_bytes,
        )
        try:
            return zip_image_members(fileobj, limits)
        except ApiError as refused:
            raise named_after_archive(refused, name) from None

    def expanded_members(
        archive: IO[bytes], members: list[zipfile.ZipInfo], scratch: str
    ) -> list[StagedFile]:
        """Write a checked ZIP's image members to scratch space, each checked as an image."""
        staged: list[StagedFile] = []
        with zipfile.ZipFile(archive) as bundle:
            for info in members:
                member_name = safe_member_name(info.filename)
                target: IO[bytes] = tempfile.NamedTemporaryFile(dir=scratch, delete=False)  # noqa: SIM115
                for chunk in read_member_bounded(bundle, info, settings.max_upload_bytes):
                    target.write(chunk)
                target.seek(0)
                staged.append(
                    (
                        member_name,
                        target,
                        check_image(target, member_name, settings.max_pixels),
                        info.file_size,
                    )
                )
        return staged

    def stage_batch(files: list[UploadFile], scratch: str) -> list[StagedFile]:
        """Every part checked, then the ZIPs among them expanded into scratch space (run in a worker
        thread: expanding gigabytes must not stall the gateway's other requests). The batch's image
        count and what its archives expand to, together, are read from the archives' directories
        first, so a batch over either limit is refused before anything is expanded."""
        parts = [(upload_file, checked_part(upload_file)) for upload_file in files]
        archives = [members for _, members in parts if isinstance(members, list)]
        images = sum(len(members) if isinstance(members, list) else 1 for _, members in parts)
        if images > settings.max_files_per_batch:
            raise ApiError(
                413, "too_many_files", f"{images} images, over the limit of {settings.max_files_per_batch}"
            )
        expanded = sum(info.file_size for members in archives for info in members)
        if expanded > settings.max_zip_uncompressed_bytes:
            raise ApiError(
                413, "archive_too_large", f"the batch's archives expand to {expanded} bytes, over the limit"
            )
        staged: list[StagedFile] = []
        for upload_file, part in parts:
            if not isinstance(part, list):
                staged.append(part)
                continue
            try:
                staged.extend(expanded_members(upload_file.file, part, scratch))
            except ApiError as refused:
                raise named_after_archive(
                    refused, safe_member_name(upload_file.filename or "upload")
                ) from None
        return staged

    @router.put("/uploads/stream", status_code=202, summary="Stream one large image as the request body")
    async def upload_stream(
        request: Request,
        principal: CurrentPrincipal,
        filename: str,
        chart_type: str = "auto",
        method: str = "auto",
        reference_edition: str = "2014",
        output_format: str = "jpeg",
        bit_depth: int = 8,
        profile_id: uuid.UUID | None = None,
        output_space: str = "srgb",
        guideline: str | None = None,
        chart_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        name = safe_member_name(filename)
        options = await resolve_options(
            principal.organisation_id,
            chart_type,
            method,
            reference_edition,
            output_format,
            bit_depth,
            profile_id,
            None,
            output_space,
            guideline,
            chart_id,
        )
        declared = int(request.headers.get("content-length") or 0)
        if declared > settings.max_upload_bytes:
            raise ApiError(
                413, "file_too_large", f"{name}: {declared} bytes exceeds {settings.max_upload_bytes}"
            )
        body = request.stream()
        head = b""
        async for chunk in body:
            head += chunk
            if len(head) >= 64 * 1024:
                break
        content_type = sniff_content_type(head[:SNIFF_BYTES])
        if content_type is None or content_type == "application/zip":
            raise ApiError(415, "unsupported_media_type", f"{name}: not {ACCEPTED}")

        idempotent = idempotency.from_request(request, principal.organisation_id, name, json_part(options))

        async def whole_body() -> AsyncIterator[bytes]:
            async for chunk in _chained(head, body):
                if idempotent is not None:
                    idempotent.add(chunk)
                yield chunk

        key = original_key(name)
        try:
            info = await runtime.blobs.put_stream(
                buckets.ORIGINALS,
                key,
                whole_body(),
                content_type=content_type,
                max_bytes=settings.max_upload_bytes,
            )
        except BlobTooLargeError:
            raise ApiError(
                413, "file_too_large", f"{name}: exceeds {settings.max_upload_bytes} bytes"
            ) from None
        blob = BlobRef(bucket=buckets.ORIGINALS, key=key)
        async with discarded_on_failure([blob]):
            await replay_if_known(idempotent)
        await check_stored_image(blob, name)
        return await create_single_job(
            principal.organisation_id,
            principal.user_id,
            (name, content_type, info.size, blob),
            options,
            idempotent,
        )

    async def check_stored_image(blob: BlobRef, name: str) -> str:
        """Check a stored upload's header; remove it and refuse when it is not an acceptable image."""
        with tempfile.TemporaryFile() as local:
            await runtime.blobs.get_to_file(blob.bucket, blob.key, local)
            try:
                return check_image(local, name, settings.max_pixels)
            except ApiError:
                await runtime.blobs.delete(blob.bucket, blob.key)
                raise

    async def keep_checked_copy(uploaded: BlobRef, name: str) -> tuple[BlobRef, str, int]:
        """Check a presigned upload and keep the checked bytes under a key no upload URL can write,
        so the original a job reads is the one checked here (the URL stays valid until it expires).
        The upload itself is removed either way."""
        with tempfile.TemporaryFile() as local:
            size = await runtime.blobs.get_to_file(uploaded.bucket, uploaded.key, local)
            await runtime.blobs.delete(uploaded.bucket, uploaded.key)
            content_type = check_image(local, name, settings.max_pixels)
            if size > settings.max_upload_bytes:
                raise ApiError(413, "file_too_large", f"{size} bytes exceeds {settings.max_upload_bytes}")
            kept = await store_original(f"{uuid.uuid4()}/{name}", local, content_type)
        return kept, content_type, size

    async def create_single_job(
        organisation_id: str,
        owner_id: str,
        upload: tuple[str, str, int, BlobRef],
        options: JobOptions,
        idempotent: idempotency.IdempotentRequest | None,
    ) -> dict[str, Any]:
        async with discarded_on_failure([upload[3]]), runtime.session() as session, session.begin():
            batch, created = await job_service.create_batch(session, organisation_id, [upload], options)
            record_owner(created, owner_id)
            view = batch_view(batch, created)
            await idempotency.remember(session, idempotent, 202, view)
        return view

    @router.post("/uploads/presigned", summary="Ask for a URL to PUT one image straight to the blob store")
    async def presign(body: PresignRequest, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
        idempotent = idempotency.from_request(request, principal.organisation_id, json_part(body))
        await replay_if_known(idempotent)
        name = safe_member_name(body.filename)
        raw = body.options.model_dump()
        if body.profile_id is not None:
            raw["profile"] = (await load_profile(body.profile_id, principal.organisation_id)).blob
        options = await checked_options(raw, principal.organisation_id, body.chart_id)
        upload_id = uuid.uuid4()
        key = f"{upload_id}/{name}"
        expiry = timedelta(seconds=settings.presigned_expiry_seconds)
        url = await runtime.blobs.presigned_put_url(buckets.ORIGINALS, key, expiry)
        if url is None:
            raise ApiError(
                501,
                "presigned_unsupported",
                "this blob store cannot hand out upload URLs; use PUT /api/v1/uploads/stream",
            )
        expires_at = datetime.now(UTC) + expiry
        view = {
            "upload_id": str(upload_id),
            "url": url,
            "method": "PUT",
            "expires_at": expires_at.isoformat(),
            "confirm": f"/api/v1/uploads/{upload_id}/confirm",
        }
        async with runtime.session() as session, session.begin():
            session.add(
                PendingUpload(
                    id=upload_id,
                    organisation_id=principal.organisation_id,
                    filename=name,
                    blob={"bucket": buckets.ORIGINALS, "key": key},
                    options=options.model_dump(mode="json"),
                    expires_at=expires_at,
                )
            )
            await idempotency.remember(session, idempotent, 200, view)
        return view

    @router.post(
        "/uploads/{upload_id}/confirm", status_code=202, summary="Start the job for a presigned upload"
    )
    async def confirm(upload_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
        idempotent = idempotency.from_request(request, principal.organisation_id, str(upload_id))
        await replay_if_known(idempotent)
        async with runtime.session() as session:
            pending = await session.get(PendingUpload, upload_id)
        if pending is None or pending.organisation_id != principal.organisation_id:
            raise ApiError(404, "upload_not_found", f"no pending upload {upload_id}")
        if pending.confirmed_job_id is not None:
            raise ApiError(
                409,
                "upload_already_confirmed",
                "this upload already started a job",
                job_id=str(pending.confirmed_job_id),
            )
        blob = BlobRef.model_validate(pending.blob)
        try:
            info = await runtime.blobs.stat(blob.bucket, blob.key)
        except BlobNotFoundError:
            raise ApiError(409, "upload_missing", "nothing was uploaded to the URL yet") from None
        if info.size > settings.max_upload_bytes:
            await runtime.blobs.delete(blob.bucket, blob.key)
            raise ApiError(413, "file_too_large", f"{info.size} bytes exceeds {settings.max_upload_bytes}")
        original, content_type, size = await keep_checked_copy(blob, pending.filename)
        options = JobOptions.model_validate(pending.options)
        async with runtime.session() as session, session.begin():
            locked = await session.get(PendingUpload, upload_id, with_for_update=True)
            if locked is None or locked.confirmed_job_id is not None:
                await runtime.blobs.delete(original.bucket, original.key)
                raise ApiError(409, "upload_already_confirmed", "this upload already started a job")
            batch, created = await job_service.create_batch(
                session,
                principal.organisation_id,
                [(pending.filename, content_type, size, original)],
                options,
            )
            record_owner(created, principal.user_id)
            locked.confirmed_job_id = created[0].id
            view = batch_view(batch, created)
            await idempotency.remember(session, idempotent, 202, view)
        return view

    @router.get("/jobs", summary="Job history, newest first")
    async def list_jobs(
        principal: CurrentPrincipal,
        state: JobState | None = None,
        batch_id: uuid.UUID | None = None,
        q: Annotated[str | None, Query(max_length=100, description="Part of the file name")] = None,
        since: Annotated[date | None, Query(description="Uploaded on or after this day (UTC)")] = None,
        until: Annotated[date | None, Query(description="Uploaded on or before this day (UTC)")] = None,
        stars: Annotated[
            int | None, Query(ge=0, le=4, description="Rated this many stars (0: below 1-star)")
        ] = None,
        level: Annotated[
            Literal["Full", "Light", "below Light"] | None,
            Query(description="Rated at this Metamorfoze level"),
        ] = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        query = select(Job).where(Job.organisation_id == principal.organisation_id, Job.state != DELETED)
        if since:
            query = query.where(Job.created_at >= datetime.combine(since, time.min, UTC))
        if until and until < date.max:  # nothing is uploaded after the last day a date can name
            query = query.where(Job.created_at < datetime.combine(until + timedelta(days=1), time.min, UTC))
        if stars is not None:
            query = query.where(Job.rating.like(f"% {stars}-star" if stars else "% below 1-star"))
        if level:
            query = query.where(Job.rating.like(f"Metamorfoze % {level}"))
            if level == "Light":  # "… below Light" ends in "Light" too
                query = query.where(Job.rating.not_like("% below Light"))
        if state:
            query = query.where(Job.state == state)
        if batch_id:
            query = query.where(Job.batch_id == batch_id)
        if q:
            query = query.where(Job.filename.icontains(q, autoescape=True))
        async with runtime.session() as session:
            total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
            rows = (
                (
                    await session.execute(
                        query.order_by(Job.created_at.desc(), Job.id)
                        .offset((page - 1) * page_size)
                        .limit(page_size)
                    )
                )
                .scalars()
                .all()
            )
        return {
            "items": [job_view(job) for job in rows],
            "page": page,
            "page_size": page_size,
            "total": total,
        }

    async def load_job(job_id: uuid.UUID, organisation_id: str) -> Job:
        async with runtime.session() as session:
            job = await session.get(Job, job_id)
        return visible_job(job, job_id, organisation_id)

    async def load_batch(batch_id: uuid.UUID, organisation_id: str) -> dict[str, Any]:
        async with runtime.session() as session:
            batch = await session.get(Batch, batch_id)
            if batch is None or batch.organisation_id != organisation_id:
                raise ApiError(404, "batch_not_found", f"no batch {batch_id}")
            rows = (
                (await session.execute(select(Job).where(Job.batch_id == batch_id).order_by(Job.filename)))
                .scalars()
                .all()
            )
        return batch_view(batch, list(rows))

    @router.get("/jobs/{job_id}", summary="One job's state and results")
    async def get_job(job_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        return job_view(await load_job(job_id, principal.organisation_id))

    @router.delete(
        "/jobs/{job_id}",
        status_code=202,
        summary="Delete a job, its files and everything derived from it, in every service",
    )
    async def delete_job(job_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        """The gateway deletes the original and keeps a tombstone at once (the job answers 404
        from now on); the other services delete what they stored on hearing ``job.expired``
        (``reason: deleted_on_request``), hence 202. A profile saved from the job stays until it
        is deleted itself."""
        now = datetime.now(UTC)
        async with runtime.session() as session, session.begin():
            job = visible_job(
                await job_service.get_job(session, job_id, for_update=True), job_id, principal.organisation_id
            )
            if job.original:
                await runtime.blobs.delete(job.original["bucket"], job.original["key"])
            kept = await saved_profile_blobs(session, [job.id])
            await job_service.delete_job_on_request(
                session,
                job,
                deleted_by=uuid.UUID(principal.user_id),
                api_key_id=uuid.UUID(principal.api_key_id) if principal.api_key_id else None,
                kept=kept.get(job.id, []),
                now=now,
            )
            await session.execute(delete(Notification).where(Notification.job_id == job.id))
        log.info("job.deleted_on_request", audit=True, job_id=str(job_id), user_id=principal.user_id)
        return {"id": str(job_id), "state": DELETED, "deleted_at": now.isoformat()}

    @router.get("/batches/{batch_id}", summary="A batch with per-file progress")
    async def get_batch(batch_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        return await load_batch(batch_id, principal.organisation_id)

    @router.get("/jobs/{job_id}/files/{name}", summary="Download a job's original, result, profile or report")
    async def job_file(job_id: uuid.UUID, name: str, principal: CurrentPrincipal) -> StreamingResponse:
        job = await load_job(job_id, principal.organisation_id)
        if name not in RESULT_FILES:
            raise ApiError(404, "unknown_file", f"no file {name!r}; one of {', '.join(RESULT_FILES)}")
        refuse_expired(job)
        ref = job.original if name == "original" else job.results.get(RESULT_FILES[name])
        result = RESULT_FILES[name]
        form = report_on_request.made_on_request(job, result)
        if ref is None and form is not None:
            made = await report_on_request.fetch_made_on_request(runtime, settings, [result], [job])
            ref = made.get((job.id, result))
            if ref is None:
                raise form.still_rendering(job)
        if ref is None:
            raise ApiError(409, "result_not_ready", f"{name} is not available while the job is {job.state}")
        return await stream_blob(BlobRef.model_validate(ref), download_name(job, name))

    def download_name(job: Job, name: str) -> str:
        stem = os.path.splitext(job.filename)[0]
        if name == "original":
            return job.filename
        if name == "corrected":
            extension = {"jpeg": "jpg", "png": "png", "tiff": "tif"}[
                str(job.options.get("output_format", "jpeg"))
            ]
            return f"{stem}.corrected.{extension}"
        if name == "measurements":
            return f"{stem}.measurements.json"
        return f"{stem}.{name}"

    async def stream_blob(ref: BlobRef, filename: str) -> StreamingResponse:
        try:
            info = await runtime.blobs.stat(ref.bucket, ref.key)
        except BlobNotFoundError:
            raise ApiError(410, "blob_missing", "the stored file is gone") from None
        return StreamingResponse(
            runtime.blobs.get_stream(ref.bucket, ref.key),
            media_type=info.content_type or "application/octet-stream",
            headers={
                "Content-Disposition": content_disposition(filename),
                "Content-Length": str(info.size),
            },
        )

    @router.get("/batches/{batch_id}/archive", summary="A ZIP of a batch's corrected images and reports")
    async def batch_archive(batch_id: uuid.UUID, principal: CurrentPrincipal) -> FileResponse:
        try:
            with archive_builds.hold(principal.user_id):
                return await build_archive(batch_id, principal.organisation_id)
        except SlotsTaken:
            raise ApiError(
                429,
                "too_many_archives",
                f"you are already downloading {archive_builds.limit} archives; wait for one to finish",
                headers={"Retry-After": str(ARCHIVE_RETRY_AFTER_SECONDS)},
                limit=archive_builds.limit,
            ) from None

    async def build_archive(batch_id: uuid.UUID, organisation_id: str) -> FileResponse:
        view = await load_batch(batch_id, organisation_id)
        handle, path = tempfile.mkstemp(prefix="chromaline-batch-", suffix=".zip")
        os.close(handle)
        async with runtime.session() as session:
            rows = (
                (
                    await session.execute(
                        select(Job).where(
                            Job.batch_id == batch_id,
                            Job.organisation_id == organisation_id,
                            Job.state != DELETED,
                        )
                    )
                )
                .scalars()
                .all()
            )
        names = ("corrected", "report.pdf", "report.html", "report.json", "profile.json", "profile.cube")
        made = await report_on_request.fetch_made_on_request(
            runtime, settings, [RESULT_FILES[name] for name in names], rows
        )
        missing = []
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as bundle:
            for job in rows:
                for name in names:
                    result = RESULT_FILES[name]
                    ref = job.results.get(result)
                    form = report_on_request.made_on_request(job, result)
                    if ref is None and form is not None:
                        ref = made.get((job.id, result))
                        if ref is None:
                            missing.append(missing_report(job, download_name(job, name), form))
                    if ref is None:
                        continue
                    with bundle.open(f"{job.id}/{download_name(job, name)}", "w", force_zip64=True) as member:
                        async for chunk in runtime.blobs.get_stream(ref["bucket"], ref["key"]):
                            member.write(chunk)
            manifest = json.dumps({**view, "missing_files": missing}, indent=2, sort_keys=True)
            bundle.writestr("manifest.json", manifest)
        return FileResponse(
            path,
            media_type="application/zip",
            filename=f"batch-{batch_id}.zip",
            background=BackgroundTask(os.unlink, path),
        )

    @router.post("/profiles", status_code=201, summary="Save a job's correction as a named profile")
    async def save_profile(
        body: ProfileCreate, principal: CurrentPrincipal, request: Request
    ) -> dict[str, Any]:
        idempotent = idempotency.from_request(request, principal.organisation_id, json_part(body))
        await replay_if_known(idempotent)
        async with runtime.session() as session, session.begin():
            # the job stays as it is until the profile is saved: a deletion or expiry waits, and
            # keeps the profile's files, or goes first and the job is gone
            job = visible_job(
                await job_service.get_job(session, body.job_id, for_update=True),
                body.job_id,
                principal.organisation_id,
            )
            refuse_expired(job)
            if "profile" not in job.results:
                raise ApiError(409, "profile_not_ready", f"job {job.id} has no profile while {job.state}")
            await refuse_past_limit(
                session,
                SavedProfile.organisation_id,
                principal.organisation_id,
                limit=MAX_PROFILES_PER_ORGANISATION,
                things="profiles",
            )
            profile = SavedProfile(
                id=uuid.uuid4(),
                organisation_id=job.organisation_id,
                name=body.name,
                source_job_id=job.id,
                blob=job.results["profile"],
                cube=job.results.get("profile_cube"),
                method=job.method,
            )
            session.add(profile)
            await session.flush()
            view = profile_view(profile)
            await idempotency.remember(session, idempotent, 201, view)
        return view

    @router.get("/profiles", summary="Saved profiles")
    async def list_profiles(principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session:
            rows = (
                (
                    await session.execute(
                        select(SavedProfile)
                        .where(SavedProfile.organisation_id == principal.organisation_id)
                        .order_by(SavedProfile.created_at.desc())
                    )
                )
                .scalars()
                .all()
            )
        return {"items": [profile_view(profile) for profile in rows]}

    async def load_profile(profile_id: uuid.UUID, organisation_id: str) -> SavedProfile:
        async with runtime.session() as session:
            profile = await session.get(SavedProfile, profile_id)
        if profile is None or profile.organisation_id != organisation_id:
            raise ApiError(404, "profile_not_found", f"no profile {profile_id}")
        return profile

    @router.patch("/profiles/{profile_id}", summary="Rename a profile")
    async def rename_profile(
        profile_id: uuid.UUID, body: ProfileRename, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        async with runtime.session() as session, session.begin():
            profile = await session.get(SavedProfile, profile_id, with_for_update=True)
            if profile is None or profile.organisation_id != principal.organisation_id:
                raise ApiError(404, "profile_not_found", f"no profile {profile_id}")
            profile.name = body.name
        return profile_view(profile)

    @router.delete("/profiles/{profile_id}", status_code=204, summary="Delete a profile")
    async def delete_profile(profile_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        async with runtime.session() as session, session.begin():
            profile = await session.get(SavedProfile, profile_id, with_for_update=True)
            if profile is None or profile.organisation_id != principal.organisation_id:
                raise ApiError(404, "profile_not_found", f"no profile {profile_id}")
            await session.delete(profile)

    @router.get("/profiles/{profile_id}/{name}", summary="Download a profile as JSON or a .cube LUT")
    async def profile_file(
        profile_id: uuid.UUID, name: str, principal: CurrentPrincipal
    ) -> StreamingResponse:
        profile = await load_profile(profile_id, principal.organisation_id)
        if name == "profile.json":
            return await stream_blob(BlobRef.model_validate(profile.blob), f"{profile.name}.json")
        if name == "profile.cube" and profile.cube is not None:
            return await stream_blob(BlobRef.model_validate(profile.cube), f"{profile.name}.cube")
        raise ApiError(404, "unknown_file", f"no file {name!r} for this profile")

    async def follow(websocket: WebSocket, user_id: str, snapshot: Any, finished: Any) -> None:
        """Push a view whenever it changes until it is finished (DB-polled, so any replica can serve
        it); a user holding ``max_progress_sockets_per_user`` sockets already is closed at once."""
        await websocket.accept()
        try:
            with progress_sockets.hold(user_id):
                await push_changes(websocket, snapshot, finished)
        except SlotsTaken:
            await websocket.close(code=WS_TOO_MANY_CONNECTIONS, reason="too_many_connections")

    async def push_changes(websocket: WebSocket, snapshot: Any, finished: Any) -> None:
        """Send each new view; every ``progress_socket_recheck_seconds`` the caller's credential is
        checked again, so a socket ends with its access token, its revoked key or its membership."""
        client_gone = asyncio.ensure_future(until_closed_by_client(websocket))
        loop = asyncio.get_running_loop()
        checked_at = loop.time()
        last: Any = None
        try:
            while True:
                if loop.time() - checked_at >= settings.progress_socket_recheck_seconds:
                    await authorize(websocket)
                    checked_at = loop.time()
                view = await snapshot()
                if view != last:
                    await websocket.send_json(view)
                    last = view
                if finished(view):
                    break
                await asyncio.wait([client_gone], timeout=WS_POLL_SECONDS)
                if client_gone.done():
                    return
            await websocket.close()
        except WebSocketDisconnect:
            return
        except ApiError as error:
            await websocket.close(code=4404, reason=error.code)
        except WebSocketException as refused:
            await websocket.close(code=refused.code, reason=refused.reason)
        finally:
            client_gone.cancel()

    @router.websocket("/jobs/{job_id}/events")
    async def job_events(websocket: WebSocket, job_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        async def snapshot() -> dict[str, Any]:
            return job_view(await load_job(job_id, principal.organisation_id))

        await follow(websocket, principal.user_id, snapshot, job_settled)

    @router.websocket("/batches/{batch_id}/events")
    async def batch_events(websocket: WebSocket, batch_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        await follow(
            websocket,
            principal.user_id,
            lambda: load_batch(batch_id, principal.organisation_id),
            lambda view: view["done"] and not view["reports_pending"],
        )

    @router.get(
        "/stats", summary="Jobs per state, detection rate, ΔE before/after, stage latency, queue depths"
    )
    async def stats(principal: CurrentPrincipal) -> dict[str, Any]:
        own = and_(Job.organisation_id == principal.organisation_id, Job.state != DELETED)
        async with runtime.session() as session:
            counts = await session.execute(select(Job.state, func.count()).where(own).group_by(Job.state))
            states = {state: count for state, count in counts}
            de = (
                await session.execute(
                    select(func.avg(Job.delta_e_before), func.avg(Job.delta_e_after)).where(own)
                )
            ).one()
            detected = (
                await session.execute(select(func.count()).where(own, Job.stage_times.has_key("detected")))
            ).scalar_one()
            not_found = (
                await session.execute(
                    select(func.count()).where(
                        own,
                        Job.reason.in_(
                            ("no_chart", "chart_too_small", "overexposed", "underexposed", "unknown_chart")
                        ),
                    )
                )
            ).scalar_one()
            latency = await stage_latency(session, principal.organisation_id)
        depths: dict[str, int] = {}
        if principal.may("platform"):
            try:
                depths = await runtime.bus.queue_depths(CONSUMING_QUEUES)
            except Exception:
                depths = {}
        attempts = detected + not_found
        return {
            "jobs": states,
            "detection_success_rate": detected / attempts if attempts else None,
            "mean_delta_e2000_before": de[0],
            "mean_delta_e2000_after": de[1],
            "stage_latency_seconds": latency,
            "queue_depths": depths,
        }

    @router.get("/admin/dead-letters", summary="Messages parked in the dead-letter queues")
    async def dead_letters(limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
        items = []
        for queue in CONSUMING_QUEUES:
            for letter in await runtime.bus.dead_letters(queue, limit):
                items.append(
                    {
                        "id": letter.id,
                        "queue": letter.queue,
                        "routing_key": letter.routing_key,
                        "reason": letter.reason,
                        "body": letter.body.decode("utf-8", "replace")[:4000],
                        "dead_lettered_at": letter.dead_lettered_at.isoformat()
                        if letter.dead_lettered_at
                        else None,
                    }
                )
        return {"items": items}

    @router.post(
        "/admin/dead-letters/{queue}/{letter_id}/replay", summary="Put one dead letter back on its queue"
    )
    async def replay(queue: str, letter_id: str) -> dict[str, Any]:
        if queue not in CONSUMING_QUEUES:
            raise ApiError(404, "unknown_queue", f"no queue {queue!r}")
        if not await runtime.bus.replay_dead_letter(queue, letter_id):
            raise ApiError(404, "dead_letter_not_found", f"no dead letter {letter_id} in {queue}.dlq")
        return {"replayed": letter_id, "queue": queue}

    return router


async def until_closed_by_client(websocket: WebSocket) -> None:
    """Return once the client has gone (what it sends is not read): a socket left behind stops
    being polled at once rather than when its job ends."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        continue


def visible_job(job: Job | None, job_id: uuid.UUID, organisation_id: str) -> Job:
    """The job when the caller's organisation may see it: not another's, not deleted (404 both)."""
    if job is None or job.organisation_id != organisation_id or job.state == DELETED:
        raise ApiError(404, "job_not_found", f"no job {job_id}")
    return job


def job_settled(view: dict[str, Any]) -> bool:
    """Nothing more will change: the job has ended and its report, if one is coming, is settled."""
    report = view.get("report")
    return view["state"] in TERMINAL_STATES and not (report and report["state"] == "pending")


def missing_report(job: Job, filename: str, form: report_on_request.MadeOnRequest) -> dict[str, str]:
    """The archive manifest's note of a report that was not made in time to be included."""
    return {
        "job_id": str(job.id),
        "file": f"{job.id}/{filename}",
        "code": form.code,
        "detail": f"the {form.title} was still being made; download it from the job, or the archive again",
    }


def refuse_expired(job: Job) -> None:
    """An expired job's files are deleted for good: 410 Gone, saying why."""
    if job.state == "expired":
        expired_at = job.expired_at.isoformat() if job.expired_at else "earlier"
        raise ApiError(
            410,
            "job_expired",
            f"job {job.id} expired ({expired_at}): its files were deleted after the organisation's "
            "retention period",
        )


def record_owner(created: list[Job], user_id: str) -> None:
    """Remember who uploaded the jobs: their notification preferences apply when the jobs end."""
    for job in created:
        job.owner_id = user_id


STAGES = (
    ("uploaded", "detected"),
    ("detected", "corrected"),
    ("corrected", "reported"),
    ("uploaded", "done"),
    ("uploaded", "reported"),
)


async def stage_latency(session: Any, organisation_id: str) -> dict[str, float | None]:
    """Mean seconds between stage timestamps over the organisation's last 1000 finished jobs."""
    rows = (
        (
            await session.execute(
                select(Job.stage_times)
                .where(Job.state == "done", Job.organisation_id == organisation_id)
                .order_by(Job.finished_at.desc())
                .limit(1000)
            )
        )
        .scalars()
        .all()
    )
    result: dict[str, float | None] = {}
    for start, end in STAGES:
        spans = [
            (datetime.fromisoformat(times[end]) - datetime.fromisoformat(times[start])).total_seconds()
            for times in rows
            if start in times and end in times
        ]
        result[f"{start}_to_{end}"] = sum(spans) / len(spans) if spans else None
    return result


async def _chained(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


def fold_files(idempotent: idempotency.IdempotentRequest, files: list[UploadFile]) -> None:
    """Fold each uploaded part's name and content into the request's fingerprint."""
    for upload_file in files:
        idempotent.add(upload_file.filename)
        upload_file.file.seek(0)
        while chunk := upload_file.file.read(1024 * 1024):
            idempotent.add(chunk)
        upload_file.file.seek(0)
