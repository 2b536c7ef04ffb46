"""Blob store on S3 or MinIO through the ``minio`` SDK.

The SDK is synchronous. Short calls (stat, delete, presign) run through ``asyncio.to_thread``;
whole transfers (an upload, a download into a file) run on a small executor of their own, because
an upload's thread waits on the event loop for its next chunk: on the shared default executor, a
few uploads whose streams themselves need that executor would wait on each other for ever.

Uploads of unknown length go through the SDK's multipart upload, one part at a time, so memory
stays around three part sizes (the part being read, the part being sent, a copy the SDK makes)
whatever the object size. An upload that fails, is cancelled or passes ``max_bytes`` is aborted:
no object and no stranded parts remain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any, TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error

from chromaline.common.blobs.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    BlobTooLargeError,
    StoredObject,
)

MIN_PART_SIZE = 5 * 1024 * 1024
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
ALREADY_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"

T = TypeVar("T")


class UploadAbandonedError(Exception):
    """The coroutine awaiting an upload was cancelled; the uploading thread stops reading."""


class AsyncStreamReader:
    """A blocking ``read()`` over an async byte stream, for the thread that uploads it.

    Each read asks the event loop for the next chunk and waits for it, so at most one chunk sits
    between the stream and the upload. The byte count is checked against ``max_bytes`` before a
    chunk is handed over: an oversized object fails before its last part can be sent.
    """

    def __init__(
        self, stream: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, max_bytes: int | None
    ) -> None:
        self._stream = stream
        self._loop = loop
        self._max_bytes = max_bytes
        self._chunk = b""
        self._offset = 0
        self._waiting: concurrent.futures.Future[bytes | None] | None = None
        self._abandoned = False
        self._exhausted = False
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._offset >= len(self._chunk):
            self._chunk = self._next_chunk()
            self._offset = 0
        start = self._offset
        end = len(self._chunk) if size < 0 else min(start + size, len(self._chunk))
        self._offset = end
        if start == 0 and end == len(self._chunk):
            return self._chunk
        return self._chunk[start:end]

    def abandon(self) -> None:
        """Make the next (or the pending) read fail, so the upload aborts."""
        self._abandoned = True
        if self._waiting is not None:
            self._waiting.cancel()

    def _next_chunk(self) -> bytes:
        while not self._exhausted:
            if self._abandoned:
                raise UploadAbandonedError
            waiting = asyncio.run_coroutine_threadsafe(_next_or_none(self._stream), self._loop)
            self._waiting = waiting
            if self._abandoned:
                waiting.cancel()
            try:
                chunk = waiting.result()
            except concurrent.futures.CancelledError:
                raise UploadAbandonedError from None
            if chunk is None:
                self._exhausted = True
                break
            self.bytes_read += len(chunk)
            if self._max_bytes is not None and self.bytes_read > self._max_bytes:
                raise BlobTooLargeError(f"object exceeds {self._max_bytes} bytes")
            if chunk:
                return chunk
        return b""


async def _next_or_none(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


@dataclass(frozen=True)
class S3Connection:
    """Where an S3 API answers and how to sign requests to it."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str | None = None


