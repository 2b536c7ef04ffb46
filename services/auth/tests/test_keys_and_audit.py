"""Signing-key rotation, API keys, members and roles, and the append-only audit log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from chromaline.auth import api_keys, members
from chromaline.auth.access_tokens import verify_access_token
from chromaline.auth.api import INTERNAL_TOKEN_HEADER, internal_token
from chromaline.auth.models import ApiKey, AuditEntry, Membership, SigningKey
from chromaline.auth.signing_keys import CLOCK_SKEW, published_keys, rotate_signing_keys
from chromaline.common.problems import ApiError

from .conftest import PASSWORD, AuthService

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rotation_keeps_old_tokens_valid_until_they_expire(auth_service: AuthService) -> None:
    old_token = (await auth_service.register())["access_token"]
    now = auth_service.context.clock()
    async with auth_service.runtime.session() as session, session.begin():
        made = await rotate_signing_keys(
            session, auth_service.context.ring, auth_service.settings, now, force=True
        )
    assert made is not None
    jwks = (await auth_service.client.get("/api/v1/auth/.well-known/jwks.json")).json()["keys"]
    assert jwks[0]["kid"] == made.kid
    assert len(jwks) == 2
    assert all(set(key) >= {"kty", "crv", "x", "kid", "alg"} and "d" not in key for key in jwks)
    verify_access_token(old_token, jwks, auth_service.settings)
    new_token = (await auth_service.register())["access_token"]
    assert verify_access_token(new_token, [jwks[0]], auth_service.settings)

    later = (
        now
        + timedelta(seconds=auth_service.settings.access_token_seconds)
        + CLOCK_SKEW
        + timedelta(seconds=1)
    )
    async with auth_service.runtime.session() as session, session.begin():
        assert (
            await rotate_signing_keys(session, auth_service.context.ring, auth_service.settings, later)
            is None
        )
        remaining = [key["kid"] for key in await published_keys(session)]
        stored = (await session.execute(sa.select(SigningKey.private_key))).scalars().all()
    assert remaining == [made.kid]
    assert all("ENCRYPTED PRIVATE KEY" in pem for pem in stored)


async def test_an_api_key_is_shown_once_verified_by_digest_and_revoked_at_once(
    auth_service: AuthService,
) -> None:
    registered = await auth_service.register()
    headers = bearer(registered["access_token"])
    created = await auth_service.client.post(
        "/api/v1/auth/api-keys", json={"name": "scanner", "scopes": ["upload", "read"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(key["prefix"] + "_")
    listed = (await auth_service.client.get("/api/v1/auth/api-keys", headers=headers)).json()["items"]
    assert [item["id"] for item in listed] == [key["id"]]
    assert "key" not in listed[0]
    async with auth_service.runtime.session() as session:
        stored = (await session.execute(sa.select(ApiKey.key_hash))).scalars().all()
    assert key["key"] not in stored

    internal = {
        INTERNAL_TOKEN_HEADER: internal_token(auth_service.settings.signing_secret.get_secret_value())
    }
    check = await auth_service.client.post(
        "/internal/v1/api-keys/verify", json={"key": key["key"]}, headers=internal
    )
    assert check.status_code == 200, check.text
    assert check.json()["scopes"] == ["read", "upload"]
    assert check.json()["role"] == "admin"
    outsider = await auth_service.client.post("/internal/v1/api-keys/verify", json={"key": key["key"]})
    assert outsider.status_code == 403
    forged = key["key"][:-4] + "AAAA"
    assert (
        await auth_service.client.post("/internal/v1/api-keys/verify", json={"key": forged}, headers=internal)
    ).status_code == 401

    revoked = await auth_service.client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=headers)
    assert revoked.status_code == 204
    after = await auth_service.client.post(
        "/internal/v1/api-keys/verify", json={"key": key["key"]}, headers=internal
    )
    assert after.status_code == 401
    listed = (await auth_service.client.get("/api/v1/auth/api-keys", headers=headers)).json()["items"]
    assert listed[0]["revoked_at"] is not None
    assert listed[0]["last_used_at"] is not None


async def test_admins_manage_members_and_keep_at_least_one_admin(auth_service: AuthService) -> None:
    admin = await auth_service.register()
    viewer = await auth_service.register()
    organisation = admin["organisation"]["id"]
    members_url = f"/api/v1/auth/organisations/{organisation}/members"
    added = await auth_service.client.post(
        members_url,
        json={"email": viewer["user"]["email"], "role": "viewer"},
        headers=bearer(admin["access_token"]),
    )
    assert added.status_code == 201, added.text
    refresh = await auth_service.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": viewer["refresh_token"]}
    )
    viewer_token = refresh.json()["access_token"]
    as_viewer = {**bearer(viewer_token), "X-Organisation-ID": organisation}
    listed = await auth_service.client.get(members_url, headers=as_viewer)
    assert sorted(item["role"] for item in listed.json()["items"]) == ["admin", "viewer"]
    promote = await auth_service.client.patch(
        f"{members_url}/{viewer['user']['id']}", json={"role": "admin"}, headers=as_viewer
    )
    assert promote.status_code == 403
    demote_self = await auth_service.client.patch(
        f"{members_url}/{admin['user']['id']}", json={"role": "member"}, headers=bearer(admin["access_token"])
    )
    assert demote_self.status_code == 409
    assert demote_self.json()["code"] == "last_admin"
    elsewhere = await auth_service.client.get(
        f"/api/v1/auth/organisations/{viewer['organisation']['id']}/members",
        headers=bearer(admin["access_token"]),
    )
    assert elsewhere.status_code == 404

    audit = await auth_service.client.get(
        "/api/v1/auth/audit", params={"action": "member.added"}, headers=bearer(admin["access_token"])
    )
    assert audit.status_code == 200
    assert [entry["user_id"] for entry in audit.json()["items"]] == [viewer["user"]["id"]]
    assert (await auth_service.client.get("/api/v1/auth/audit", headers=as_viewer)).status_code == 403


async def test_the_audit_log_refuses_updates_and_deletes(auth_service: AuthService) -> None:
    await auth_service.register()
    for statement in (sa.update(AuditEntry).values(action="edited"), sa.delete(AuditEntry)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with auth_service.runtime.session() as session, session.begin():
                await session.execute(statement)
    async with auth_service.runtime.session() as session:
        actions = (await session.execute(sa.select(AuditEntry.action))).scalars().all()
    assert "user.registered" in actions


async def test_an_api_key_created_again_with_its_idempotency_key_is_not_created_twice(
    auth_service: AuthService,
) -> None:
    headers = bearer((await auth_service.register())["access_token"])
    body = {"name": "scanner", "scopes": ["upload"]}
    first = await auth_service.client.post(
        "/api/v1/auth/api-keys", json=body, headers={**headers, "Idempotency-Key": "k-1"}
    )
    again = await auth_service.client.post(
        "/api/v1/auth/api-keys", json=body, headers={**headers, "Idempotency-Key": "k-1"}
    )
    other = await auth_service.client.post(
        "/api/v1/auth/api-keys", json={**body, "name": "other"}, headers={**headers, "Idempotency-Key": "k-1"}
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == {name: value for name, value in first.json().items() if name != "key"}
    assert again.headers["Idempotent-Replayed"] == "true; redacted=key"
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    listed = (await auth_service.client.get("/api/v1/auth/api-keys", headers=headers)).json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]


async def test_an_api_key_lives_at_most_the_stated_maximum(auth_service: AuthService) -> None:
    headers = bearer((await auth_service.register())["access_token"])
    most = auth_service.settings.api_key_days_max
    now = auth_service.context.clock()

    async def create(**expiry: int) -> dict[str, object]:
        answer = await auth_service.client.post(
            "/api/v1/auth/api-keys", json={"name": "k", "scopes": ["read"], **expiry}, headers=headers
        )
        body: dict[str, object] = {"status": answer.status_code, **answer.json()}
        return body

    unstated = await create()
    longest = await create(expires_in_days=most)
    too_long = await create(expires_in_days=most + 1)
    listed = (await auth_service.client.get("/api/v1/auth/api-keys", headers=headers)).json()
    assert unstated["status"] == longest["status"] == 201
    for key in (unstated, longest):
        lifetime = datetime.fromisoformat(str(key["expires_at"])) - now
        assert abs(lifetime - timedelta(days=most)) < timedelta(minutes=5)
    assert (too_long["status"], too_long["code"], too_long["max_days"]) == (422, "expiry_too_long", most)
    assert listed["max_expires_in_days"] == most


@pytest.mark.parametrize("name", ["scanner\u202egpj", "bell\x07", "zero\u200bwidth"])
async def test_an_api_key_name_that_hides_characters_is_refused(auth_service: AuthService, name: str) -> None:
    """A key is picked by its name to be revoked: one that only looks like another's was taken."""
    headers = bearer((await auth_service.register())["access_token"])
    answer = await auth_service.client.post(
        "/api/v1/auth/api-keys", json={"name": name, "scopes": ["read"]}, headers=headers
    )
    assert answer.status_code == 422, answer.text


