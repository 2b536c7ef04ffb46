"""Both blob store adapters against the same expectations (S3 through moto, MinIO or a configured URL)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from chromaline.common.blobs.base import BlobInfo, BlobNotFoundError, BlobStore, BlobTooLargeError, BlobUpload
from chromaline.common.blobs.factory import create_blob_store, parse_s3_url
from chromaline.common.blobs.filesystem import FilesystemBlobStore
from chromaline.common.blobs.s3 import S3BlobStore, S3Connection
from chromaline.common.testing.s3 import remove_bucket

MB = 1024 * 1024


class StreamBrokeError(Exception):
    pass


def generated_chunk(seed: int, index: int, size: int) -> bytes:
    return random.Random(seed * 1_000_003 + index).randbytes(size)


async def generated_stream(
    seed: int, chunk_count: int, chunk_size: int = MB, *, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    """Deterministic pseudo-random content, made one chunk at a time; optionally breaking mid-way."""
    for index in range(chunk_count):
        if index == fail_after:
            raise StreamBrokeError(f"stream broke after {index} chunks")
        yield generated_chunk(seed, index, chunk_size)


async def generated_digest(seed: int, chunk_count: int, chunk_size: int = MB) -> str:
    digest = hashlib.sha256()
    async for chunk in generated_stream(seed, chunk_count, chunk_size):
        digest.update(chunk)
    return digest.hexdigest()


async def stored_digest(store: BlobStore, bucket: str, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in store.get_stream(bucket, key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def peak_memory_of(action: Callable[[], Awaitable[object]]) -> int:
    """Peak bytes allocated by this process (all threads) while ``action`` runs, above the start."""
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline


def incomplete_uploads(store: BlobStore, bucket: str) -> list[str]:
    """Keys with multipart uploads still open (S3 only; the SDK keeps this listing private)."""
    if not isinstance(store, S3BlobStore):
        return []
    result = store.client._list_multipart_uploads(bucket)
    return [upload.object_name for upload in result.uploads]


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


async def test_small_object_round_trip_keeps_content_type(blob_store: BlobStore, blob_bucket: str) -> None:
    info = await blob_store.put_bytes(blob_bucket, "photos/a.jpg", b"\xff\xd8jpeg", content_type="image/jpeg")

    assert (info.size, info.content_type) == (6, "image/jpeg")
    assert await blob_store.get_bytes(blob_bucket, "photos/a.jpg") == b"\xff\xd8jpeg"
    stat = await blob_store.stat(blob_bucket, "photos/a.jpg")
    assert (stat.bucket, stat.key, stat.size, stat.content_type) == (
        blob_bucket,
        "photos/a.jpg",
        6,
        "image/jpeg",
    )
    assert await blob_store.exists(blob_bucket, "photos/a.jpg")


async def test_put_many_stores_every_object(blob_store: BlobStore, blob_bucket: str) -> None:
    uploads = [
        BlobUpload(blob_bucket, f"job/{n}.json", f'{{"n": {n}}}'.encode(), "application/json")
        for n in range(6)
    ]

    infos = await blob_store.put_many(uploads)

    assert [(info.key, info.size) for info in infos] == [(upload.key, len(upload.data)) for upload in uploads]
    for upload in uploads:
        assert await blob_store.get_bytes(blob_bucket, upload.key) == upload.data
        assert (await blob_store.stat(blob_bucket, upload.key)).content_type == "application/json"


class _SlowStore(FilesystemBlobStore):
    """Each put waits as a round trip to a remote store would; counts the puts under way, and
    fails the put of a key named ``fail``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.in_flight = 0
        self.most_in_flight = 0
        self.cancelled = 0

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> BlobInfo:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05 if key != "fail" else 0.01)
            if key == "fail":
                raise OSError("the store refused the object")
            return await super().put_bytes(bucket, key, data, content_type=content_type)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


async def test_put_many_sends_the_objects_at_once(tmp_path: Path) -> None:
    store = _SlowStore(tmp_path)
    await store.ensure_buckets(["results"])

    await store.put_many([BlobUpload("results", f"k{n}", b"x") for n in range(5)])

    assert store.most_in_flight == 5


async def test_put_many_raises_the_failed_puts_error_and_cancels_the_rest(tmp_path: Path) -> None:
    store = _SlowStore(tmp_path)
    await store.ensure_buckets(["results"])

    with pytest.raises(OSError, match="refused"):
        await store.put_many(
            [
                BlobUpload("results", "k1", b"x"),
                BlobUpload("results", "fail", b"x"),
                BlobUpload("results", "k2", b"x"),
            ]
        )

    assert store.cancelled == 2
    assert store.in_flight == 0
    assert not await store.exists("results", "k1")


