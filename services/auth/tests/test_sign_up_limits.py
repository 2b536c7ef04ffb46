"""Sign-up is throttled per client address: anyone may register, but not without end."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import PASSWORD, AuthService

pytestmark = pytest.mark.integration


@pytest.fixture
def auth_overrides() -> dict[str, Any]:
    return {"sign_up_max_per_address": 3}


async def sign_up(auth: AuthService, address: str) -> httpx.Response:
    return await auth.client.post(
        "/api/v1/auth/register",
        json={
            "email": f"{uuid.uuid4().hex[:10]}@example.org",
            "password": PASSWORD,
            "display_name": "Someone",
            "organisation_name": "Studio",
        },
        headers={"X-Forwarded-For": address},
    )


async def test_one_address_makes_a_bounded_number_of_accounts(auth_service: AuthService) -> None:
    made = [(await sign_up(auth_service, "198.51.100.30")).status_code for _ in range(3)]
    assert made == [201, 201, 201]
    held = await sign_up(auth_service, "198.51.100.30")
    assert (held.status_code, held.json()["code"]) == (429, "too_many_sign_ups")
    window = auth_service.settings.sign_up_throttle_window_seconds
    assert 0 < int(held.headers["Retry-After"]) <= window
    assert (await sign_up(auth_service, "198.51.100.31")).status_code == 201, "another address is not held"


async def test_a_refused_sign_up_does_not_count(auth_service: AuthService) -> None:
    taken = (await sign_up(auth_service, "198.51.100.40")).json()["user"]["email"]
    for _ in range(4):
        again = await auth_service.client.post(
            "/api/v1/auth/register",
            json={"email": taken, "password": PASSWORD, "display_name": "Twin", "organisation_name": "Other"},
            headers={"X-Forwarded-For": "198.51.100.40"},
        )
        assert again.status_code == 409
    assert (await sign_up(auth_service, "198.51.100.40")).status_code == 201
