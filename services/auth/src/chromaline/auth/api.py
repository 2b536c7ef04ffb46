"""The auth HTTP API under ``/api/v1/auth`` (reached through the gateway), and the internal
API-key check under ``/internal/v1`` (reached by the gateway only)."""

# No ``from __future__ import annotations``: FastAPI must see the dependencies defined inside
# build_router when it reads the endpoints' annotations.
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AfterValidator, Field, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth import accounts, api_keys, audit, members, platform, resets, retention
from chromaline.auth.access_tokens import InvalidAccessToken, verify_access_token
from chromaline.auth.context import AuthContext
from chromaline.auth.models import User
from chromaline.auth.signing_keys import published_keys
from chromaline.auth.throttle import Throttled
from chromaline.common import idempotency
from chromaline.common.client_models import ClientModel
from chromaline.common.idempotency import json_part
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.visible_text import hides_characters

Role = Literal["admin", "operator", "member", "viewer"]
Scope = Literal["read", "upload", "admin"]
INTERNAL_TOKEN_HEADER = "X-Internal-Token"


def internal_token(secret: str) -> str:
    """What the gateway presents to the internal API: derived from the shared signing secret."""
    return hmac.new(secret.encode(), b"chromaline-internal-api", hashlib.sha256).hexdigest()


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _visible(text: str) -> str:
    if hides_characters(text):
        raise ValueError("no control or invisible characters are allowed")
    return text


VisibleText = Annotated[str, AfterValidator(_visible)]
"""Text with no control or invisible characters (zero-width spaces, direction overrides): an
address, a name, an organisation or an API key that only looks like another's would be taken for
it, when members are added by email, an organisation is picked from a list or a key is revoked."""