async def test_put_replaces_an_existing_object(blob_store: BlobStore, blob_bucket: str) -> None:
    await blob_store.put_bytes(blob_bucket, "k", b"first", content_type="text/plain")
    await blob_store.put_bytes(blob_bucket, "k", b"second version", content_type="application/json")

    assert await blob_store.get_bytes(blob_bucket, "k") == b"second version"
    assert (await blob_store.stat(blob_bucket, "k")).content_type == "application/json"


async def test_get_stream_honours_chunk_size(blob_store: BlobStore, blob_bucket: str) -> None:
    await blob_store.put_bytes(blob_bucket, "k", bytes(range(256)) * 10)

    chunks = [chunk async for chunk in blob_store.get_stream(blob_bucket, "k", chunk_size=1000)]

    assert b"".join(chunks) == bytes(range(256)) * 10
    assert max(len(chunk) for chunk in chunks) <= 1000
    assert len(chunks) >= 3


@pytest.mark.slow
async def test_large_object_streams_in_bounded_memory(blob_store: BlobStore, blob_bucket: str) -> None:
    chunk_count = 50
    expected = await generated_digest(seed=7, chunk_count=chunk_count)

    async def put() -> None:
        info = await blob_store.put_stream(
            blob_bucket,
            "big.bin",
            generated_stream(seed=7, chunk_count=chunk_count),
            max_bytes=chunk_count * MB,
        )
        assert info.size == chunk_count * MB

    stored: list[tuple[str, int]] = []

    async def get() -> None:
        stored.append(await stored_digest(blob_store, blob_bucket, "big.bin"))

    put_peak = await peak_memory_of(put)
    get_peak = await peak_memory_of(get)

    assert stored == [(expected, chunk_count * MB)]
    assert (await blob_store.stat(blob_bucket, "big.bin")).size == chunk_count * MB
    assert put_peak < 20 * MB, f"put peaked at {put_peak / MB:.1f} MB"
    assert get_peak < 20 * MB, f"get peaked at {get_peak / MB:.1f} MB"


