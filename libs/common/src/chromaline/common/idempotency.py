"""``Idempotency-Key`` on creating routes: a client that retries, not knowing whether its first
request went through, gets the first response instead of a second resource.

The key is scoped to the caller's organisation and remembered for :data:`KEY_LIFETIME` in the
service's ``idempotency_keys`` table, so every replica answers the same. A route:

1. reads the key and the request's fingerprint (:func:`from_request`, a digest of the method,
   the route and everything that shapes what is created: fields, options, file contents);
2. before doing anything costly, :func:`replay_if_known`: a remembered key with the same
   fingerprint raises :class:`StoredResponse` (answered as it was the first time), with another
   fingerprint it is a 422 ``idempotency_key_reused``;
3. in the transaction that creates the resource, :func:`remember` its response. Two requests
   racing with one key cannot both commit: the loser's insert conflicts, its transaction rolls
   back (nothing of it is created) and it answers 409 ``idempotency_key_in_use`` with
   ``Retry-After``; retried, it gets the winner's response.

Secrets a response shows once (an API key, a webhook's signing secret) are not stored: a replay
omits them (``redacted`` lists which) and says so in ``Idempotent-Replayed``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.problems import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
RETRY_IN_USE_SECONDS = 1


@functools.cache
def idempotency_table(schema: str | None) -> sa.Table:
    """The remembered keys of ``schema``; ``None`` leaves it to the connection's ``search_path``."""
    return sa.Table(
        "idempotency_keys",
        sa.MetaData(schema=schema),
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("redacted", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


class StoredResponse(Exception):
    """The response a remembered key was first answered with; raise it to answer it again."""

    def __init__(self, status: int, body: Any, redacted: list[str]) -> None:
        super().__init__(f"replayed response {status}")
        self.status = status
        self.body = body
        self.redacted = redacted

    def response(self) -> JSONResponse:
        headers = {REPLAYED_HEADER: "true"}
        if self.redacted:
            headers[REPLAYED_HEADER] = "true; redacted=" + ",".join(self.redacted)
        return JSONResponse(self.body, status_code=self.status, headers=headers)


@dataclass
class IdempotentRequest:
    """One request carrying an ``Idempotency-Key``: its scope, key and fingerprint."""

    scope: str
    key: str
    digest: Any = field(repr=False)

    def add(self, *parts: bytes | str | None) -> None:
        """Fold more of the request into the fingerprint (a streamed body, chunk by chunk)."""
        for part in parts:
            data = part.encode() if isinstance(part, str) else (part or b"")
            self.digest.update(len(data).to_bytes(8, "big"))
            self.digest.update(data)

    @property
    def fingerprint(self) -> str:
        return str(self.digest.hexdigest())


def from_request(request: Request, scope: str, *parts: bytes | str | None) -> IdempotentRequest | None:
    """The request's key and fingerprint (method, route path, ``parts``), or None without a key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            422, "invalid_idempotency_key", f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    route = request.scope.get("route")
    idempotent = IdempotentRequest(scope=scope, key=key, digest=hashlib.sha256())
    idempotent.add(request.method, getattr(route, "path", request.url.path), *parts)
    return idempotent


def json_part(value: Any) -> str:
    """A stable text of a JSON-like value (keys sorted), for a fingerprint."""
    return json.dumps(jsonable_encoder(value), sort_keys=True, separators=(",", ":"))


async def replay_if_known(session: AsyncSession, request: IdempotentRequest | None) -> None:
    """Raise the first response to this key (:class:`StoredResponse`), or a 422 when the key came
    with another request; return when the key is new or older than :data:`KEY_LIFETIME`."""
    if request is None:
        return
    table = idempotency_table(None)
    row = (
        await session.execute(
            sa.select(table.c.fingerprint, table.c.status, table.c.body, table.c.redacted).where(
                table.c.scope == request.scope,
                table.c.key == request.key,
                table.c.created_at > sa.func.now() - sa.literal(KEY_LIFETIME, sa.Interval),
            )
        )
    ).first()
    if row is None:
        return
    if row.fingerprint != request.fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {HEADER} was used for a different request in the last 24 hours",
        )
    raise StoredResponse(row.status, row.body, list(row.redacted))


async def remember(
    session: AsyncSession,
    request: IdempotentRequest | None,
    status: int,
    body: Any,
    *,
    redact: tuple[str, ...] = (),
) -> None:
    """Keep ``body`` as the answer to this key, in the caller's transaction (which creates the
    resource); a key another request holds raises 409, rolling that transaction back."""
    if request is None:
        return
    table = idempotency_table(None)
    stored = {name: value for name, value in jsonable_encoder(body).items() if name not in redact}
    values = {
        "fingerprint": request.fingerprint,
        "status": status,
        "body": stored,
        "redacted": [name for name in redact if name in body],
        "created_at": sa.func.now(),
    }
    statement = insert(table).values(scope=request.scope, key=request.key, **values)
    taken = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.scope, table.c.key],
            set_=values,
            where=table.c.created_at <= sa.func.now() - sa.literal(KEY_LIFETIME, sa.Interval),
        ).returning(table.c.key)
    )
    if taken.first() is None:
        raise ApiError(
            409,
            "idempotency_key_in_use",
            f"another request with this {HEADER} was answered or is in progress; retry to get its response",
            headers={"Retry-After": str(RETRY_IN_USE_SECONDS)},
        )
