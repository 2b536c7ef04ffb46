"""Custom charts through the API: defined from a CGATS.17 file and a layout, refused with a code and
the reader's line when either is wrong, kept within their organisation, and carried whole into the
``image.uploaded`` event of every upload that names one.

The gateway app runs in process on the real PostgreSQL (conftest); who may call which route is the
route matrix's business (test_access.py).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chromaline.common import cgats
from chromaline.common.events.contracts import CustomChart
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.cgats import cgats_text, made_up_lab
from chromaline.gateway.charts import MAX_CHARTS_PER_ORGANISATION, checked_definition
from chromaline.gateway.models import Job
from chromaline.gateway.testing import ApiClient, small_photo

from .conftest import caller_user_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
CHARTS = "/api/v1/charts"


async def define(
    client: httpx.AsyncClient, text: str, *, rows: int = 5, columns: int = 7, name: str = "Studio card"
) -> httpx.Response:
    return await client.post(
        CHARTS,
        files={"file": ("studio.cgats.txt", text.encode(), "text/plain")},
        data={"name": name, "rows": str(rows), "columns": str(columns), "gap": "0.2", "margin": "0.6"},
    )


async def upload(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post(
        "/api/v1/jobs", files=[("files", ("shot.jpg", small_photo(20), "image/jpeg"))], data=form
    )


async def stored_options(
    runtime: ServiceRuntime, batch: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A created job's options as stored, and as its ``image.uploaded`` event carries them."""
    job_id = uuid.UUID(batch["jobs"][0]["id"])
    async with runtime.session() as session:
        job = await session.get(Job, job_id)
        payload = (
            await session.execute(
                sa.text(
                    "SELECT payload FROM outbox WHERE routing_key = 'image.uploaded' AND payload->>'subject' = :id"
                ),
                {"id": str(job_id)},
            )
        ).scalar_one()
    assert job is not None
    return job.options, payload["data"]["options"]


async def test_a_chart_is_defined_listed_shown_downloaded_and_deleted(api_client: ApiClient) -> None:
    text = cgats_text(made_up_lab(35))
    async with api_client("org-a") as alice:
        created = await define(alice, text)
        assert created.status_code == 201, created.text
        chart = created.json()
        listed = await alice.get(CHARTS)
        shown = await alice.get(f"{CHARTS}/{chart['id']}")
        original = await alice.get(chart["files"]["cgats"])
        deleted = await alice.delete(f"{CHARTS}/{chart['id']}")
        after = await alice.get(f"{CHARTS}/{chart['id']}")
    assert {key: chart[key] for key in ("name", "rows", "columns", "gap", "margin", "patch_count")} == {
        "name": "Studio card",
        "rows": 5,
        "columns": 7,
        "gap": 0.2,
        "margin": 0.6,
        "patch_count": 35,
    }
    assert (chart["colour_space"], chart["illuminant"], chart["filename"]) == (
        "LAB",
        "D50",
        "studio.cgats.txt",
    )
    assert [item["id"] for item in listed.json()["items"]] == [chart["id"]]
    patches = shown.json()["patches"]
    assert [patch["sample_id"] for patch in patches] == [f"P{index}" for index in range(1, 36)]
    assert patches[3]["value"] == pytest.approx(made_up_lab(35)[3], abs=1e-4)
    assert original.status_code == 200
    assert original.text == text
    assert "studio.cgats.txt" in original.headers["content-disposition"]
    assert deleted.status_code == 204
    assert (after.status_code, after.json()["code"]) == (404, "chart_not_found")


async def test_xyz_values_keep_their_illuminant(api_client: ApiClient) -> None:
    xyz = [(5.0 + index * 2.5, 6.0 + index * 2.4, 7.0 + index * 2.0) for index in range(12)]
    async with api_client("org-a") as alice:
        created = await define(
            alice, cgats_text(xyz, fields="XYZ_X XYZ_Y XYZ_Z", illuminant="D65"), rows=3, columns=4
        )
    assert created.status_code == 201, created.text
    assert (created.json()["colour_space"], created.json()["illuminant"]) == ("XYZ", "D65")


