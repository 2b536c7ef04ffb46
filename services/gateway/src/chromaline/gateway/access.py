"""Who is calling and what they may do: every route of the gateway has a rule here.

Callers present an access token (an EdDSA JWT from the auth service, checked here against the
auth service's public keys, fetched once and cached) or an API key (``clk_…``, checked by the
auth service on every request, so a revoked key stops working at once). Tokens and keys come in
``Authorization: Bearer …``, ``X-API-Key`` or, for WebSockets, which browsers cannot give
headers, the ``access_token`` query parameter.

A rule names the least role and the API-key scopes a route needs. A route without a rule is
refused (and the route-matrix test fails), so a new route cannot be open by accident.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import jwt
from fastapi import Depends, WebSocketException
from jwt import PyJWK
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from chromaline.common.logging import get_logger
from chromaline.common.problems import ApiError, problem
from chromaline.gateway.concurrency import SlotsTaken, UserSlots
from chromaline.gateway.rate_limit import UploadBuckets, retry_after_header
from chromaline.gateway.settings import GatewaySettings

log = get_logger(__name__)

Permission = Literal["public", "metrics", "read", "upload", "write", "admin", "platform"]
ROLES = ("viewer", "member", "operator", "admin")
API_KEY_MARK = "clk_"
ALGORITHM = "EdDSA"
CLOCK_SKEW_SECONDS = 60
REQUIRED_CLAIMS = ("sub", "org", "role", "iss", "aud", "iat", "nbf", "exp", "jti")
INTERNAL_TOKEN_HEADER = "X-Internal-Token"
WS_POLICY_VIOLATION = 1008

NEEDS: dict[Permission, tuple[str, frozenset[str]]] = {
    "read": ("viewer", frozenset({"read", "upload", "admin"})),
    "upload": ("member", frozenset({"upload", "admin"})),
    "write": ("member", frozenset({"admin"})),
    "admin": ("admin", frozenset({"admin"})),
}
"""Per permission: the least organisation role, and the API-key scopes that grant it (with that role).
``platform`` is apart: only a platform operator's access token grants it, whatever the role."""

_FORWARDED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTE_RULES: dict[tuple[str, str], Permission] = {
    ("GET", "/"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "metrics",
    **{(method, "/api/v1/auth/{path:path}"): "public" for method in _FORWARDED_METHODS},
    ("POST", "/api/v1/jobs"): "upload",
    ("PUT", "/api/v1/uploads/stream"): "upload",
    ("POST", "/api/v1/uploads/presigned"): "upload",
    ("POST", "/api/v1/uploads/{upload_id}/confirm"): "upload",
    ("GET", "/api/v1/jobs"): "read",
    ("GET", "/api/v1/jobs/{job_id}"): "read",
    ("DELETE", "/api/v1/jobs/{job_id}"): "write",
    ("GET", "/api/v1/batches/{batch_id}"): "read",
    ("GET", "/api/v1/jobs/{job_id}/files/{name}"): "read",
    ("GET", "/api/v1/batches/{batch_id}/archive"): "read",
    ("POST", "/api/v1/profiles"): "write",
    ("GET", "/api/v1/profiles"): "read",
    ("PATCH", "/api/v1/profiles/{profile_id}"): "write",
    ("DELETE", "/api/v1/profiles/{profile_id}"): "write",
    ("GET", "/api/v1/profiles/{profile_id}/{name}"): "read",
    ("POST", "/api/v1/charts"): "write",
    ("GET", "/api/v1/charts"): "read",
    ("GET", "/api/v1/charts/{chart_id}"): "read",
    ("GET", "/api/v1/charts/{chart_id}/cgats"): "read",
    ("DELETE", "/api/v1/charts/{chart_id}"): "write",
    ("WEBSOCKET", "/api/v1/jobs/{job_id}/events"): "read",
    ("WEBSOCKET", "/api/v1/batches/{batch_id}/events"): "read",
    ("GET", "/api/v1/stats"): "read",
    ("GET", "/api/v1/notifications"): "read",
    ("POST", "/api/v1/notifications/{notification_id}/read"): "read",
    ("POST", "/api/v1/notifications/read-all"): "read",
    ("GET", "/api/v1/notifications/preferences"): "read",
    ("PUT", "/api/v1/notifications/preferences"): "read",
    ("GET", "/api/v1/webhooks"): "write",
    ("POST", "/api/v1/webhooks"): "write",
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): "write",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): "write",
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): "write",
    ("GET", "/api/v1/organisation/settings"): "read",
    ("PUT", "/api/v1/organisation/settings"): "admin",
    ("GET", "/api/v1/admin/dead-letters"): "platform",
    ("POST", "/api/v1/admin/dead-letters/{queue}/{letter_id}/replay"): "platform",
}
"""(method, route path) → permission; WebSocket routes under the method ``WEBSOCKET``."""


