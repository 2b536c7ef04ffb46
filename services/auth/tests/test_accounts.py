"""Registration, sign-in, refresh-token families, sign-out, password change and reset, throttling."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from chromaline.common.outbox import outbox_table

from .conftest import PASSWORD, AuthService

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(auth: AuthService, email: str, password: str = PASSWORD, **headers: str) -> Any:
    return await auth.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def test_a_new_user_is_the_admin_of_a_new_organisation(auth_service: AuthService) -> None:
    registered = await auth_service.register(organisation="Acme Studio")
    assert registered["token_type"] == "bearer"
    assert 0 < registered["expires_in"] <= 3600
    me = await auth_service.client.get("/api/v1/auth/me", headers=bearer(registered["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["memberships"] == [
        {
            "organisation_id": registered["organisation"]["id"],
            "organisation_name": "Acme Studio",
            "role": "admin",
        }
    ]
    again = await auth_service.client.post(
        "/api/v1/auth/register",
        json={
            "email": registered["user"]["email"].upper(),
            "password": PASSWORD,
            "display_name": "Twin",
            "organisation_name": "Other",
        },
    )
    assert again.status_code == 409


async def test_one_email_registered_at_once_several_times_makes_one_account(
    auth_service: AuthService,
) -> None:
    body = {
        "email": "twice@example.org",
        "password": PASSWORD,
        "display_name": "Twin",
        "organisation_name": "Race",
    }
    answers = await asyncio.gather(
        *(auth_service.client.post("/api/v1/auth/register", json=body) for _ in range(4))
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409], [a.text for a in answers]
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"email_taken"}


async def test_sign_in_checks_the_password(auth_service: AuthService) -> None:
    email = (await auth_service.register())["user"]["email"]
    assert (await login(auth_service, email)).status_code == 200
    wrong = await login(auth_service, email, "not the password")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"
    unknown = await login(auth_service, "nobody@example.org")
    assert unknown.status_code == 401


async def test_a_refresh_token_works_once_and_its_reuse_revokes_the_family(auth_service: AuthService) -> None:
    first = (await auth_service.register())["refresh_token"]
    rotated = await auth_service.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    reused = await auth_service.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    assert reused.json()["code"] == "refresh_token_reused"
    after = await auth_service.client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_refresh_token"


async def test_sign_out_revokes_the_refresh_token(auth_service: AuthService) -> None:
    token = (await auth_service.register())["refresh_token"]
    out = await auth_service.client.post("/api/v1/auth/logout", json={"refresh_token": token})
    assert out.status_code == 204
    refused = await auth_service.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert refused.status_code == 401


async def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(
    auth_service: AuthService,
) -> None:
    registered = await auth_service.register()
    email = registered["user"]["email"]
    headers = bearer(registered["access_token"])
    wrong = await auth_service.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": "wrong password", "new_password": "a brand new secret"},
        headers=headers,
    )
    assert wrong.status_code == 401
    changed = await auth_service.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=headers,
    )
    assert changed.status_code == 204
    refresh = await auth_service.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert (await login(auth_service, email)).status_code == 401
    assert (await login(auth_service, email, "a brand new secret")).status_code == 200


async def _reset_links(auth: AuthService) -> list[str]:
    table = outbox_table(auth.runtime.name)
    async with auth.runtime.session() as session:
        rows = (
            await session.execute(
                sa.select(table.c.payload)
                .where(table.c.routing_key == "user.password_reset_requested")
                .order_by(table.c.id)
            )
        ).scalars()
        return [str(row["data"]["reset_url"]) for row in rows]


async def _reset_link(auth: AuthService) -> str:
    links = await _reset_links(auth)
    assert len(links) == 1
    return links[0]


def _token_of(link: str) -> str:
    return parse_qs(urlsplit(urlsplit(link).fragment).query)["token"][0]


async def test_a_password_reset_token_works_once(auth_service: AuthService) -> None:
    email = (await auth_service.register())["user"]["email"]
    unknown = await auth_service.client.post(
        "/api/v1/auth/password/reset-request", json={"email": "nobody@example.org"}
    )
    assert unknown.status_code == 202
    known = await auth_service.client.post("/api/v1/auth/password/reset-request", json={"email": email})
    assert known.status_code == 202
    link = await _reset_link(auth_service)
    assert link.startswith(f"{auth_service.settings.public_base_url}/#/reset?token=")
    token = _token_of(link)
    reset = await auth_service.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "reset to this one"}
    )
    assert reset.status_code == 204
    again = await auth_service.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "and then this one"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_reset_token"
    assert (await login(auth_service, email, "reset to this one")).status_code == 200


@pytest.fixture
def auth_overrides() -> dict[str, Any]:
    return {"throttle_max_failures_per_account": 3, "throttle_max_failures_per_address": 5}


async def test_sign_in_is_throttled_per_account_and_per_address(auth_service: AuthService) -> None:
    email = (await auth_service.register())["user"]["email"]
    for _ in range(3):
        assert (await login(auth_service, email, "wrong password")).status_code == 401
    held = await login(auth_service, email)
    assert held.status_code == 429
    assert held.json()["code"] == "too_many_attempts"
    assert 0 < int(held.headers["Retry-After"]) <= auth_service.settings.throttle_window_seconds
    elsewhere = await login(auth_service, email, **{"X-Forwarded-For": "198.51.100.9"})
    assert elsewhere.status_code == 429, "the account is held back whatever the address"

    other = (await auth_service.register())["user"]["email"]
    for _ in range(2):
        await login(auth_service, other, "wrong password")
    from_address = await login(auth_service, other)
    assert from_address.status_code == 429, "the address made five failures"
    other_address = await login(auth_service, other, **{"X-Forwarded-For": "198.51.100.10"})
    assert other_address.status_code == 200


async def test_password_reset_requests_are_throttled(auth_service: AuthService) -> None:
    settings = auth_service.settings
    email = (await auth_service.register())["user"]["email"]

    async def ask(address: str) -> httpx.Response:
        return await auth_service.client.post("/api/v1/auth/password/reset-request", json={"email": address})

    per_account = [(await ask(email)).status_code for _ in range(settings.reset_max_per_account + 2)]
    assert per_account == [202] * len(per_account), "the answer never tells whether the account exists"
    table = outbox_table(auth_service.runtime.name)
    async with auth_service.runtime.session() as session:
        sent = await session.scalar(
            sa.select(sa.func.count()).where(table.c.routing_key == "user.password_reset_requested")
        )
    assert sent == settings.reset_max_per_account
    left = settings.reset_max_per_address - len(per_account)
    assert [(await ask(f"nobody-{n}@example.org")).status_code for n in range(left)] == [202] * left
    held = await ask("one-more@example.org")
    assert (held.status_code, held.json()["code"]) == (429, "too_many_reset_requests")
    assert int(held.headers["Retry-After"]) > 0


async def test_guessing_the_current_password_is_throttled_like_sign_in(auth_service: AuthService) -> None:
    registered = await auth_service.register()
    headers = bearer(registered["access_token"])

    async def change(current: str) -> httpx.Response:
        return await auth_service.client.post(
            "/api/v1/auth/password/change",
            json={"current_password": current, "new_password": "a new long password"},
            headers={**headers, "X-Forwarded-For": "198.51.100.20"},
        )

    assert [(await change(f"guess {n}")).status_code for n in range(3)] == [401] * 3
    held = await change(PASSWORD)
    assert (held.status_code, held.json()["code"]) == (429, "too_many_attempts")
    assert 0 < int(held.headers["Retry-After"]) <= auth_service.settings.throttle_window_seconds
    assert (await login(auth_service, registered["user"]["email"])).status_code == 429


async def test_a_new_password_spends_every_reset_link_sent_before(auth_service: AuthService) -> None:
    email = (await auth_service.register())["user"]["email"]

    async def ask() -> str:
        asked = await auth_service.client.post("/api/v1/auth/password/reset-request", json={"email": email})
        assert asked.status_code == 202
        return _token_of((await _reset_links(auth_service))[-1])

    async def reset(token: str) -> httpx.Response:
        return await auth_service.client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": "an attacker's choice"}
        )

    first = await ask()
    second = await ask()
    assert (await reset(second)).status_code == 204
    assert (await reset(first)).json()["code"] == "invalid_reset_token"

    third = await ask()
    signed_in = (await login(auth_service, email, "an attacker's choice")).json()
    changed = await auth_service.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": "an attacker's choice", "new_password": "changed to this one"},
        headers=bearer(signed_in["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    assert (await reset(third)).json()["code"] == "invalid_reset_token"


async def test_an_email_that_only_looks_like_a_registered_one_is_refused(auth_service: AuthService) -> None:
    await auth_service.register("jos\u00e9@example.org")

    async def register(email: str) -> httpx.Response:
        return await auth_service.client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": "Twin", "organisation_name": "Other"},
        )

    decomposed = await register("jose\u0301@example.org")
    invisible = await register("jos\u00e9\u200b@example.org")
    assert (decomposed.status_code, decomposed.json()["code"]) == (409, "email_taken")
    assert (invisible.status_code, invisible.json()["code"]) == (422, "invalid_request")
    assert (await login(auth_service, "jose\u0301@example.org")).status_code == 200


async def test_sign_in_opens_the_organisation_the_user_joined_first(auth_service: AuthService) -> None:
    """Any admin may add a registered user to their organisation. Sign-in opened the organisation
    whose id sorted first, so an admin who added someone to an organisation of a lower id made
    them work there, uploading into the admin's organisation, after their next sign-in."""
    first, second = [await auth_service.register(organisation="Own studio") for _ in range(2)]
    intruder, victim = sorted((first, second), key=lambda account: account["organisation"]["id"])
    own = victim["organisation"]["id"]
    added = await auth_service.client.post(
        f"/api/v1/auth/organisations/{intruder['organisation']['id']}/members",
        json={"email": victim["user"]["email"], "role": "member"},
        headers=bearer(intruder["access_token"]),
    )
    assert added.status_code == 201, added.text
    signed_in = await login(auth_service, victim["user"]["email"])
    me = await auth_service.client.get("/api/v1/auth/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["organisation_id"] == own


async def test_password_reset_requests_made_at_once_are_throttled_alike(auth_service: AuthService) -> None:
    """Requests were counted before any of them was recorded, so a burst sent at once passed every
    limit: as many reset links as requests went to one mailbox."""
    settings = auth_service.settings
    email = (await auth_service.register())["user"]["email"]
    answers = await asyncio.gather(
        *(
            auth_service.client.post("/api/v1/auth/password/reset-request", json={"email": email})
            for _ in range(settings.reset_max_per_address + 5)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] * settings.reset_max_per_address + [429] * 5
    table = outbox_table(auth_service.runtime.name)
    async with auth_service.runtime.session() as session:
        sent = await session.scalar(
            sa.select(sa.func.count()).where(table.c.routing_key == "user.password_reset_requested")
        )
    assert sent == settings.reset_max_per_account


async def test_password_guesses_sent_at_once_are_throttled_alike(auth_service: AuthService) -> None:
    """Every guess was checked against the failures recorded before it, and a burst sent at once
    recorded none before all were checked: one burst made as many guesses as it held."""
    email = (await auth_service.register())["user"]["email"]
    guesses = await asyncio.gather(
        *(
            login(auth_service, email, f"guess {n}", **{"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(8)
        )
    )
    statuses = sorted(guess.status_code for guess in guesses)
    limit = auth_service.settings.throttle_max_failures_per_account
    assert statuses == [401] * limit + [429] * (len(guesses) - limit)


@pytest.mark.parametrize("field", ["display_name", "organisation_name"])
@pytest.mark.parametrize("trick", ["\u202e", "\u200b", "\x1b[2J", "\n"])
async def test_a_name_with_control_or_invisible_characters_is_refused(
    auth_service: AuthService, field: str, trick: str
) -> None:
    """An organisation named "Studio" with a direction override or a zero-width space looks like
    the one it imitates in the list of a user its admin added."""
    body = {
        "email": "someone-new@example.org",
        "password": PASSWORD,
        "display_name": "Someone",
        "organisation_name": "Studio",
    }
    refused = await auth_service.client.post("/api/v1/auth/register", json={**body, field: f"Stu{trick}dio"})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")


async def test_checking_a_password_does_not_stall_other_requests(
    auth_service: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 ran on the event loop: every sign-in (a known account or not) held up every other
    request of the auth service, the gateway's API-key checks among them, for as long as it hashed."""
    email = (await auth_service.register())["user"]["email"]
    answered = threading.Event()
    held: list[bool] = []
    verify = PasswordHasher.verify

    def slow_verify(hasher: PasswordHasher, hashed: str | bytes, password: str | bytes) -> Literal[True]:
        held.append(answered.wait(timeout=10))
        return verify(hasher, hashed, password)

    monkeypatch.setattr(PasswordHasher, "verify", slow_verify)
    signing_in = asyncio.create_task(login(auth_service, email))
    await asyncio.sleep(0.2)
    keys = await auth_service.client.get("/api/v1/auth/.well-known/jwks.json")
    answered.set()
    signed_in = await signing_in
    assert keys.status_code == 200
    assert signed_in.status_code == 200
    assert held == [True], "another request was answered while the password was being checked"


async def test_guesses_from_one_address_sent_at_once_are_throttled_alike(auth_service: AuthService) -> None:
    """One address guessing at many accounts at once (credential stuffing) passed the per-address
    limit as the per-account one: every guess was checked before any was recorded."""
    emails = [(await auth_service.register())["user"]["email"] for _ in range(8)]
    guesses = await asyncio.gather(
        *(
            login(auth_service, email, "a stuffed password", **{"X-Forwarded-For": "198.51.100.77"})
            for email in emails
        )
    )
    limit = auth_service.settings.throttle_max_failures_per_address
    assert sorted(guess.status_code for guess in guesses) == [401] * limit + [429] * (len(guesses) - limit)
