"""Checks every HTTP request passes before any route reads it.

* A body larger than the service's limit answers 413 ``body_too_large``: at once when
  ``Content-Length`` declares it, and as soon as the limit is crossed when the body is streamed
  (chunked), so a client cannot make the service hold a large body in memory. Routes may have a
  larger limit of their own (``route_limits``), or none here (``unlimited``) when they enforce it
  while they read.
* A path or query string holding control characters (NUL, CR, LF, …), percent-encoded or not,
  answers 400 ``invalid_characters``: no route has a use for them and they break headers, URLs
  and PostgreSQL text further in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chromaline.common.problems import problem

CONTROL_BYTES = frozenset(range(0x20)) | {0x7F}


def has_control_characters(text: bytes) -> bool:
    return not CONTROL_BYTES.isdisjoint(unquote_to_bytes(text))


class RequestGuard:
    """ASGI middleware enforcing the body limit and refusing control characters (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        unlimited: Iterable[tuple[str, str]] = (),
        route_limits: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._unlimited = frozenset(unlimited)
        self._route_limits = dict(route_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if has_control_characters(raw_path) or has_control_characters(scope.get("query_string", b"")):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await problem(400, "invalid_characters", "the path or query holds control characters")(
                scope, receive, send
            )
            return
        route = (scope.get("method", ""), scope["path"])
        if scope["type"] == "websocket" or route in self._unlimited:
            await self._app(scope, receive, send)
            return
        limit = self._route_limits.get(route, self._max_body_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(limit, scope, receive, send)
            return
        await self._guarded(limit, scope, receive, send)

    async def _guarded(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the body as the app reads it; past the limit, answer 413 at once and tell the app
        the client went away (so it stops reading), dropping whatever it sends afterwards."""
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit and not started:
                    refused = True
                    await self._too_large(limit, scope, receive, send)
            return {"type": "http.disconnect"} if refused else message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counting_receive, watching_send)
        except Exception:
            if not refused:
                raise

    async def _too_large(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(
            413,
            "body_too_large",
            f"the request body exceeds {limit} bytes",
            max_bytes=limit,
            headers={"Connection": "close"},
        )(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
