"""``/api/v1/auth/*`` forwarded to the auth service, so clients talk to the gateway alone.

Only the auth service's public routes are forwarded, each matched whole against
:data:`PUBLIC_AUTH_ROUTES` (after the path is decoded, so ``%2e%2e`` is ``..`` and matches
nothing): the auth service's other routes (its OpenAPI document, metrics, the internal API) stay
out of reach, and anything else answers 404 here. The client's address goes along in
``X-Forwarded-For`` (replacing any the client sent), as the auth service throttles per address.
"""

from __future__ import annotations

import re

import httpx
from fastapi import APIRouter, Request, Response

from chromaline.common.http import CORRELATION_HEADER
from chromaline.common.idempotency import HEADER as IDEMPOTENCY_HEADER
from chromaline.common.idempotency import REPLAYED_HEADER
from chromaline.common.problems import ApiError

FORWARDED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "x-organisation-id",
    CORRELATION_HEADER.lower(),
    IDEMPOTENCY_HEADER.lower(),
)
FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after", "cache-control", REPLAYED_HEADER.lower())
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

PUBLIC_AUTH_ROUTES = (
    "register",
    "login",
    "refresh",
    "logout",
    "password/change",
    "password/reset-request",
    "password/reset",
    "me",
    "organisations/{organisation_id}/members",
    "organisations/{organisation_id}/members/{user_id}",
    "organisations/{organisation_id}/retention",
    "platform/operators",
    "platform/operators/{user_id}",
    "api-keys",
    "api-keys/{key_id}",
    "audit",
    ".well-known/jwks.json",
)
"""The auth service's public routes under ``/api/v1/auth/`` (a test compares them with its own)."""

_UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_FORWARDABLE = re.compile(
    "|".join(re.sub(r"\\\{\w+\\\}", _UUID, re.escape(route)) for route in PUBLIC_AUTH_ROUTES)
)


def add_auth_proxy(router: APIRouter, client: httpx.AsyncClient) -> None:
    """Add the forwarding route to ``router`` itself (not an included router), so the route's
    path, which its access rule is keyed by, is the full ``/api/v1/auth/{path:path}``."""

    @router.api_route(
        "/auth/{path:path}", methods=METHODS, summary="Accounts, tokens, API keys (auth service)"
    )
    async def forward(path: str, request: Request) -> Response:
        if not _FORWARDABLE.fullmatch(path):
            raise ApiError(404, "not_found", f"no auth route /api/v1/auth/{path[:200]!r}")
        headers = {
            name: value for name, value in request.headers.items() if name in FORWARDED_REQUEST_HEADERS
        }
        if not all(value.isascii() for value in headers.values()):
            raise ApiError(400, "invalid_header", "the headers passed on to the auth service must be ASCII")
        headers["x-forwarded-for"] = request.client.host if request.client else "unknown"
        try:
            answer = await client.request(
                request.method,
                f"/api/v1/auth/{path}",
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        except httpx.HTTPError:
            raise ApiError(503, "auth_unavailable", "the auth service cannot be reached") from None
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers={
                name: value for name, value in answer.headers.items() if name in FORWARDED_RESPONSE_HEADERS
            },
        )
