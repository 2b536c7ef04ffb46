"""The web app's files: versioned URLs cached for a year, compressed, the page revalidated."""

from __future__ import annotations

import gzip
import re

import brotli
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chromaline.gateway.web.routes import ASSET_CACHE, load_assets, mount_web


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    mount_web(app)
    return TestClient(app)


def test_the_page_names_its_assets_by_version_and_is_revalidated(client: TestClient) -> None:
    version = load_assets().version
    page = client.get("/")
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["etag"]
    linked = re.findall(r'(?:href|src)="(/web/[^"]+)"', page.text)
    assert linked
    assert all(link.startswith(f"/web/{version}/") for link in linked), linked
    assert client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304


def test_assets_are_cached_for_a_year_and_compressed(client: TestClient) -> None:
    version = load_assets().version
    plain = client.get(f"/web/{version}/js/app.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == ASSET_CACHE
    assert plain.headers["content-type"].startswith("application/javascript")
    assert "content-encoding" not in plain.headers

    css = client.get(f"/web/{version}/app.css", headers={"Accept-Encoding": "identity"}).content
    zipped = client.send(
        client.build_request("GET", f"/web/{version}/app.css", headers={"Accept-Encoding": "gzip"}),
        stream=True,
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(b"".join(zipped.iter_raw())) == css

    raw = client.build_request("GET", f"/web/{version}/js/app.js", headers={"Accept-Encoding": "br, gzip"})
    answer = client.send(raw, stream=True)
    body = b"".join(answer.iter_raw())
    assert answer.headers["content-encoding"] == "br"
    assert len(body) < len(plain.content)
    assert brotli.decompress(body) == plain.content


def test_an_old_version_or_unknown_file_is_not_found(client: TestClient) -> None:
    assert client.get("/web/000000000000/js/app.js").status_code == 404
    assert client.get(f"/web/{load_assets().version}/js/nothing.js").status_code == 404
    assert client.get("/web/js/app.js").status_code == 404