async def test_put_file_and_get_to_file(blob_store: BlobStore, blob_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    with source.open("wb") as out:
        async for chunk in generated_stream(seed=3, chunk_count=7):
            out.write(chunk)
    target = tmp_path / "target.bin"

    with source.open("rb") as fileobj:
        info = await blob_store.put_file(blob_bucket, "file.bin", fileobj, content_type="image/tiff")
    with target.open("wb") as fileobj:
        copied = await blob_store.get_to_file(blob_bucket, "file.bin", fileobj)

    assert info.size == copied == 7 * MB
    assert target.read_bytes() == source.read_bytes()
    assert (await blob_store.stat(blob_bucket, "file.bin")).content_type == "image/tiff"


async def test_delete_removes_the_object_and_is_idempotent(blob_store: BlobStore, blob_bucket: str) -> None:
    await blob_store.put_bytes(blob_bucket, "gone", b"x")
    await blob_store.put_bytes(blob_bucket, "kept", b"y")

    await blob_store.delete(blob_bucket, "gone")
    await blob_store.delete(blob_bucket, "gone")

    assert not await blob_store.exists(blob_bucket, "gone")
    assert await blob_store.exists(blob_bucket, "kept")
    with pytest.raises(BlobNotFoundError):
        await blob_store.stat(blob_bucket, "gone")


async def test_missing_object_raises_not_found(
    blob_store: BlobStore, blob_bucket: str, tmp_path: Path
) -> None:
    assert not await blob_store.exists(blob_bucket, "nothing")
    with pytest.raises(BlobNotFoundError):
        await blob_store.stat(blob_bucket, "nothing")
    with pytest.raises(BlobNotFoundError):
        await blob_store.get_bytes(blob_bucket, "nothing")
    with pytest.raises(BlobNotFoundError), (tmp_path / "out").open("wb") as fileobj:
        await blob_store.get_to_file(blob_bucket, "nothing", fileobj)


async def test_missing_bucket_raises_not_found(blob_store: BlobStore) -> None:
    assert not await blob_store.exists("no-such-bucket-here", "k")
    with pytest.raises(BlobNotFoundError):
        await blob_store.put_bytes("no-such-bucket-here", "k", b"x")
    with pytest.raises(BlobNotFoundError):
        await blob_store.get_bytes("no-such-bucket-here", "k")


@pytest.mark.parametrize(
    ("chunk_count", "chunk_size", "max_bytes"),
    [
        pytest.param(3, 10, 25, id="small"),
        pytest.param(8, MB, 6 * MB + 1, id="past-first-part"),
    ],
)
async def test_max_bytes_refuses_and_stores_nothing(
    blob_store: BlobStore, blob_bucket: str, chunk_count: int, chunk_size: int, max_bytes: int
) -> None:
    with pytest.raises(BlobTooLargeError):
        await blob_store.put_stream(
            blob_bucket, "too-big", generated_stream(1, chunk_count, chunk_size), max_bytes=max_bytes
        )

    assert not await blob_store.exists(blob_bucket, "too-big")
    assert incomplete_uploads(blob_store, blob_bucket) == []


async def test_max_bytes_admits_an_object_of_exactly_that_size(
    blob_store: BlobStore, blob_bucket: str
) -> None:
    info = await blob_store.put_stream(blob_bucket, "fits", generated_stream(2, 3, 10), max_bytes=30)

    assert info.size == 30
    assert await blob_store.get_bytes(blob_bucket, "fits") == b"".join(
        [chunk async for chunk in generated_stream(2, 3, 10)]
    )


@pytest.mark.parametrize("fail_after", [pytest.param(1, id="first-part"), pytest.param(7, id="second-part")])
async def test_broken_stream_leaves_the_previous_object_intact(
    blob_store: BlobStore, blob_bucket: str, fail_after: int
) -> None:
    await blob_store.put_bytes(blob_bucket, "photo", b"previous", content_type="text/plain")

    with pytest.raises(StreamBrokeError):
        await blob_store.put_stream(
            blob_bucket, "photo", generated_stream(4, 10, fail_after=fail_after), content_type="image/png"
        )
    with pytest.raises(StreamBrokeError):
        await blob_store.put_stream(blob_bucket, "new", generated_stream(4, 10, fail_after=fail_after))

    assert await blob_store.get_bytes(blob_bucket, "photo") == b"previous"
    assert (await blob_store.stat(blob_bucket, "photo")).content_type == "text/plain"
    assert not await blob_store.exists(blob_bucket, "new")
    assert incomplete_uploads(blob_store, blob_bucket) == []


async def test_cancelled_upload_stores_nothing(blob_store: BlobStore, blob_bucket: str) -> None:
    halfway = asyncio.Event()

    async def stalling_stream() -> AsyncIterator[bytes]:
        async for chunk in generated_stream(5, 7):
            yield chunk
        halfway.set()
        await asyncio.Event().wait()
        yield b"never"

    upload = asyncio.create_task(blob_store.put_stream(blob_bucket, "cancelled", stalling_stream()))
    await asyncio.wait_for(halfway.wait(), timeout=30)
    upload.cancel()

    with pytest.raises(asyncio.CancelledError):
        await upload
    assert not await blob_store.exists(blob_bucket, "cancelled")
    assert incomplete_uploads(blob_store, blob_bucket) == []


async def test_ping(blob_store: BlobStore) -> None:
    assert await blob_store.ping()


@pytest.mark.integration
async def test_presigned_put_then_get(s3_url: str, blob_bucket: str) -> None:
    store = S3BlobStore(parse_s3_url(s3_url))
    await store.ensure_buckets([blob_bucket])
    try:
        put_url = await store.presigned_put_url(blob_bucket, "direct.bin", timedelta(minutes=5))
        get_url = await store.presigned_get_url(blob_bucket, "direct.bin", timedelta(minutes=5))
        assert put_url is not None
        assert get_url is not None
        async with httpx.AsyncClient() as http:
            uploaded = await http.put(put_url, content=b"sent without credentials")
            downloaded = await http.get(get_url)

        assert uploaded.status_code == 200
        assert downloaded.status_code == 200
        assert downloaded.content == b"sent without credentials"
        assert await store.get_bytes(blob_bucket, "direct.bin") == b"sent without credentials"
    finally:
        await asyncio.to_thread(remove_bucket, store.client, blob_bucket)
        await store.close()


async def test_ping_fails_when_s3_does_not_answer() -> None:
    store = create_blob_store("s3://key:secret@127.0.0.1:1?secure=false&region=us-east-1")
    try:
        assert not await store.ping()
    finally:
        await store.close()


async def test_filesystem_store_cannot_presign(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.ensure_buckets(["photos"])
    await store.put_bytes("photos", "a.jpg", b"x")

    assert await store.presigned_get_url("photos", "a.jpg", timedelta(minutes=5)) is None
    assert await store.presigned_put_url("photos", "b.jpg", timedelta(minutes=5)) is None


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "", "a\\..\\b", "a/"]
)
async def test_filesystem_store_refuses_keys_that_leave_the_bucket(tmp_path: Path, key: str) -> None:
    store = FilesystemBlobStore(tmp_path / "root")
    await store.ensure_buckets(["photos"])

    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put_bytes("photos", key, b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.get_bytes("photos", key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.stat("photos", key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.delete("photos", key)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("bucket", ["..", "../x", "a", "Photos", ".metadata", "x/y"])
async def test_filesystem_store_refuses_invalid_bucket_names(tmp_path: Path, bucket: str) -> None:
    store = FilesystemBlobStore(tmp_path)

    with pytest.raises(ValueError, match="invalid bucket name"):
        await store.ensure_buckets([bucket])
    with pytest.raises(ValueError, match="invalid bucket name"):
        await store.exists(bucket, "k")


async def test_filesystem_store_leaves_no_partial_files(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.ensure_buckets(["photos"])
    await store.put_bytes("photos", "kept.png", b"png", content_type="image/png")

    with pytest.raises(StreamBrokeError):
        await store.put_stream("photos", "broken.png", generated_stream(1, 5, fail_after=3))
    with pytest.raises(BlobTooLargeError):
        await store.put_stream("photos", "nested/too-big.png", generated_stream(1, 5, 10), max_bytes=20)

    assert [path.relative_to(tmp_path).as_posix() for path in files_under(tmp_path)] == [
        ".metadata/photos/kept.png.json",
        "photos/kept.png",
    ]


async def test_filesystem_ping_reports_an_unusable_root(tmp_path: Path) -> None:
    assert await FilesystemBlobStore(tmp_path).ping()
    assert not await FilesystemBlobStore(tmp_path / "missing").ping()


def test_factory_reads_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    relative = create_blob_store("file://.chromaline/blobs")
    absolute = create_blob_store(f"file://{tmp_path}/elsewhere")

    assert isinstance(relative, FilesystemBlobStore)
    assert relative.root == tmp_path / ".chromaline" / "blobs"
    assert isinstance(absolute, FilesystemBlobStore)
    assert absolute.root == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "s3://AK:S%2Fk%40y@minio:9000?secure=false&region=eu-west-1",
            S3Connection("minio:9000", "AK", "S/k@y", secure=False, region="eu-west-1"),
            id="s3-minio",
        ),
        pytest.param(
            "s3://AK:SK@s3.amazonaws.com", S3Connection("s3.amazonaws.com", "AK", "SK"), id="s3-tls"
        ),
        pytest.param(
            "http://AK:SK@localhost:9000", S3Connection("localhost:9000", "AK", "SK", secure=False), id="http"
        ),
        pytest.param(
            "https://AK:SK@storage.example:443?region=us-east-2",
            S3Connection("storage.example:443", "AK", "SK", region="us-east-2"),
            id="https",
        ),
    ],
)
def test_factory_reads_s3_urls(url: str, expected: S3Connection) -> None:
    assert parse_s3_url(url) == expected
    assert isinstance(create_blob_store(url), S3BlobStore)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/dir",
        "file://",
        "s3://minio:9000",
        "s3://AK:SK@minio:9000?secure=maybe",
        "s3://AK:SK@minio:9000?bucket=x",
        "http://AK:SK@minio:9000?secure=true",
    ],
)
def test_factory_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each URL fails for its own reason
        create_blob_store(url)


