"""Blob store on a local directory: one sub-directory per bucket, one file per object.

Layout under ``root``::

    <bucket>/<key>                 the object's bytes, exactly as stored
    .metadata/<bucket>/<key>.json  its content type

Bucket names follow the S3 rules, so none starts with a dot and the metadata tree can never be
mistaken for a bucket. Every write goes to a temporary file beside its target, is fsynced, then
renamed over it: a reader sees the old object or the new one, never a half-written file. Keys
that would escape the bucket (``..`` segments, absolute paths) are refused with ``ValueError``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO

from chromaline.common.blobs.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    BlobTooLargeError,
    StoredObject,
)

METADATA_DIR = ".metadata"
PARTIAL_SUFFIX = ".partial"

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

FileWriter = Callable[[BinaryIO], Awaitable[int]]


def check_bucket_name(bucket: str) -> None:
    """Refuse names S3 would refuse, which also keeps every bucket a plain child of the root."""
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"invalid bucket name {bucket!r}")


def key_parts(key: str) -> list[str]:
    """Split ``key`` into path segments, refusing any key that could leave its bucket directory."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid blob key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return parts


class FilesystemBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    async def ensure_buckets(self, buckets: list[str]) -> None:
        for bucket in buckets:
            check_bucket_name(bucket)
        await asyncio.to_thread(self._make_bucket_dirs, buckets)

    async def put_stream(
        self,
        bucket: str,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        content_type: str | None = None,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        async def write_chunks(target: BinaryIO) -> int:
            size = 0
            batch: list[bytes] = []
            batch_size = 0
            async for chunk in stream:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise BlobTooLargeError(f"{bucket}/{key} exceeds {max_bytes} bytes")
                batch.append(chunk)
                batch_size += len(chunk)
                if batch_size >= CHUNK_SIZE:
                    await asyncio.to_thread(target.writelines, batch)
                    batch, batch_size = [], 0
            await asyncio.to_thread(target.writelines, batch)
            return size

        return await self._write_atomically(bucket, key, write_chunks, content_type)

    async def put_file(
        self, bucket: str, key: str, fileobj: IO[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        async def copy_file(target: BinaryIO) -> int:
            await asyncio.to_thread(shutil.copyfileobj, fileobj, target, CHUNK_SIZE)
            return target.tell()

        return await self._write_atomically(bucket, key, copy_file, content_type)

    async def get_stream(
        self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        source = await asyncio.to_thread(self._open_object, bucket, key)
        try:
            while chunk := await asyncio.to_thread(source.read, chunk_size):
                yield chunk
        finally:
            source.close()

    async def get_to_file(self, bucket: str, key: str, fileobj: IO[bytes]) -> int:
        def copy() -> int:
            with self._open_object(bucket, key) as source:
                shutil.copyfileobj(source, fileobj, CHUNK_SIZE)
                return source.tell()

        return await asyncio.to_thread(copy)

    async def stat(self, bucket: str, key: str) -> BlobInfo:
        return await asyncio.to_thread(self._stat, bucket, key)

    async def exists(self, bucket: str, key: str) -> bool:
        path = self._object_path(bucket, key)
        return await asyncio.to_thread(path.is_file)

    async def delete(self, bucket: str, key: str) -> None:
        path = self._object_path(bucket, key)
        metadata = self._metadata_path(bucket, key)

        def unlink() -> None:
            path.unlink(missing_ok=True)
            metadata.unlink(missing_ok=True)

        await asyncio.to_thread(unlink)

    async def presigned_get_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        return None

    async def presigned_put_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        return None

    async def list_objects(self, bucket: str) -> AsyncIterator[StoredObject]:
        for item in await asyncio.to_thread(self._list_bucket, bucket):
            yield item

    async def delete_write_leftovers(self, bucket: str, older_than: datetime) -> list[str]:
        """Remove the ``.partial`` files a killed process left beside its objects and their metadata."""
        check_bucket_name(bucket)
        return await asyncio.to_thread(self._delete_partials, bucket, older_than.timestamp())

    async def ping(self) -> bool:
        return await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK)

    def _list_bucket(self, bucket: str) -> list[StoredObject]:
        check_bucket_name(bucket)
        directory = self.root / bucket
        found = []
        for path in directory.rglob("*"):
            relative = path.relative_to(directory)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            found.append(StoredObject(key=relative.as_posix(), size=stat.st_size, modified_at=modified))
        return found

    def _delete_partials(self, bucket: str, before: float) -> list[str]:
        removed = []
        for directory in (self.root / bucket, self.root / METADATA_DIR / bucket):
            for path in directory.rglob(f".*{PARTIAL_SUFFIX}"):
                try:
                    if path.stat().st_mtime < before:
                        path.unlink()
                        removed.append(path.relative_to(self.root).as_posix())
                except FileNotFoundError:
                    continue
        return removed

    def _object_path(self, bucket: str, key: str) -> Path:
        check_bucket_name(bucket)
        return self.root.joinpath(bucket, *key_parts(key))

    def _metadata_path(self, bucket: str, key: str) -> Path:
        check_bucket_name(bucket)
        *parents, name = key_parts(key)
        return self.root.joinpath(METADATA_DIR, bucket, *parents, name + ".json")

    def _make_bucket_dirs(self, buckets: list[str]) -> None:
        for bucket in buckets:
            (self.root / bucket).mkdir(parents=True, exist_ok=True)
            (self.root / METADATA_DIR / bucket).mkdir(parents=True, exist_ok=True)

    def _require_bucket(self, bucket: str) -> None:
        if not (self.root / bucket).is_dir():
            raise BlobNotFoundError(f"bucket {bucket!r} does not exist")

    def _open_object(self, bucket: str, key: str) -> BinaryIO:
        path = self._object_path(bucket, key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"{bucket}/{key}") from None

    def _stat(self, bucket: str, key: str) -> BlobInfo:
        path = self._object_path(bucket, key)
        if not path.is_file():
            raise BlobNotFoundError(f"{bucket}/{key}")
        size = path.stat().st_size
        try:
            metadata = json.loads(self._metadata_path(bucket, key).read_text())
        except FileNotFoundError:
            metadata = {}
        return BlobInfo(bucket=bucket, key=key, size=size, content_type=metadata.get("content_type"))

    async def _write_atomically(
        self, bucket: str, key: str, write: FileWriter, content_type: str | None
    ) -> BlobInfo:
        """Write through ``write`` into a temporary file, then move data and metadata into place."""
        path = self._object_path(bucket, key)
        metadata_path = self._metadata_path(bucket, key)
        partial, partial_path = await asyncio.to_thread(self._open_partial, bucket, path)
        try:
            size = await write(partial)
            await asyncio.to_thread(_flush_and_sync, partial)
            partial.close()
            await asyncio.to_thread(self._commit, partial_path, path, metadata_path, content_type)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_discard, partial, partial_path))
            raise
        return BlobInfo(bucket=bucket, key=key, size=size, content_type=content_type)

    def _open_partial(self, bucket: str, path: Path) -> tuple[BinaryIO, Path]:
        self._require_bucket(bucket)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
        return os.fdopen(descriptor, "wb"), Path(name)

    @staticmethod
    def _commit(partial: Path, path: Path, metadata_path: Path, content_type: str | None) -> None:
        """Metadata first, then the data: the object only appears once its content type is known."""
        metadata_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(
            dir=metadata_path.parent, prefix=f".{metadata_path.name}.", suffix=PARTIAL_SUFFIX
        )
        try:
            with os.fdopen(descriptor, "w") as metadata:
                json.dump({"content_type": content_type}, metadata)
                _flush_and_sync(metadata)
            os.replace(name, metadata_path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        os.replace(partial, path)
        _sync_directory(metadata_path.parent)
        _sync_directory(path.parent)


def _flush_and_sync(file: IO[Any]) -> None:
    file.flush()
    os.fsync(file.fileno())


def _discard(partial: BinaryIO, partial_path: Path) -> None:
    partial.close()
    partial_path.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