async def test_a_file_saved_with_a_byte_order_mark_is_accepted(api_client: ApiClient) -> None:
    """Windows editors save UTF-8 with a byte order mark before the CGATS.17 identifier."""
    async with api_client("org-a") as alice:
        created = await define(
            alice, "\ufeff" + cgats_text(made_up_lab(12)).replace("\n", "\r\n"), rows=3, columns=4
        )
    assert created.status_code == 201, created.text
    assert created.json()["patch_count"] == 12


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        (cgats_text(made_up_lab(35)).replace("P4\t", "P4\t1O", 1), "invalid_cgats", 13),
        (cgats_text(made_up_lab(35)).replace("NUMBER_OF_SETS 35", "NUMBER_OF_SETS 36"), "invalid_cgats", 8),
        (
            cgats_text(made_up_lab(35)).replace("NUMBER_OF_SETS 35", "NUMBER_OF_SETS \u00b3"),
            "invalid_cgats",
            8,
        ),
        (cgats_text(made_up_lab(35)).replace("LAB_B", "LAB_Q"), "invalid_cgats", 5),
        ("not a chart at all\n", "invalid_cgats", None),
        (cgats_text(made_up_lab(34)), "chart_patch_count_mismatch", None),
        (cgats_text([(50.0, 0.0, 0.0)] * 35), "chart_colours_too_few", None),
        (cgats_text([(0.0, 0.0, 0.0)] * 35, fields="XYZ_X XYZ_Y XYZ_Z"), "chart_colours_too_few", None),
    ],
    ids=[
        "bad-number",
        "set-count",
        "superscript-count",
        "no-lab",
        "not-cgats",
        "count-mismatch",
        "one-colour",  # every photo's job failed on its NaN confidence
        "all-black-xyz",
    ],
)
async def test_a_bad_file_or_a_layout_that_does_not_fit_is_refused_with_a_code(
    api_client: ApiClient, text: str, code: str, line: int | None
) -> None:
    async with api_client("org-a") as alice:
        refused = await define(alice, text)
        listed = await alice.get(CHARTS)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == code
    if line is not None:
        assert body["line"] == line
        assert body["detail"].startswith(f"line {line}: ")
    assert listed.json()["items"] == []


async def test_a_file_that_is_not_utf8_or_too_small_a_chart_is_refused(api_client: ApiClient) -> None:
    async with api_client("org-a") as alice:
        binary = await alice.post(
            CHARTS,
            files={"file": ("chart.bin", b"\xff\xfe\x00\x81" * 10, "application/octet-stream")},
            data={"name": "x", "rows": "2", "columns": "2"},
        )
        tiny = await define(alice, cgats_text(made_up_lab(4)), rows=2, columns=2)
        huge_gap = await alice.post(
            CHARTS,
            files={"file": ("c.txt", cgats_text(made_up_lab(35)).encode(), "text/plain")},
            data={"name": "x", "rows": "5", "columns": "7", "gap": "9"},
        )
    assert (binary.status_code, binary.json()["code"]) == (422, "invalid_cgats")
    assert (tiny.status_code, tiny.json()["code"]) == (422, "invalid_chart_layout")
    assert "at least 6 patches" in tiny.json()["detail"]
    assert (huge_gap.status_code, huge_gap.json()["code"]) == (422, "invalid_chart_layout")


@pytest.mark.parametrize(
    "name",
    ["Studio\x00card", "Studio\r\ncard", "Studio\u202ecard", "Studio\u200bcard"],
    ids=["nul", "line-break", "direction-override", "zero-width-space"],
)
async def test_a_chart_name_with_control_characters_is_refused(api_client: ApiClient, name: str) -> None:
    async with api_client("org-a") as alice:
        refused = await define(alice, cgats_text(made_up_lab(35)), name=name)
        listed = await alice.get(CHARTS)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_chart_name")
    assert listed.json()["items"] == []


async def test_a_count_of_thousands_of_digits_is_refused_with_its_line(api_client: ApiClient) -> None:
    """Python refuses to read an integer of more than 4300 digits: such a count answered 500."""
    text = cgats_text(made_up_lab(35)).replace("NUMBER_OF_SETS 35", "NUMBER_OF_SETS " + "0" * 4999 + "35")
    async with api_client("org-a") as alice:
        refused = await define(alice, text)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_cgats"), refused.text
    line = next(
        number for number, content in enumerate(text.splitlines(), 1) if content.startswith("NUMBER_OF_SETS")
    )
    assert refused.json()["line"] == line


