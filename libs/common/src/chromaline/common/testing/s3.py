"""Pytest fixtures for blob stores: an S3 endpoint, a fresh bucket per test, each adapter in turn.

The S3 endpoint comes from ``CHROMALINE_TEST_S3_URL`` when set; otherwise from a MinIO container
when a Docker engine answers; otherwise from a moto S3 server on 127.0.0.1. Moto runs as a child
process rather than in this one, so that tests measuring this process's memory (tracemalloc) do
not count the server's own copies of the objects they store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest
import pytest_asyncio
from minio import Minio

from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.factory import create_blob_store
from chromaline.common.blobs.filesystem import FilesystemBlobStore
from chromaline.common.blobs.s3 import S3BlobStore
from chromaline.common.testing.services import docker_engine_answers, missing_service, port_answers

S3_URL_ENV = "CHROMALINE_TEST_S3_URL"
MOTO_START_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """An ``s3://`` URL for :func:`create_blob_store`, valid for the whole test session."""
    configured = os.environ.get(S3_URL_ENV)
    if configured:
        yield configured
    elif docker_engine_answers():
        yield from _minio_container_url()
    else:
        yield from _moto_server_url()


@pytest.fixture
def blob_bucket() -> str:
    """A bucket name no other test uses."""
    return f"test-{uuid.uuid4().hex[:24]}"


@pytest_asyncio.fixture(
    params=[pytest.param("file", id="file"), pytest.param("s3", id="s3", marks=pytest.mark.integration)]
)
async def blob_store(
    request: pytest.FixtureRequest, tmp_path: Path, blob_bucket: str
) -> AsyncIterator[BlobStore]:
    """Each blob store adapter in turn, with ``blob_bucket`` created; S3 buckets are removed after."""
    store: BlobStore
    if request.param == "file":
        store = FilesystemBlobStore(tmp_path / "blobs")
    else:
        store = create_blob_store(request.getfixturevalue("s3_url"))
    await store.ensure_buckets([blob_bucket])
    try:
        yield store
    finally:
        if isinstance(store, S3BlobStore):
            await asyncio.to_thread(remove_bucket, store.client, blob_bucket)
        await store.close()


def remove_bucket(client: Minio, bucket: str) -> None:
    """Delete every object of ``bucket``, then the bucket, so a shared S3 server stays clean."""
    for item in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, item.object_name)
    client.remove_bucket(bucket)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server of the caller's own (its buckets shared with no other test), as an ``s3://`` URL."""
    yield from _moto_server_url()


def _minio_container_url() -> Iterator[str]:
    from testcontainers.community.minio import MinioContainer

    with MinioContainer() as minio:
        host = minio.get_container_host_ip()
        port = minio.get_exposed_port(minio.port)
        yield f"s3://{minio.access_key}:{minio.secret_key}@{host}:{port}?secure=false&region=us-east-1"


def _moto_server_url() -> Iterator[str]:
    port = _free_port()
    with tempfile.TemporaryFile() as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        try:
            _wait_for_port(server, port, server_log)
            yield f"s3://testing:testing@127.0.0.1:{port}?secure=false&region=us-east-1"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_for_port(server: subprocess.Popen[bytes], port: int, server_log: IO[bytes]) -> None:
    deadline = time.monotonic() + MOTO_START_TIMEOUT
    while not port_answers("127.0.0.1", port, timeout=0.2):
        if server.poll() is not None or time.monotonic() > deadline:
            server_log.seek(0)
            output = server_log.read().decode(errors="replace")[-2000:]
            missing_service("S3", f"moto server did not start on port {port}: {output}")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
