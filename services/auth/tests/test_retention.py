"""An organisation's retention period (read by members, changed by admins, audited, announced),
and the audit entry of every expired job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from chromaline.auth.handlers import on_job_expired
from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.events.contracts import BlobRef, JobExpired
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import outbox_table

from .conftest import AuthService

pytestmark = pytest.mark.integration

DEFAULT_DAYS = 200


@pytest.fixture
def auth_overrides() -> dict[str, Any]:
    return {"retention_default_days": DEFAULT_DAYS}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _member(auth: AuthService, admin: dict[str, Any], role: str) -> dict[str, str]:
    """Headers of a new ``role`` in the admin's organisation."""
    person = await auth.register()
    organisation = admin["organisation"]["id"]
    added = await auth.client.post(
        f"/api/v1/auth/organisations/{organisation}/members",
        json={"email": person["user"]["email"], "role": role},
        headers=bearer(admin["access_token"]),
    )
    assert added.status_code == 201, added.text
    refreshed = await auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]}
    )
    return {**bearer(refreshed.json()["access_token"]), "X-Organisation-ID": organisation}


async def _audit(auth: AuthService, admin: dict[str, Any], action: str) -> list[dict[str, Any]]:
    answer = await auth.client.get(
        "/api/v1/auth/audit", params={"action": action}, headers=bearer(admin["access_token"])
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _announced(auth: AuthService) -> list[dict[str, Any]]:
    table = outbox_table(auth.runtime.name)
    async with auth.runtime.session() as session:
        rows = await session.execute(
            sa.select(table.c.payload)
            .where(table.c.routing_key == "organisation.retention_changed")
            .order_by(table.c.id)
        )
    return [payload["data"] for payload in rows.scalars()]


async def test_an_admin_sets_the_period_which_is_audited_and_announced(auth_service: AuthService) -> None:
    admin = await auth_service.register()
    organisation = admin["organisation"]["id"]
    url = f"/api/v1/auth/organisations/{organisation}/retention"
    headers = bearer(admin["access_token"])

    first = await auth_service.client.get(url, headers=headers)
    assert first.json() == {
        "organisation_id": organisation,
        "days": None,
        "default_days": DEFAULT_DAYS,
        "effective_days": DEFAULT_DAYS,
    }
    changed = await auth_service.client.put(url, json={"days": 30}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["days"], changed.json()["effective_days"]) == (30, 30)
    assert (await auth_service.client.put(url, json={"days": 30}, headers=headers)).status_code == 200
    back = await auth_service.client.put(url, json={"days": None}, headers=headers)
    assert (back.json()["days"], back.json()["effective_days"]) == (None, DEFAULT_DAYS)

    entries = await _audit(auth_service, admin, "organisation.retention_changed")
    assert [(entry["details"]["previous_days"], entry["details"]["days"]) for entry in entries] == [
        (30, None),
        (None, 30),
    ]
    assert {entry["actor_id"] for entry in entries} == {admin["user"]["id"]}
    announced = await _announced(auth_service)
    assert [(event["previous_days"], event["days"]) for event in announced] == [(None, 30), (30, None)]
    assert {event["organisation_id"] for event in announced} == {organisation}
    assert announced[0]["changed_at"] < announced[1]["changed_at"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"days": 0}, "invalid_retention_days"),
        ({"days": 3651}, "invalid_retention_days"),
        ({"days": -5}, "invalid_retention_days"),
        ({"days": "30"}, "invalid_request"),
        ({"days": 7.5}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
async def test_a_period_out_of_range_is_refused_with_a_code(
    auth_service: AuthService, body: dict[str, Any], code: str
) -> None:
    admin = await auth_service.register()
    answer = await auth_service.client.put(
        f"/api/v1/auth/organisations/{admin['organisation']['id']}/retention",
        json=body,
        headers=bearer(admin["access_token"]),
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    assert await _announced(auth_service) == []


async def test_members_read_the_period_only_admins_change_it_outsiders_see_nothing(
    auth_service: AuthService,
) -> None:
    admin = await auth_service.register()
    outsider = await auth_service.register()
    url = f"/api/v1/auth/organisations/{admin['organisation']['id']}/retention"
    for role in ("viewer", "member", "operator"):
        headers = await _member(auth_service, admin, role)
        assert (await auth_service.client.get(url, headers=headers)).status_code == 200
        refused = await auth_service.client.put(url, json={"days": 1}, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    for method in ("GET", "PUT"):
        answer = await auth_service.client.request(
            method, url, json={"days": 1}, headers=bearer(outsider["access_token"])
        )
        assert (answer.status_code, answer.json()["code"]) == (404, "organisation_not_found")
    assert (await auth_service.client.get(url)).status_code == 401
    assert await _announced(auth_service) == []


def _expired(organisation: str, **changes: Any) -> JobExpired:
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    profile = BlobRef(bucket="chromaline-corrected", key=f"{job_id}/profile.json")
    return JobExpired(
        job_id=job_id,
        organisation_id=organisation,
        filename="studio.jpg",
        retention_days=30,
        cutoff=now - timedelta(days=30),
        expired_at=now,
        original=BlobRef(bucket="chromaline-originals", key=f"{uuid.uuid4()}/studio.jpg"),
        results={
            "corrected": BlobRef(bucket="chromaline-corrected", key=f"{job_id}/corrected.jpg"),
            "profile": profile,
            "report_pdf": BlobRef(bucket="chromaline-reports", key=f"{job_id}/report.pdf"),
        },
        kept=[profile],
        **changes,
    )


async def test_every_expired_job_is_audited_once_for_its_organisation(auth_service: AuthService) -> None:
    admin = await auth_service.register()
    event = _expired(admin["organisation"]["id"])
    envelope = make_envelope("gateway", str(event.job_id), event)

    await auth_service.runtime.bus.publish(envelope)
    for _ in range(200):
        if entries := await _audit(auth_service, admin, "job.expired"):
            break
        await asyncio.sleep(0.05)
    with delivered_by("chromaline"):
        await on_job_expired(auth_service.runtime, envelope)

    [entry] = await _audit(auth_service, admin, "job.expired")
    assert entry["organisation_id"] == admin["organisation"]["id"]
    details = entry["details"]
    assert (details["job_id"], details["filename"], details["retention_days"]) == (
        str(event.job_id),
        "studio.jpg",
        30,
    )
    assert details["deleted"] == sorted(
        f"{ref.bucket}/{ref.key}"
        for ref in (event.original, event.results["corrected"], event.results["report_pdf"])
        if ref is not None
    )
    assert details["kept"] == [f"chromaline-corrected/{event.job_id}/profile.json"]
    assert entries == [entry]

    with delivered_by("acme"), pytest.raises(PermanentError, match="not one of our services"):
        await on_job_expired(
            auth_service.runtime, make_envelope("gateway", "x", _expired(admin["organisation"]["id"]))
        )
