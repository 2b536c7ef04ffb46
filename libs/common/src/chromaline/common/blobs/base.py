"""The blob store port: objects addressed by bucket and key, streamed in and out."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

CHUNK_SIZE = 1024 * 1024


class BlobNotFoundError(KeyError):
    pass


@dataclass(frozen=True)
class BlobInfo:
    bucket: str
    key: str
    size: int
    content_type: str | None


@dataclass(frozen=True)
class BlobUpload:
    """One object to store with :meth:`BlobStore.put_many`."""

    bucket: str
    key: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class StoredObject:
    """One object as a bucket listing shows it."""

    key: str
    size: int
    modified_at: datetime


class BlobStore(abc.ABC):
    @abc.abstractmethod
    async def ensure_buckets(self, buckets: list[str]) -> None: ...

    @abc.abstractmethod
    async def put_stream(
        self,
        bucket: str,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        content_type: str | None = None,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        """Store the chunks of ``stream`` without holding them all in memory.

        Raise :class:`BlobTooLargeError` (and store nothing) past ``max_bytes``.
        """

    @abc.abstractmethod
    async def put_file(
        self, bucket: str, key: str, fileobj: IO[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        """Store a local file object (read in chunks)."""

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> BlobInfo:
        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        return await self.put_stream(bucket, key, one_chunk(), content_type=content_type)

    async def put_many(self, uploads: Sequence[BlobUpload]) -> list[BlobInfo]:
        """Store several objects at once: each put is a round trip to the store, and a job's
        products one after the other cost as many round trips as there are files. When one put
        fails, the others are cancelled and its error is raised (some objects may be stored)."""
        puts = [
            asyncio.ensure_future(
                self.put_bytes(upload.bucket, upload.key, upload.data, content_type=upload.content_type)
            )
            for upload in uploads
        ]
        try:
            return list(await asyncio.gather(*puts))
        except BaseException:
            for put in puts:
                put.cancel()
            await asyncio.gather(*puts, return_exceptions=True)
            raise

    @abc.abstractmethod
    def get_stream(self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the object in chunks; raise :class:`BlobNotFoundError` when absent."""

    async def get_bytes(self, bucket: str, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.get_stream(bucket, key)])

    @abc.abstractmethod
    async def get_to_file(self, bucket: str, key: str, fileobj: IO[bytes]) -> int:
        """Copy the object into a local file object in chunks; return its size."""

    @abc.abstractmethod
    async def stat(self, bucket: str, key: str) -> BlobInfo: ...

    @abc.abstractmethod
    async def exists(self, bucket: str, key: str) -> bool: ...

    @abc.abstractmethod
    async def delete(self, bucket: str, key: str) -> None: ...

    @abc.abstractmethod
    async def presigned_get_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        """A URL a client can GET directly, or None when the adapter cannot presign (local disk)."""

    @abc.abstractmethod
    async def presigned_put_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        """A URL a client can PUT one object to directly, or None when the adapter cannot presign."""

    @abc.abstractmethod
    def list_objects(self, bucket: str) -> AsyncIterator[StoredObject]:
        """Every object of ``bucket`` (no write leftovers), in no particular order."""

    async def delete_write_leftovers(self, bucket: str, older_than: datetime) -> list[str]:
        """Remove what interrupted writes left in ``bucket`` before ``older_than``; their names.

        Nothing by default: an adapter whose writes can leave something behind overrides it.
        """
        return []

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:
        return None


class BlobTooLargeError(ValueError):
    pass