async def test_a_file_over_the_cgats_limit_is_refused_with_413(api_client: ApiClient) -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = cgats_text(made_up_lab(35)).replace("BEGIN_DATA\n", "BEGIN_DATA\n" + padding * 200, 1)
    assert cgats.MAX_BYTES < len(text.encode()) < 256 * 1024
    async with api_client("org-a") as alice:
        refused = await define(alice, text)
    assert (refused.status_code, refused.json()["code"]) == (413, "chart_file_too_large")


async def test_charts_defined_at_once_stay_within_the_organisations_limit(api_client: ApiClient) -> None:
    text = cgats_text(made_up_lab(6))
    async with api_client("org-a") as alice, api_client("org-b") as bob:
        answers = await asyncio.gather(
            *(define(alice, text, rows=2, columns=3) for _ in range(MAX_CHARTS_PER_ORGANISATION + 4))
        )
        listed = (await alice.get(CHARTS)).json()["items"]
        elsewhere = await define(bob, text, rows=2, columns=3)
    codes = sorted((answer.status_code, answer.json().get("code")) for answer in answers)
    assert codes == [(201, None)] * MAX_CHARTS_PER_ORGANISATION + [(409, "too_many_charts")] * 4
    assert len(listed) == MAX_CHARTS_PER_ORGANISATION
    assert elsewhere.status_code == 201, "the limit is each organisation's own"


async def test_another_organisations_chart_is_not_found_anywhere(api_client: ApiClient) -> None:
    async with api_client("org-a") as alice, api_client("org-b") as bob:
        chart = (await define(alice, cgats_text(made_up_lab(35)))).json()
        answers = [
            await bob.get(f"{CHARTS}/{chart['id']}"),
            await bob.get(f"{CHARTS}/{chart['id']}/cgats"),
            await bob.delete(f"{CHARTS}/{chart['id']}"),
            await upload(bob, chart_id=chart["id"]),
        ]
        bobs = await bob.get(CHARTS)
        still = await alice.get(f"{CHARTS}/{chart['id']}")
    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == [
        (404, "chart_not_found")
    ] * 4
    assert bobs.json()["items"] == []
    assert still.status_code == 200


