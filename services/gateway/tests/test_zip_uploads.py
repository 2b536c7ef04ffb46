"""ZIP archives in a multipart upload: the whole batch is checked from the archives' directories
before any is expanded, and expanding them does not stall the gateway's other requests."""

from __future__ import annotations

import asyncio
import io
import threading
import zipfile
from typing import IO, Any

import numpy as np
import pytest
from PIL import Image

from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient
from chromaline.gateway.uploads import check_image, read_member_bounded

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return bundle.getvalue()


def _settings(runtime: ServiceRuntime) -> GatewaySettings:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return settings


def _parts(*archives: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"set-{index}.zip", data, "application/zip")) for index, data in enumerate(archives)]


async def test_archives_over_the_batchs_file_limit_are_refused_before_any_is_expanded(
    api_runtime: ServiceRuntime, api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each archive may hold up to max_zip_entries photos: a batch of them was expanded whole to
    scratch space before its photos were counted against max_files_per_batch."""
    expanded: list[str] = []

    def counted(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Any:
        expanded.append(info.filename)
        return read_member_bounded(bundle, info, limit)

    monkeypatch.setattr("chromaline.gateway.api.read_member_bounded", counted)
    half = _settings(api_runtime).max_files_per_batch // 2 + 1
    photo = _noise_png(1)
    archives = [_zip({f"{part}-{index}.png": photo for index in range(half)}) for part in range(2)]
    async with api_client("org-a") as client:
        refused = await client.post("/api/v1/jobs", files=_parts(*archives))
    assert (refused.status_code, refused.json()["code"]) == (413, "too_many_files"), refused.text
    assert expanded == []


async def test_the_archives_of_one_batch_expand_within_one_limit(
    api_runtime: ServiceRuntime, api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_zip_uncompressed_bytes held for each archive alone: a batch of archives, each just
    within it, expanded to as many times the limit."""
    first, second = _noise_png(2), _noise_png(3)
    monkeypatch.setattr(_settings(api_runtime), "max_zip_uncompressed_bytes", len(first) + len(second) - 1)
    async with api_client("org-a") as client:
        alone = await client.post("/api/v1/jobs", files=_parts(_zip({"a.png": first})))
        together = await client.post(
            "/api/v1/jobs", files=_parts(_zip({"a.png": first}), _zip({"b.png": second}))
        )
    assert alone.status_code == 202, alone.text
    assert (together.status_code, together.json()["code"]) == (413, "archive_too_large"), together.text


async def test_expanding_an_archive_does_not_stall_other_requests(
    api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expanding (up to gigabytes) ran on the event loop: every other request of the replica,
    sockets and health checks included, waited until it was done."""
    answered = threading.Event()
    held: list[bool] = []

    def slow_check(fileobj: IO[bytes], filename: str, max_pixels: int) -> str:
        held.append(answered.wait(timeout=10))
        return check_image(fileobj, filename, max_pixels)

    monkeypatch.setattr("chromaline.gateway.api.check_image", slow_check)
    async with api_client("org-a") as client:
        upload = asyncio.create_task(
            client.post("/api/v1/jobs", files=_parts(_zip({"a.png": _noise_png(4)})))
        )
        await asyncio.sleep(0.2)
        listed = await client.get("/api/v1/jobs")
        answered.set()
        uploaded = await upload
    assert listed.status_code == 200
    assert uploaded.status_code == 202, uploaded.text
    assert held == [True], "the other request was answered while the archive was being expanded"
