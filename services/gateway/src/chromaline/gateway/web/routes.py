"""Routes serving the web app: the page at ``/`` and its assets under ``/web/<version>/``.

The assets are read once when the app is built. Their version is a hash of their contents, so a
URL names one set of bytes for ever: browsers keep them a year (``immutable``) and a new release
has new URLs. The page itself is revalidated on every load (``no-cache`` with an ETag) and points
at the current version. Text assets are held compressed with brotli and gzip beside the original
and sent in the best encoding the browser accepts.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import brotli
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.routing import Route, Router

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/web"
PAGE = "index.html"
VERSION_PLACEHOLDER = "/web/"
"""``index.html`` names its assets under ``/web/``; served, they point at ``/web/<version>/``."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Everything comes from the gateway itself: no CDN, no inline script, images only as blobs."""

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSET_CACHE = "public, max-age=31536000, immutable"
COMPRESSIBLE = ("text/", "application/javascript", "image/svg+xml", "application/json")
MIN_COMPRESSED_BYTES = 256
"""Smaller files gain nothing from compression."""


@dataclass(frozen=True)
class Asset:
    """One file's bytes, as stored and in each encoding worth sending."""

    media_type: str
    encodings: dict[str, bytes]
    """``identity`` always; ``br`` and ``gzip`` for text worth compressing."""
    etag: str

    @classmethod
    def of(cls, data: bytes, media_type: str) -> Asset:
        encodings = {"identity": data}
        if media_type.startswith(COMPRESSIBLE) and len(data) >= MIN_COMPRESSED_BYTES:
            encodings["br"] = brotli.compress(data, quality=11)
            encodings["gzip"] = gzip.compress(data, compresslevel=9, mtime=0)
        return cls(media_type, encodings, f'"{hashlib.sha256(data).hexdigest()[:20]}"')

    def response(self, request: Request, headers: dict[str, str]) -> Response:
        """The asset in the best encoding ``request`` accepts, or 304 when the browser has it."""
        common = {**headers, "ETag": self.etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=common)
        accepted = {
            part.split(";")[0].strip() for part in request.headers.get("accept-encoding", "").split(",")
        }
        encoding = next(
            (name for name in ("br", "gzip") if name in accepted and name in self.encodings), "identity"
        )
        if encoding != "identity":
            common["Content-Encoding"] = encoding
        return Response(self.encodings[encoding], media_type=self.media_type, headers=common)


@dataclass(frozen=True)
class WebAssets:
    version: str
    page: Asset
    files: dict[str, Asset]
    """By path relative to the static folder, ``js/app.js``."""


def _media_type(path: Path) -> str:
    if path.suffix == ".js":
        return "application/javascript"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def load_assets(directory: Path = STATIC_DIR) -> WebAssets:
    """Read every asset once; the version is a hash of all their names and contents."""
    paths = sorted(path for path in directory.rglob("*") if path.is_file() and path.name != PAGE)
    digest = hashlib.sha256()
    contents: dict[str, bytes] = {}
    for path in paths:
        name = path.relative_to(directory).as_posix()
        contents[name] = path.read_bytes()
        digest.update(name.encode() + b"\0" + contents[name] + b"\0")
    version = digest.hexdigest()[:12]
    page = (directory / PAGE).read_text().replace(f'"{VERSION_PLACEHOLDER}', f'"{ASSETS_PREFIX}/{version}/')
    files = {name: Asset.of(data, _media_type(Path(name))) for name, data in contents.items()}
    return WebAssets(version, Asset.of(page.encode(), "text/html; charset=utf-8"), files)


def build_web_router(assets: WebAssets) -> APIRouter:
    """The page at ``/``; the app routes by the URL fragment, so ``/`` is the only page path."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index(request: Request) -> Response:
        return assets.page.response(request, PAGE_HEADERS)

    return router


def build_asset_app(assets: WebAssets) -> Router:
    """The versioned assets, mounted under ``/web`` like static files: public, outside the API."""

    async def asset(request: Request) -> Response:
        found = assets.files.get(request.path_params["path"])
        if found is None or request.path_params["version"] != assets.version:
            return Response(status_code=404, headers={"Cache-Control": "no-store"})
        return found.response(request, {"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"})

    return Router(routes=[Route("/{version}/{path:path}", asset, methods=["GET"])])


def mount_web(app: FastAPI) -> None:
    """Serve the web app from ``app``: the page at ``/`` and its scripts and styles under ``/web/``."""
    assets = load_assets()
    app.include_router(build_web_router(assets))
    app.mount(ASSETS_PREFIX, build_asset_app(assets), name="web")