async def test_an_upload_naming_a_chart_carries_its_definition_in_the_event(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice:
        chart = (await define(alice, cgats_text(made_up_lab(35)))).json()
        uploaded = await upload(alice, chart_id=chart["id"])
        assert uploaded.status_code == 202, uploaded.text
        deleted = await alice.delete(f"{CHARTS}/{chart['id']}")
        job = await alice.get(f"/api/v1/jobs/{uploaded.json()['jobs'][0]['id']}")
    assert deleted.status_code == 204
    stored, event = await stored_options(api_runtime, uploaded.json())
    for options in (stored, event):
        assert options["chart_type"] == "custom"
        custom = options["custom_chart"]
        assert (custom["chart_id"], custom["rows"], custom["columns"], custom["gap"]) == (
            chart["id"],
            5,
            7,
            0.2,
        )
        assert len(custom["values"]) == 35
    assert job.json()["options"]["custom_chart"] == {
        "chart_id": chart["id"],
        "name": "Studio card",
        "rows": 5,
        "columns": 7,
        "patch_count": 35,
    }, "a job shows its chart, not its values, and still does once the chart is deleted"


async def test_the_streamed_and_presigned_uploads_take_a_chart_too(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    async with api_client("org-a") as alice:
        chart = (await define(alice, cgats_text(made_up_lab(35)))).json()
        streamed = await alice.put(
            "/api/v1/uploads/stream",
            params={"filename": "s.jpg", "chart_id": chart["id"]},
            content=small_photo(30),
        )
        unknown = await alice.post(
            "/api/v1/uploads/presigned", json={"filename": "p.jpg", "chart_id": str(uuid.uuid4())}
        )
    assert streamed.status_code == 202, streamed.text
    stored, event = await stored_options(api_runtime, streamed.json())
    assert stored["custom_chart"]["chart_id"] == event["custom_chart"]["chart_id"] == chart["id"]
    assert (unknown.status_code, unknown.json()["code"]) == (404, "chart_not_found")


async def test_a_chart_type_that_contradicts_the_chart_or_custom_without_one_is_refused(
    api_client: ApiClient,
) -> None:
    async with api_client("org-a") as alice:
        chart = (await define(alice, cgats_text(made_up_lab(35)))).json()
        contradicting = await upload(alice, chart_id=chart["id"], chart_type="classic24")
        without = await upload(alice, chart_type="custom")
        presigned_without = await alice.post(
            "/api/v1/uploads/presigned", json={"filename": "p.jpg", "options": {"chart_type": "custom"}}
        )
        named = await upload(alice, chart_id=chart["id"], chart_type="custom")
    assert (contradicting.status_code, contradicting.json()["code"]) == (422, "invalid_options")
    assert (without.status_code, without.json()["code"]) == (422, "chart_id_required")
    assert (presigned_without.status_code, presigned_without.json()["code"]) == (422, "chart_id_required")
    assert named.status_code == 202, named.text


async def chart_events(runtime: ServiceRuntime) -> list[tuple[str, dict[str, Any]]]:
    """The ``chart.created`` and ``chart.deleted`` envelopes in the gateway's outbox, oldest first."""
    async with runtime.session() as session:
        rows = await session.execute(
            sa.text(
                "SELECT routing_key, payload FROM outbox "
                "WHERE routing_key IN ('chart.created', 'chart.deleted') ORDER BY id"
            )
        )
    return [(routing_key, payload) for routing_key, payload in rows]


async def test_creating_and_deleting_a_chart_is_announced_for_the_audit_log(
    api_runtime: ServiceRuntime, api_client: ApiClient
) -> None:
    key_id = str(uuid.uuid4())
    async with api_client("org-a") as alice:
        refused = await define(alice, cgats_text(made_up_lab(35)), rows=6)
        created = await define(alice, cgats_text(made_up_lab(35)))
        missing = await alice.delete(f"{CHARTS}/{uuid.uuid4()}")
        deleted = await alice.delete(f"{CHARTS}/{created.json()['id']}", headers={"X-Test-Api-Key": key_id})
    assert (refused.status_code, created.status_code, missing.status_code, deleted.status_code) == (
        422,
        201,
        404,
        204,
    )
    chart_id = created.json()["id"]
    [(created_key, created_event), (deleted_key, deleted_event)] = await chart_events(api_runtime)
    assert (created_key, deleted_key) == ("chart.created", "chart.deleted")
    assert created_event["subject"] == deleted_event["subject"] == chart_id
    shared = {
        "chart_id": chart_id,
        "organisation_id": "org-a",
        "name": "Studio card",
        "rows": 5,
        "columns": 7,
        "patch_count": 35,
        "actor_id": caller_user_id("org-a"),
    }
    assert created_event["data"] == {
        **shared,
        "api_key_id": None,
        "created_at": created_event["data"]["created_at"],
    }
    assert created_event["data"]["created_at"].startswith(created.json()["created_at"][:19])
    assert deleted_event["data"] == {
        **shared,
        "api_key_id": key_id,
        "deleted_at": deleted_event["data"]["deleted_at"],
    }


async def test_reading_a_chart_file_does_not_stall_other_requests(
    api_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chart file of 2000 patches takes tens of milliseconds to read and check, on the event loop:
    one member sending them without pause (refused past the limit only once read) held up every
    other request of the gateway."""
    answered = threading.Event()
    held: list[bool] = []

    def slow_check(text: str, **layout: Any) -> CustomChart:
        held.append(answered.wait(timeout=10))
        return checked_definition(text, **layout)

    monkeypatch.setattr("chromaline.gateway.charts.checked_definition", slow_check)
    async with api_client("org-a") as alice:
        defining = asyncio.create_task(define(alice, cgats_text(made_up_lab(35))))
        await asyncio.sleep(0.2)
        listed = await alice.get(CHARTS)
        answered.set()
        defined = await defining
    assert listed.status_code == 200
    assert defined.status_code == 201, defined.text
    assert held == [True], "another request was answered while the chart file was being read"
