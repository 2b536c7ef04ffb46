"""Every error a service answers is a problem document: its own, a dependency's outage (503 with
Retry-After) or one nobody expected (500 with a code and the correlation id, no traceback)."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from aiormq.exceptions import AMQPConnectionError
from fastapi import FastAPI

from chromaline.common.http import create_app
from chromaline.common.outages import DependencyUnavailableError
from chromaline.common.problems import ApiError

FAILURES: dict[str, BaseException] = {
    "bug": ZeroDivisionError("division by zero in secret_function"),
    "database": sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused")),
    "database-restart": sqlalchemy.exc.DBAPIError("SELECT", {}, asyncpg.AdminShutdownError("shutting down")),
    "bus": AMQPConnectionError("connection lost"),
    "blobs": DependencyUnavailableError("blobs"),
    "own": ApiError(409, "conflict_of_ours", "already done"),
}


def _app() -> FastAPI:
    app = create_app("probe", readiness={})

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise FAILURES[kind]

    return app


async def _get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        return await client.get(path, headers=headers)


async def test_an_unexpected_error_is_a_500_problem_with_the_correlation_id_and_no_traceback() -> None:
    response = await _get("/fail/bug", {"X-Correlation-ID": "corr-123"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["correlation_id"]) == ("internal_error", "corr-123")
    assert response.headers["X-Correlation-ID"] == "corr-123"
    assert "secret_function" not in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("kind", "dependency"),
    [("database", "database"), ("database-restart", "database"), ("bus", "bus"), ("blobs", "blobs")],
)
async def test_a_dependency_outage_is_a_503_with_retry_after(kind: str, dependency: str) -> None:
    response = await _get(f"/fail/{kind}")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert (body["code"], body["dependency"]) == ("dependency_unavailable", dependency)
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_errors_of_our_own_and_unknown_routes_keep_their_problems() -> None:
    own = await _get("/fail/own")
    assert (own.status_code, own.json()["code"]) == (409, "conflict_of_ours")
    missing = await _get("/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("given", [b"x" * 65, b"a b", b"<script>", b"id\xe9", b""])
async def test_a_correlation_id_that_is_not_a_plain_token_is_replaced_not_echoed(given: bytes) -> None:
    """Any header value was written into every log line of the request and sent back as it came."""
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        response = await client.get("/fail/bug", headers=[(b"X-Correlation-ID", given)])
    echoed = response.headers["X-Correlation-ID"]
    assert re.fullmatch("[0-9a-f]{32}", echoed), echoed
    assert response.json()["correlation_id"] == echoed
