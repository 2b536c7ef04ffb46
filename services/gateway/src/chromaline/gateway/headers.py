"""Security headers on every response, chosen by the settings."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chromaline.gateway.settings import GatewaySettings

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""For responses that set none of their own (the web page sets its own, wider policy)."""


class SecurityHeaders:
    """nosniff, no framing, no referrer, and HSTS on requests that came over HTTPS."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.hsts_seconds = settings.hsts_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https" or dict(scope["headers"]).get(b"x-forwarded-proto") == b"https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
                if https and self.hsts_seconds > 0:
                    headers.setdefault(
                        "Strict-Transport-Security", f"max-age={self.hsts_seconds}; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)