def internal_token(secret: str) -> str:
    """What the gateway presents to the auth service's internal API (derived from the shared secret)."""
    return hmac.new(secret.encode(), b"chromaline-internal-api", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller acting for one organisation."""

    user_id: str
    organisation_id: str
    role: str
    scopes: frozenset[str] | None = None
    """The API key's scopes; None for a user's access token."""
    api_key_id: str | None = None
    platform_operator: bool = False
    """Operates the whole deployment, apart from the organisation role (access tokens only)."""

    def may(self, permission: Permission) -> bool:
        if permission == "public":
            return True
        if permission == "platform":
            return self.platform_operator and self.scopes is None
        least_role, granting_scopes = NEEDS[permission]
        if self.role not in ROLES or ROLES.index(self.role) < ROLES.index(least_role):
            return False
        return self.scopes is None or bool(self.scopes & granting_scopes)

    @property
    def rate_limit_key(self) -> str:
        """The user's, whichever token or key they call with: keys cost nothing to make, so a
        bucket per key would let a user upload as fast as they had keys."""
        return f"user:{self.user_id}"


ANONYMOUS = Principal(user_id="", organisation_id="", role="")


class Unauthenticated(Exception):
    pass


class NotAMember(Exception):
    """A valid token asked to act for an organisation its user does not belong to."""


class JwksCache:
    """The auth service's public keys, fetched on first use, after ``ttl`` and on an unknown kid."""

    def __init__(self, client: httpx.AsyncClient, ttl: float, refetch_interval: float) -> None:
        self._client = client
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        unknown = kid not in self._keys and now - self._fetched_at > self._refetch_interval
        if stale or unknown:
            await self._refresh(now)
        return self._keys.get(kid)

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            if self._fetched_at >= asked_at:
                return
            response = await self._client.get("/api/v1/auth/.well-known/jwks.json")
            response.raise_for_status()
            self._keys = {str(key["kid"]): key for key in response.json()["keys"] if "kid" in key}
            self._fetched_at = time.monotonic()
            log.info("jwks.fetched", kids=sorted(self._keys))


class Authenticator:
    def __init__(self, settings: GatewaySettings, auth_client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = auth_client
        self._jwks = JwksCache(auth_client, settings.jwks_cache_seconds, settings.jwks_refetch_seconds)
        self._internal_token = internal_token(settings.signing_secret.get_secret_value())

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        credential = _credential(connection)
        if credential is None:
            raise Unauthenticated("no credentials")
        if credential.startswith(API_KEY_MARK):
            return await self._api_key(credential)
        return self._switch_organisation(await self._access_token(credential), connection)

    async def _access_token(self, token: str) -> tuple[Principal, dict[str, str]]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthenticated(f"algorithm {header.get('alg')!r} refused")
            jwk = await self._jwks.key(str(header.get("kid")))
            if jwk is None:
                raise Unauthenticated("unknown signing key")
            claims = jwt.decode(
                token,
                PyJWK(jwk).key,
                algorithms=[ALGORITHM],
                audience=self._settings.auth_audience,
                issuer=self._settings.auth_issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise Unauthenticated(str(error)) from error
        if claims.get("typ") != "access":
            raise Unauthenticated("not an access token")
        memberships = {str(org): str(role) for org, role in dict(claims.get("orgs") or {}).items()}
        principal = Principal(
            str(claims["sub"]),
            str(claims["org"]),
            str(claims["role"]),
            platform_operator=claims.get("platform") is True,
        )
        return principal, memberships

    def _switch_organisation(
        self, verified: tuple[Principal, dict[str, str]], connection: HTTPConnection
    ) -> Principal:
        principal, memberships = verified
        wanted = connection.headers.get("x-organisation-id") or connection.query_params.get("organisation")
        if not wanted or wanted == principal.organisation_id:
            return principal
        role = memberships.get(wanted)
        if role is None:
            raise NotAMember(wanted)
        return Principal(principal.user_id, wanted, role, platform_operator=principal.platform_operator)

    async def _api_key(self, key: str) -> Principal:
        response = await self._client.post(
            "/internal/v1/api-keys/verify",
            json={"key": key},
            headers={INTERNAL_TOKEN_HEADER: self._internal_token},
        )
        if response.status_code in (401, 422):  # 422: no key could look like this one (e.g. too long)
            raise Unauthenticated("invalid API key")
        response.raise_for_status()
        body = response.json()
        return Principal(
            user_id=str(body["user_id"]),
            organisation_id=str(body["organisation_id"]),
            role=str(body["role"]),
            scopes=frozenset(body["scopes"]),
            api_key_id=str(body["key_id"]),
        )


def _credential(connection: HTTPConnection) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = connection.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    if connection.scope["type"] == "websocket":
        token = connection.query_params.get("access_token")
        if token and token.startswith(API_KEY_MARK):
            # A browser's socket can only carry its short-lived access token in the address, where
            # proxies and histories keep it; a key lives for months and goes in X-API-Key.
            raise Unauthenticated("an API key goes in the X-API-Key header, not in the address")
        return token
    return None


@dataclass
class Access:
    """What :func:`authorize` needs, kept on ``app.state.access``."""

    authenticator: Authenticator
    uploads: UploadBuckets
    uploads_in_progress: UserSlots
    """Uploads each user is sending to this replica (see :class:`AdmitUploadersFirst`)."""
    metrics_token: str | None = None
    """When set, ``/metrics`` answers only ``Authorization: Bearer <metrics_token>``."""
    metrics_without_token: bool = True
    """Whether ``/metrics`` answers anyone when no token is set (never in production: the public
    port must not show the metrics of every organisation)."""


def rule_for(connection: HTTPConnection) -> Permission | None:
    route = connection.scope.get("route")
    method = "WEBSOCKET" if connection.scope["type"] == "websocket" else connection.scope["method"]
    return ROUTE_RULES.get((method, getattr(route, "path", "")))


def _refuse(connection: HTTPConnection, status: int, code: str, detail: str, **extra: Any) -> Exception:
    if connection.scope["type"] == "websocket":
        return WebSocketException(WS_POLICY_VIOLATION, reason=code)
    return ApiError(status, code, detail, **extra)


async def authorize(connection: HTTPConnection) -> Principal:
    """The caller, once the route's rule admits them; raises 401, 403 or 429 otherwise."""
    rule = rule_for(connection)
    if rule is None:
        raise _refuse(connection, 403, "forbidden", "this route has no access rule")
    if rule == "upload" and ADMITTED_UPLOADER in connection.scope:
        admitted: Principal = connection.scope[ADMITTED_UPLOADER]
        return admitted
    return await admit(connection, rule)


async def admit(connection: HTTPConnection, rule: Permission) -> Principal:
    """The caller when ``rule`` admits them (see :func:`authorize`)."""
    if rule == "public":
        return ANONYMOUS
    access: Access = connection.app.state.access
    if rule == "metrics":
        return _metrics_scraper(connection, access)
    try:
        principal = await access.authenticator.authenticate(connection)
    except Unauthenticated as error:
        raise _refuse(
            connection, 401, "unauthenticated", f"sign in or present an API key ({error})"
        ) from None
    except NotAMember:
        raise _refuse(connection, 403, "not_a_member", "you are no member of that organisation") from None
    except httpx.HTTPError as error:
        log.warning("auth.unreachable", error=repr(error))
        raise _refuse(connection, 503, "auth_unavailable", "the auth service cannot be reached") from None
    if not principal.may(rule):
        raise _refuse(connection, 403, "forbidden", f"{rule} access needs another role or key scope")
    if rule == "upload":
        wait = await access.uploads.take(principal.rate_limit_key)
        if wait > 0:
            raise ApiError(
                429,
                "upload_rate_limited",
                "too many uploads; slow down",
                headers={"Retry-After": retry_after_header(wait)},
            )
    return principal


def _metrics_scraper(connection: HTTPConnection, access: Access) -> Principal:
    """Only who presents the metrics token; anyone when none is configured, outside production."""
    token = access.metrics_token
    if token is None:
        if access.metrics_without_token:
            return ANONYMOUS
        raise ApiError(404, "not_found", "metrics are served only with a metrics token in production")
    if hmac.compare_digest(connection.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
        return ANONYMOUS
    raise ApiError(401, "unauthenticated", "metrics need the metrics token: Authorization: Bearer <token>")


ADMITTED_UPLOADER = "chromaline.admitted_uploader"
UPLOAD_RETRY_AFTER_SECONDS = 5
"""Scope key: the caller :class:`AdmitUploadersFirst` admitted before the body was read."""


class AdmitUploadersFirst:
    """ASGI middleware admitting the caller of the upload routes from the headers alone.

    FastAPI reads a route's form body before it resolves the route's dependencies, so without this
    anyone could make the gateway spool a body of any size to disk before being told 401. A user
    sending ``max_uploads_in_progress_per_user`` uploads already is told 429 here too, before the
    body is read. An app whose ``authorize`` dependency is replaced (tests naming their callers) is
    left to the route.
    """

    def __init__(self, app: ASGIApp, *, routes: Iterable[tuple[str, str]]) -> None:
        self._app = app
        self._routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        replaced = authorize in getattr(scope.get("app"), "dependency_overrides", {})
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self._routes and not replaced:
            try:
                uploader = await admit(HTTPConnection(scope), "upload")
            except ApiError as refused:
                await _refusal(refused)(scope, receive, send)
                return
            scope[ADMITTED_UPLOADER] = uploader
            access: Access = scope["app"].state.access
            try:
                with access.uploads_in_progress.hold(uploader.user_id):
                    await self._app(scope, receive, send)
            except SlotsTaken:
                busy = ApiError(
                    429,
                    "too_many_uploads",
                    f"you are sending {access.uploads_in_progress.limit} uploads already; wait for one to finish",
                    headers={"Retry-After": str(UPLOAD_RETRY_AFTER_SECONDS), "Connection": "close"},
                )
                await _refusal(busy)(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _refusal(refused: ApiError) -> ASGIApp:
    return problem(refused.status, refused.code, refused.detail, headers=refused.headers, **refused.extra)


CurrentPrincipal = Annotated[Principal, Depends(authorize)]