async def _add_member(auth: AuthService, admin: dict[str, Any], newcomer: dict[str, Any], role: str) -> None:
    """Add ``newcomer`` to the organisation ``admin`` registered with."""
    added = await auth.client.post(
        f"/api/v1/auth/organisations/{admin['organisation']['id']}/members",
        json={"email": newcomer["user"]["email"], "role": role},
        headers=bearer(admin["access_token"]),
    )
    assert added.status_code == 201, added.text


async def test_another_members_api_key_request_with_the_same_idempotency_key_makes_their_own_key(
    auth_service: AuthService,
) -> None:
    admin = await auth_service.register()
    member = await auth_service.register()
    organisation = admin["organisation"]["id"]
    await _add_member(auth_service, admin, member, "member")
    refreshed = await auth_service.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": member["refresh_token"]}
    )
    as_member = {**bearer(refreshed.json()["access_token"]), "X-Organisation-ID": organisation}
    body = {"name": "scanner", "scopes": ["upload"]}
    first = await auth_service.client.post(
        "/api/v1/auth/api-keys",
        json=body,
        headers={**bearer(admin["access_token"]), "Idempotency-Key": "k-1"},
    )
    second = await auth_service.client.post(
        "/api/v1/auth/api-keys", json=body, headers={**as_member, "Idempotency-Key": "k-1"}
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["key"] != first.json()["key"]
    listed = (await auth_service.client.get("/api/v1/auth/api-keys", headers=as_member)).json()["items"]
    assert [item["id"] for item in listed] == [second.json()["id"]]


async def test_the_audit_log_shows_nothing_a_member_did_in_another_organisation(
    auth_service: AuthService,
) -> None:
    admin = await auth_service.register()
    other = await auth_service.register(organisation="Elsewhere")
    await _add_member(auth_service, admin, other, "viewer")
    elsewhere_key = await auth_service.client.post(
        "/api/v1/auth/api-keys",
        json={"name": "elsewhere", "scopes": ["admin"]},
        headers=bearer(other["access_token"]),
    )
    assert elsewhere_key.status_code == 201, elsewhere_key.text
    changed = await auth_service.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "another long password"},
        headers=bearer(other["access_token"]),
    )
    assert changed.status_code == 204, changed.text

    audit = await auth_service.client.get("/api/v1/auth/audit", headers=bearer(admin["access_token"]))
    assert audit.status_code == 200
    items = audit.json()["items"]
    assert {entry["organisation_id"] for entry in items} <= {admin["organisation"]["id"], None}
    assert "api_key.created" not in {entry["action"] for entry in items}
    assert "password.changed" in {entry["action"] for entry in items}