async def test_list_objects_names_every_object_with_its_size_and_age(
    blob_store: BlobStore, blob_bucket: str
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    await blob_store.put_bytes(blob_bucket, "a/one.jpg", b"12345")
    await blob_store.put_bytes(blob_bucket, "two.jpg", b"12")
    listed = {item.key: item async for item in blob_store.list_objects(blob_bucket)}
    assert {key: item.size for key, item in listed.items()} == {"a/one.jpg": 5, "two.jpg": 2}
    assert all(item.modified_at > before for item in listed.values())


async def test_filesystem_store_deletes_old_write_leftovers_only(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.ensure_buckets(["leftovers"])
    await store.put_bytes("leftovers", "kept/photo.jpg", b"data")
    old = tmp_path / "leftovers" / "kept" / ".photo.jpg.abc.partial"
    recent = tmp_path / "leftovers" / "kept" / ".other.jpg.def.partial"
    old_metadata = tmp_path / ".metadata" / "leftovers" / "kept" / ".photo.jpg.json.ghi.partial"
    for path in (old, recent, old_metadata):
        path.write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    for path in (old, old_metadata):
        os.utime(path, (an_hour_ago, an_hour_ago))
    removed = await store.delete_write_leftovers("leftovers", datetime.now(UTC) - timedelta(minutes=10))
    assert sorted(removed) == sorted(
        [
            "leftovers/kept/.photo.jpg.abc.partial",
            ".metadata/leftovers/kept/.photo.jpg.json.ghi.partial",
        ]
    )
    assert recent.exists()
    assert not old.exists()
    assert not old_metadata.exists()
    assert [item.key async for item in store.list_objects("leftovers")] == ["kept/photo.jpg"]
