"""A partner's photo fetched from its ``source_url``: only from public addresses, redirects too."""

from __future__ import annotations

import asyncio
import functools
import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chromaline.common.blobs import buckets
from chromaline.common.blobs.filesystem import FilesystemBlobStore
from chromaline.common.bus.base import PermanentError
from chromaline.common.events.contracts import ImageUploaded
from chromaline.detector.handlers import fetch_source
from chromaline.detector.settings import DetectorSettings

PHOTO = b"\xff\xd8\xff" + b"photo" * 100


@pytest.fixture
def inside() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1, as a service inside the deployment would be: its URL, and the paths
    asked of it."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if self.path == "/hop":
                self.send_response(302)
                self.send_header("Location", "/photo.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PHOTO)))
            self.end_headers()
            self.wfile.write(PHOTO)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _uploaded(url: str) -> ImageUploaded:
    return ImageUploaded(job_id=uuid.uuid4(), filename="photo.jpg", source_url=url)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_source_url_inside_the_deployment_is_refused_before_it_is_called(
    inside: tuple[str, list[str]], tmp_path: Path, host: str
) -> None:
    url, asked = inside
    blobs = FilesystemBlobStore(tmp_path)
    with pytest.raises(PermanentError, match="source_url refused"):
        await fetch_source(
            blobs, _uploaded(url.replace("127.0.0.1", host) + "/photo.jpg"), DetectorSettings()
        )
    assert asked == []


async def test_a_redirect_from_a_public_address_to_an_inside_one_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def public(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        assert host == "photos.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    called: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        called.append(request.url)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:8084/internal/v1/api-keys/verify"})

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", public)
    monkeypatch.setattr(
        httpx, "AsyncClient", functools.partial(httpx.AsyncClient, transport=httpx.MockTransport(answer))
    )
    with pytest.raises(PermanentError, match="source_url refused"):
        await fetch_source(
            FilesystemBlobStore(tmp_path), _uploaded("http://photos.example.com/a.jpg"), DetectorSettings()
        )
    assert [url.host for url in called] == ["93.184.216.34"]


async def test_private_addresses_may_be_allowed_and_redirects_are_followed(
    inside: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, asked = inside
    blobs = FilesystemBlobStore(tmp_path)
    await blobs.ensure_buckets([buckets.ORIGINALS])
    event = _uploaded(url + "/hop")
    fetched = await fetch_source(blobs, event, DetectorSettings(fetch_allow_private_urls=True))
    assert asked == ["/hop", "/photo.jpg"]
    assert (fetched.bucket, fetched.key) == (buckets.ORIGINALS, f"{event.job_id}/fetched")
    assert await blobs.get_bytes(fetched.bucket, fetched.key) == PHOTO


@pytest.mark.parametrize("location", ["http://photos.example.com:abc/a.jpg", "http://[::1/a.jpg"])
async def test_a_redirect_to_a_malformed_url_fails_the_job_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    """The malformed address raised an error the fetch did not expect, so the message was tried
    again instead of the job failing with a reason."""

    async def public(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", public)
    redirect = httpx.MockTransport(lambda _: httpx.Response(302, headers={"Location": location}))
    monkeypatch.setattr(httpx, "AsyncClient", functools.partial(httpx.AsyncClient, transport=redirect))
    with pytest.raises(PermanentError, match="source_url"):
        await fetch_source(
            FilesystemBlobStore(tmp_path), _uploaded("http://photos.example.com/a.jpg"), DetectorSettings()
        )
