"""The auth service on the real PostgreSQL, in a schema of the test's own, driven over HTTP in-process."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chromaline.auth.context import AuthContext
from chromaline.auth.service import SPEC, build_app
from chromaline.auth.settings import AuthSettings
from chromaline.common.runtime import ServiceRuntime

PASSWORD = "correct horse battery"


@dataclass
class AuthService:
    client: httpx.AsyncClient
    runtime: ServiceRuntime
    settings: AuthSettings
    context: AuthContext

    async def register(self, email: str | None = None, organisation: str = "Studio") -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/register",
            json={
                "email": email or f"{uuid.uuid4().hex[:10]}@example.org",
                "password": PASSWORD,
                "display_name": "Someone",
                "organisation_name": organisation,
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def settings_for_tests(postgres_url: str, tmp_path: Path, **overrides: Any) -> AuthSettings:
    return AuthSettings(
        environment="test",
        signing_secret=SecretStr("auth-tests-signing-secret-1f3a"),
        database_url=postgres_url,
        blob_url=f"file://{tmp_path / 'blobs'}",
        bus_url=f"memory://auth-{uuid.uuid4().hex[:8]}",
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        argon2_parallelism=1,
        **overrides,
    )


@pytest.fixture
def auth_overrides() -> dict[str, Any]:
    """Settings a test module wants changed; override this fixture."""
    return {}


@pytest.fixture
async def auth_service(
    postgres_url: str, db_schema: str, tmp_path: Path, auth_overrides: dict[str, Any]
) -> AsyncIterator[AuthService]:
    settings = settings_for_tests(postgres_url, tmp_path, **auth_overrides)
    runtime = ServiceRuntime(dataclasses.replace(SPEC, name=db_schema), settings)
    await runtime.start()
    app = build_app(runtime, settings)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
            yield AuthService(client, runtime, settings, AuthContext.from_settings(settings))
    finally:
        await runtime.stop()