class S3BlobStore(BlobStore):
    def __init__(
        self,
        connection: S3Connection,
        *,
        part_size: int = MIN_PART_SIZE,
        max_concurrent_transfers: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (the S3 minimum)")
        self.connection = connection
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=max_concurrent_transfers + 4,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            connection.endpoint,
            access_key=connection.access_key,
            secret_key=connection.secret_key,
            secure=connection.secure,
            region=connection.region,
            http_client=self._http,
        )
        self._part_size = part_size
        self._transfers = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent_transfers, thread_name_prefix="s3-transfer"
        )
        self._known_bucket: str | None = None

    @property
    def client(self) -> Minio:
        """The underlying SDK client, for operations the port does not cover (test clean-up)."""
        return self._client

    async def ensure_buckets(self, buckets: list[str]) -> None:
        for bucket in buckets:
            if not await asyncio.to_thread(self._client.bucket_exists, bucket):
                try:
                    await asyncio.to_thread(self._client.make_bucket, bucket, self.connection.region)
                except S3Error as error:
                    if error.code not in ALREADY_EXISTS_CODES:
                        raise
            self._known_bucket = bucket

    async def put_stream(
        self,
        bucket: str,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        content_type: str | None = None,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        reader = AsyncStreamReader(stream, asyncio.get_running_loop(), max_bytes)
        await self._transfer(self._upload, reader.abandon, bucket, key, reader, content_type)
        return BlobInfo(bucket=bucket, key=key, size=reader.bytes_read, content_type=content_type)

    async def put_file(
        self, bucket: str, key: str, fileobj: IO[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        start = fileobj.tell() if fileobj.seekable() else 0
        await self._transfer(self._upload, None, bucket, key, fileobj, content_type)
        size = fileobj.tell() - start
        return BlobInfo(bucket=bucket, key=key, size=size, content_type=content_type)

    async def get_stream(
        self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(self._get_object, bucket, key)
        try:
            chunks = response.stream(chunk_size)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def get_to_file(self, bucket: str, key: str, fileobj: IO[bytes]) -> int:
        def download() -> int:
            response = self._get_object(bucket, key)
            size = 0
            try:
                for chunk in response.stream(CHUNK_SIZE):
                    fileobj.write(chunk)
                    size += len(chunk)
            finally:
                response.close()
                response.release_conn()
            return size

        return await self._transfer(download, None)

    async def stat(self, bucket: str, key: str) -> BlobInfo:
        def stat_object() -> BlobInfo:
            with _not_found_as(bucket, key):
                result = self._client.stat_object(bucket, key)
            return BlobInfo(bucket=bucket, key=key, size=result.size or 0, content_type=result.content_type)

        return await asyncio.to_thread(stat_object)

    async def exists(self, bucket: str, key: str) -> bool:
        try:
            await self.stat(bucket, key)
        except BlobNotFoundError:
            return False
        return True

    async def delete(self, bucket: str, key: str) -> None:
        def remove_object() -> None:
            with contextlib.suppress(BlobNotFoundError), _not_found_as(bucket, key):
                self._client.remove_object(bucket, key)

        await asyncio.to_thread(remove_object)

    async def presigned_get_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        url: str = await asyncio.to_thread(self._client.presigned_get_object, bucket, key, expires)
        return url

    async def presigned_put_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        url: str = await asyncio.to_thread(self._client.presigned_put_object, bucket, key, expires)
        return url

    async def list_objects(self, bucket: str) -> AsyncIterator[StoredObject]:
        listing = iter(self._client.list_objects(bucket, recursive=True))
        while (item := await asyncio.to_thread(next, listing, None)) is not None:
            if item.object_name is None or item.is_dir or item.last_modified is None:
                continue
            yield StoredObject(key=item.object_name, size=item.size or 0, modified_at=item.last_modified)

    async def ping(self) -> bool:
        def probe() -> None:
            if self._known_bucket is None:
                self._client.list_buckets()
            else:
                self._client.bucket_exists(self._known_bucket)

        try:
            await asyncio.to_thread(probe)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        self._transfers.shutdown(wait=False, cancel_futures=True)
        self._http.clear()

    def _upload(self, bucket: str, key: str, data: Any, content_type: str | None) -> None:
        with _not_found_as(bucket, key):
            self._client.put_object(
                bucket,
                key,
                data,
                length=-1,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                part_size=self._part_size,
                num_parallel_uploads=1,
            )

    def _get_object(self, bucket: str, key: str) -> Any:
        with _not_found_as(bucket, key):
            return self._client.get_object(bucket, key)

    async def _transfer(
        self, function: Callable[..., T], abandon: Callable[[], None] | None, *args: Any
    ) -> T:
        """Run a whole transfer on the transfer executor; on cancellation let it abort cleanly first."""
        future = asyncio.get_running_loop().run_in_executor(self._transfers, function, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if abandon is not None:
                abandon()
            with contextlib.suppress(Exception):
                await future
            raise


@contextlib.contextmanager
def _not_found_as(bucket: str, key: str) -> Iterator[None]:
    """Turn the SDK's "no such bucket/key" errors into the port's :class:`BlobNotFoundError`."""
    try:
        yield
    except S3Error as error:
        if error.code in NOT_FOUND_CODES:
            raise BlobNotFoundError(f"{bucket}/{key}: {error.code}") from error
        raise
