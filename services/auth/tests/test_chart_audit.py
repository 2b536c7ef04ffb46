"""Custom charts created and deleted through the gateway land in the organisation's audit log:
once per event, with who did it and with which API key, and only when our own services say so."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from chromaline.auth.handlers import on_chart_changed
from chromaline.common.bus.base import PermanentError, delivered_by
from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.events.contracts import ChartCreated, ChartDeleted
from chromaline.common.events.envelope import RawEnvelope, make_envelope

from .conftest import AuthService

pytestmark = pytest.mark.integration


async def _audit(auth: AuthService, admin: dict[str, Any]) -> list[dict[str, Any]]:
    """The organisation's chart entries, oldest first."""
    answer = await auth.client.get(
        "/api/v1/auth/audit", headers={"Authorization": f"Bearer {admin['access_token']}"}
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return [item for item in reversed(items) if item["action"].startswith("chart.")]


async def _heard(auth: AuthService, admin: dict[str, Any], envelope: RawEnvelope, count: int) -> None:
    """Publish ``envelope`` on the bus, wait until auth has audited it (the ``count``-th chart
    entry), then deliver it again."""
    await auth.runtime.bus.publish(envelope)
    for _ in range(200):
        if len(await _audit(auth, admin)) == count:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"{envelope.type} was not audited")
    with delivered_by(LOCAL_USER):
        await on_chart_changed(auth.runtime, envelope)


async def test_a_chart_created_and_deleted_is_audited_once_each_with_its_actor(
    auth_service: AuthService,
) -> None:
    admin = await auth_service.register()
    organisation = admin["organisation"]["id"]
    actor, key = uuid.UUID(admin["user"]["id"]), uuid.uuid4()
    chart = {
        "chart_id": uuid.uuid4(),
        "organisation_id": organisation,
        "name": "Studio card",
        "rows": 5,
        "columns": 7,
        "patch_count": 35,
        "actor_id": actor,
    }
    created = ChartCreated(**chart, created_at=datetime.now(UTC))
    deleted = ChartDeleted(**chart, api_key_id=key, deleted_at=datetime.now(UTC))

    await _heard(auth_service, admin, make_envelope("gateway", str(created.chart_id), created), 1)
    await _heard(auth_service, admin, make_envelope("gateway", str(deleted.chart_id), deleted), 2)

    entries = await _audit(auth_service, admin)
    assert [(entry["action"], entry["organisation_id"], entry["actor_id"]) for entry in entries] == [
        ("chart.created", organisation, str(actor)),
        ("chart.deleted", organisation, str(actor)),
    ]
    shared = {
        "chart_id": str(chart["chart_id"]),
        "name": "Studio card",
        "rows": 5,
        "columns": 7,
        "patch_count": 35,
    }
    assert entries[0]["details"] == {
        **shared,
        "api_key_id": None,
        "created_at": created.created_at.isoformat(),
    }
    assert entries[1]["details"] == {
        **shared,
        "api_key_id": str(key),
        "deleted_at": deleted.deleted_at.isoformat(),
    }


async def test_a_chart_event_from_a_partner_is_refused_and_not_audited(auth_service: AuthService) -> None:
    admin = await auth_service.register()
    forged = ChartDeleted(
        chart_id=uuid.uuid4(),
        organisation_id=admin["organisation"]["id"],
        name="Studio card",
        rows=5,
        columns=7,
        patch_count=35,
        actor_id=uuid.UUID(admin["user"]["id"]),
        deleted_at=datetime.now(UTC),
    )
    with delivered_by("acme"), pytest.raises(PermanentError, match="not one of our services"):
        await on_chart_changed(auth_service.runtime, make_envelope("gateway", "x", forged))
    assert await _audit(auth_service, admin) == []