@pytest.mark.parametrize(
    "query",
    [
        {"page": 10**18},
        {"since": "9999-12-31T23:59:59-23:59"},
        {"since": "0001-01-01T00:00:00+14:00"},
    ],
    ids=["page", "since after year 9999 in UTC", "since before year 1 in UTC"],
)
async def test_an_audit_query_past_any_range_is_refused(
    auth_service: AuthService, query: dict[str, Any]
) -> None:
    admin = await auth_service.register()
    answer = await auth_service.client.get(
        "/api/v1/auth/audit", params=query, headers=bearer(admin["access_token"])
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] in ("invalid_request", "invalid_since")


async def test_one_person_added_at_once_several_times_is_added_once(auth_service: AuthService) -> None:
    admin = await auth_service.register()
    newcomer = await auth_service.register()
    answers = await asyncio.gather(
        *(
            auth_service.client.post(
                f"/api/v1/auth/organisations/{admin['organisation']['id']}/members",
                json={"email": newcomer["user"]["email"], "role": "viewer"},
                headers=bearer(admin["access_token"]),
            )
            for _ in range(4)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409], [a.text for a in answers]
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"already_member"}


async def test_two_admins_demoting_and_removing_each_other_at_once_leave_one_admin(
    auth_service: AuthService,
) -> None:
    first = await auth_service.register()
    second = await auth_service.register()
    organisation = uuid.UUID(first["organisation"]["id"])
    first_id, second_id = uuid.UUID(first["user"]["id"]), uuid.UUID(second["user"]["id"])
    async with auth_service.runtime.session() as session, session.begin():
        session.add(Membership(user_id=second_id, organisation_id=organisation, role="admin"))

    async def second_removes_first() -> None:
        async with auth_service.runtime.session() as session, session.begin():
            await members.require_admin(session, second_id, organisation)
            await members.remove_member(session, organisation, first_id, second_id, "test")

    async with auth_service.runtime.session() as session, session.begin():
        await members.require_admin(session, first_id, organisation)
        await members.change_role(session, organisation, second_id, "viewer", first_id, "test")
        removal = asyncio.create_task(second_removes_first())
        await asyncio.sleep(0.5)  # the removal runs while the demotion is not yet committed
    with pytest.raises(ApiError):
        await removal
    async with auth_service.runtime.session() as session:
        admins = (
            await session.execute(
                sa.select(Membership.user_id).where(
                    Membership.organisation_id == organisation, Membership.role == "admin"
                )
            )
        ).scalars()
        assert list(admins) == [first_id]