class Registration(ClientModel):
    email: VisibleText = Field(max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(max_length=1024)
    display_name: VisibleText = Field(min_length=1, max_length=120)
    organisation_name: VisibleText = Field(min_length=1, max_length=120)


class Credentials(ClientModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class RefreshRequest(ClientModel):
    refresh_token: str = Field(max_length=256)


class PasswordChange(ClientModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class ResetRequest(ClientModel):
    email: str = Field(max_length=320)


class PasswordReset(ClientModel):
    token: str = Field(max_length=256)
    new_password: str = Field(max_length=1024)


class NewMember(ClientModel):
    email: str = Field(max_length=320)
    role: Role


class RoleChange(ClientModel):
    role: Role


class RetentionChange(ClientModel):
    days: StrictInt | None = Field(
        description="Days a job's files are kept after it ends (1 to 3650); null: the deployment's default."
    )


class NewApiKey(ClientModel):
    name: VisibleText = Field(min_length=1, max_length=120)
    scopes: list[Scope] = Field(min_length=1)
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        description="Days until the key expires, at most the deployment's maximum (365 by default; "
        "more answers 422); null: that maximum. No key lives for ever.",
    )


class NewPlatformOperator(ClientModel):
    email: str = Field(max_length=320)


class KeyCheck(ClientModel):
    key: str = Field(max_length=256)


MAX_AUDIT_PAGE = 100_000
"""Past this page the offset would overflow the database's integers long before any log is that long."""


def _in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one taken as UTC); 422 when that falls outside the years 1 to 9999."""
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ApiError(422, "invalid_since", "since falls outside the years 1 to 9999 in UTC") from None


def _held_back(verdict: Throttled) -> ApiError:
    return verdict.refusal(
        "too_many_attempts", f"too many failed sign-ins for this {verdict.by}; try again later"
    )


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str


def build_router(runtime: ServiceRuntime, context: AuthContext) -> APIRouter:
    settings = context.settings
    router = APIRouter()

    def client_address(request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-for") if settings.trust_forwarded_for else None
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
        return request.client.host if request.client else "unknown"

    def session() -> AsyncSession:
        return runtime.session()

    async def caller(
        request: Request, organisation: Annotated[str | None, Header(alias="X-Organisation-ID")] = None
    ) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "sign in first: Authorization: Bearer <access token>")
        async with session() as db:
            keys = await published_keys(db)
        try:
            grant = verify_access_token(token, keys, settings)
        except InvalidAccessToken:
            raise ApiError(401, "invalid_token", "the access token is invalid or expired") from None
        if organisation is None or organisation == str(grant.organisation_id):
            return Caller(grant.user_id, grant.organisation_id, grant.role)
        role = grant.memberships.get(organisation)
        if role is None:
            raise ApiError(403, "not_a_member", "the token's user is no member of that organisation")
        return Caller(grant.user_id, uuid.UUID(organisation), role)

    CallerDep = Annotated[Caller, Depends(caller)]
    auth = APIRouter(prefix="/api/v1/auth")

    @auth.post("/register", status_code=201)
    async def register(body: Registration, request: Request) -> dict[str, Any]:
        async with session() as db, db.begin():
            user, organisation, tokens = await accounts.register(
                db,
                context,
                email=body.email,
                password=body.password,
                display_name=body.display_name,
                organisation_name=body.organisation_name,
                client_address=client_address(request),
            )
        return {
            "user": {"id": str(user.id), "email": user.email, "display_name": user.display_name},
            "organisation": {"id": str(organisation.id), "name": organisation.name},
            **tokens.view(),
        }

    @auth.post("/login")
    async def login(body: Credentials, request: Request) -> dict[str, Any]:
        async with session() as db, db.begin():
            outcome = await accounts.sign_in(db, context, body.email, body.password, client_address(request))
        if isinstance(outcome, Throttled):
            raise _held_back(outcome)
        if outcome is None:
            raise ApiError(401, "invalid_credentials", "wrong email or password")
        return outcome.view()

    @auth.post("/refresh")
    async def refresh(body: RefreshRequest, request: Request) -> dict[str, Any]:
        async with session() as db, db.begin():
            outcome = await accounts.refresh(db, context, body.refresh_token, client_address(request))
        if isinstance(outcome, str):
            detail = (
                "this refresh token was already used; every session of its family is revoked"
                if outcome == "refresh_token_reused"
                else "the refresh token is invalid, expired or revoked"
            )
            raise ApiError(401, outcome, detail)
        return outcome.view()

    @auth.post("/logout", status_code=204)
    async def logout(body: RefreshRequest, request: Request) -> Response:
        async with session() as db, db.begin():
            await accounts.sign_out(db, context, body.refresh_token, client_address(request))
        return Response(status_code=204)

    @auth.post("/password/change", status_code=204)
    async def change_password(body: PasswordChange, who: CallerDep, request: Request) -> Response:
        async with session() as db, db.begin():
            changed = await accounts.change_password(
                db, context, who.user_id, body.current_password, body.new_password, client_address(request)
            )
        if isinstance(changed, Throttled):
            raise _held_back(changed)
        if not changed:
            raise ApiError(401, "invalid_credentials", "the current password is wrong")
        return Response(status_code=204)

    @auth.post("/password/reset-request", status_code=202)
    async def reset_request(body: ResetRequest, request: Request) -> dict[str, str]:
        async with session() as db, db.begin():
            throttled = await resets.request_reset(db, context, body.email, client_address(request))
        if throttled is not None:
            raise throttled.refusal(
                "too_many_reset_requests",
                "too many password reset requests from this address; try again later",
            )
        return {"status": "accepted"}

    @auth.post("/password/reset", status_code=204)
    async def reset(body: PasswordReset, request: Request) -> Response:
        async with session() as db, db.begin():
            done = await resets.reset_password(
                db, context, body.token, body.new_password, client_address(request)
            )
        if not done:
            raise ApiError(400, "invalid_reset_token", "the reset link is invalid, used or expired")
        return Response(status_code=204)

    @auth.get("/me")
    async def me(who: CallerDep) -> dict[str, Any]:
        async with session() as db:
            user = await db.get(User, who.user_id)
            if user is None:
                raise ApiError(401, "invalid_token", "the account no longer exists")
            memberships = await members.memberships_view(db, who.user_id)
        return {
            "user": {"id": str(user.id), "email": user.email, "display_name": user.display_name},
            "organisation_id": str(who.organisation_id),
            "role": who.role,
            "memberships": memberships,
            "platform_operator": user.platform_operator,
        }

    @auth.post("/platform/operators", status_code=201)
    async def grant_platform_operator(
        body: NewPlatformOperator, who: CallerDep, request: Request
    ) -> dict[str, Any]:
        async with session() as db, db.begin():
            await platform.require_platform_operator(db, who.user_id)
            user = await platform.set_platform_operator(
                db,
                await accounts.user_by_email(db, body.email),
                True,
                actor_id=who.user_id,
                client_address=client_address(request),
            )
        return {"user_id": str(user.id), "email": user.email, "platform_operator": True}

    @auth.delete("/platform/operators/{user_id}", status_code=204)
    async def revoke_platform_operator(user_id: uuid.UUID, who: CallerDep, request: Request) -> Response:
        async with session() as db, db.begin():
            await platform.require_platform_operator(db, who.user_id)
            await platform.set_platform_operator(
                db,
                await db.get(User, user_id, with_for_update=True),
                False,
                actor_id=who.user_id,
                client_address=client_address(request),
            )
        return Response(status_code=204)

    @auth.get("/organisations/{organisation_id}/members")
    async def list_members(organisation_id: uuid.UUID, who: CallerDep) -> dict[str, Any]:
        async with session() as db:
            if await members.role_in(db, who.user_id, organisation_id) is None:
                raise ApiError(404, "organisation_not_found", f"no organisation {organisation_id}")
            return {"items": await members.list_members(db, organisation_id)}

    @auth.post("/organisations/{organisation_id}/members", status_code=201)
    async def add_member(
        organisation_id: uuid.UUID, body: NewMember, who: CallerDep, request: Request
    ) -> dict[str, Any]:
        async with session() as db, db.begin():
            await members.require_admin(db, who.user_id, organisation_id)
            return await members.add_member(
                db, organisation_id, body.email, body.role, who.user_id, client_address(request)
            )

    @auth.patch("/organisations/{organisation_id}/members/{user_id}")
    async def change_role(
        organisation_id: uuid.UUID, user_id: uuid.UUID, body: RoleChange, who: CallerDep, request: Request
    ) -> dict[str, Any]:
        async with session() as db, db.begin():
            await members.require_admin(db, who.user_id, organisation_id)
            await members.change_role(
                db, organisation_id, user_id, body.role, who.user_id, client_address(request)
            )
        return {"user_id": str(user_id), "role": body.role}

    @auth.delete("/organisations/{organisation_id}/members/{user_id}", status_code=204)
    async def remove_member(
        organisation_id: uuid.UUID, user_id: uuid.UUID, who: CallerDep, request: Request
    ) -> Response:
        async with session() as db, db.begin():
            await members.require_admin(db, who.user_id, organisation_id)
            await members.remove_member(db, organisation_id, user_id, who.user_id, client_address(request))
        return Response(status_code=204)

    @auth.get("/organisations/{organisation_id}/retention")
    async def get_retention(organisation_id: uuid.UUID, who: CallerDep) -> dict[str, Any]:
        async with session() as db:
            if await members.role_in(db, who.user_id, organisation_id) is None:
                raise ApiError(404, "organisation_not_found", f"no organisation {organisation_id}")
            return await retention.organisation_retention(
                db, organisation_id, settings.retention_default_days
            )

    @auth.put("/organisations/{organisation_id}/retention")
    async def set_retention(
        organisation_id: uuid.UUID, body: RetentionChange, who: CallerDep, request: Request
    ) -> dict[str, Any]:
        async with session() as db, db.begin():
            await members.require_admin(db, who.user_id, organisation_id)
            return await retention.change_retention(
                db,
                context,
                organisation_id,
                body.days,
                actor_id=who.user_id,
                client_address=client_address(request),
            )

    @auth.get("/api-keys")
    async def list_keys(who: CallerDep) -> dict[str, Any]:
        async with session() as db:
            keys = await api_keys.list_for(db, who.user_id, who.organisation_id)
        return {
            "items": [api_keys.key_view(key) for key in keys],
            "max_expires_in_days": settings.api_key_days_max,
        }

    @auth.post("/api-keys", status_code=201)
    async def create_key(body: NewApiKey, who: CallerDep, request: Request) -> dict[str, Any]:
        # per user: a key is its user's, so another member's request with the same key is another request
        idempotent = idempotency.from_request(
            request, f"{who.organisation_id}/{who.user_id}", json_part(body)
        )
        async with session() as db:
            await idempotency.replay_if_known(db, idempotent)
        days = body.expires_in_days or settings.api_key_days_max
        if days > settings.api_key_days_max:
            raise ApiError(
                422,
                "expiry_too_long",
                f"an API key lives at most {settings.api_key_days_max} days",
                max_days=settings.api_key_days_max,
            )
        now = context.clock()
        async with session() as db, db.begin():
            key, clear = await api_keys.create(
                db,
                user_id=who.user_id,
                organisation_id=who.organisation_id,
                name=body.name,
                scopes=list(body.scopes),
                expires_at=now + timedelta(days=days),
                now=now,
                client_address=client_address(request),
            )
            await db.flush()
            view = {**api_keys.key_view(key), "key": clear}
            await idempotency.remember(db, idempotent, 201, view, redact=("key",))
        return view

    @auth.delete("/api-keys/{key_id}", status_code=204)
    async def revoke_key(key_id: uuid.UUID, who: CallerDep, request: Request) -> Response:
        async with session() as db, db.begin():
            revoked = await api_keys.revoke(
                db,
                key_id,
                actor_id=who.user_id,
                organisation_id=who.organisation_id,
                actor_is_admin=who.role == "admin",
                now=context.clock(),
                client_address=client_address(request),
            )
        if not revoked:
            raise ApiError(404, "api_key_not_found", f"no API key {key_id}")
        return Response(status_code=204)

    @auth.get("/audit")
    async def audit_log(
        who: CallerDep,
        action: Annotated[str | None, Query(max_length=64)] = None,
        user_id: uuid.UUID | None = None,
        since: datetime | None = None,
        page: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        if who.role != "admin":
            raise ApiError(403, "forbidden", "only an admin may read the audit log")
        since = _in_utc(since) if since is not None else None
        query = audit.AuditQuery(who.organisation_id, action, user_id, since, page, page_size)
        async with session() as db:
            total, entries = await audit.search(db, query)
        return {
            "items": [
                {
                    "id": entry.id,
                    "occurred_at": entry.occurred_at.isoformat(),
                    "action": entry.action,
                    "user_id": str(entry.user_id) if entry.user_id else None,
                    "organisation_id": str(entry.organisation_id) if entry.organisation_id else None,
                    "actor_id": str(entry.actor_id) if entry.actor_id else None,
                    "client_address": entry.client_address,
                    "details": entry.details,
                }
                for entry in entries
            ],
            "page": page,
            "page_size": page_size,
            "total": total,
        }

    @auth.get("/.well-known/jwks.json")
    async def jwks(response: Response) -> dict[str, Any]:
        async with session() as db:
            keys = await published_keys(db)
        response.headers["Cache-Control"] = "public, max-age=300"
        return {"keys": keys}

    internal = APIRouter(prefix="/internal/v1", include_in_schema=False)
    expected_internal_token = internal_token(settings.signing_secret.get_secret_value())

    @internal.post("/api-keys/verify")
    async def verify_key(
        body: KeyCheck, token: Annotated[str, Header(alias=INTERNAL_TOKEN_HEADER)] = ""
    ) -> dict[str, Any]:
        if not hmac.compare_digest(token, expected_internal_token):
            raise ApiError(403, "forbidden", "internal API")
        async with session() as db, db.begin():
            verified = await api_keys.verify(db, body.key, context.clock())
        if verified is None:
            raise ApiError(401, "invalid_api_key", "the API key is invalid, expired or revoked")
        return verified.view()

    router.include_router(auth)
    router.include_router(internal)
    return router
