"""Routes serving the web app: the page at ``/`` and its assets under ``/web/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/web"

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


def build_web_router() -> APIRouter:
    """The page itself; the app routes by the URL fragment, so ``/`` is the only page path."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    return router


def mount_web(app: FastAPI) -> None:
    """Serve the web app from ``app``: the page at ``/`` and its scripts and styles under ``/web/``."""
    app.include_router(build_web_router())
    app.mount(ASSETS_PREFIX, StaticFiles(directory=STATIC_DIR), name="web")