async def test_one_user_keeps_a_bounded_number_of_live_api_keys(auth_service: AuthService) -> None:
    """Keys cost nothing to make and are listed whole: one user could make them without end."""
    registered = await auth_service.register()
    headers = bearer(registered["access_token"])

    async def create(name: str) -> Any:
        return await auth_service.client.post(
            "/api/v1/auth/api-keys", json={"name": name, "scopes": ["read"]}, headers=headers
        )

    answers = await asyncio.gather(*(create(f"key {n}") for n in range(api_keys.MAX_LIVE_KEYS_PER_USER + 3)))
    codes = sorted((answer.status_code, answer.json().get("code")) for answer in answers)
    assert codes == [(201, None)] * api_keys.MAX_LIVE_KEYS_PER_USER + [(409, "too_many_api_keys")] * 3
    some_key = next(answer.json()["id"] for answer in answers if answer.status_code == 201)
    revoked = await auth_service.client.delete(f"/api/v1/auth/api-keys/{some_key}", headers=headers)
    assert revoked.status_code == 204
    assert (await create("in its place")).status_code == 201, "a revoked key leaves room for another"
    other = await auth_service.register()
    assert (
        await auth_service.client.post(
            "/api/v1/auth/api-keys",
            json={"name": "k", "scopes": ["read"]},
            headers=bearer(other["access_token"]),
        )
    ).status_code == 201
