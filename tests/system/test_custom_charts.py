"""An organisation's own chart, through the public API on the distributed and the one-process system:
defined from a CGATS.17 file, named by a photo's upload, found by its layout and fitted to its
values, and its creation and deletion in the organisation's audit log; another organisation's chart
and a broken file refused with their codes.

The chart is 5 × 7: the ColorChecker Classic's 24 published Lab values (colour-science's
"ColorChecker24 - After November 2014", D50), then a neutral ramp of 11 patches from L* 35 to 95,
so its patch count (35) is no built-in chart's. The ramp starts no darker: a neutral patch about
as dark as the chart body hides the lattice of gaps the chart is found by.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
import numpy as np
import pytest

from chromaline.common.cgats import parse_cgats
from chromaline.common.testing.cgats import cgats_text
from chromaline.engine.colour_science import colour
from chromaline.engine.custom_chart import ChartDefinition
from chromaline.engine.custom_render import render_custom_chart

from .test_pipeline import upload, wait_batch
from .test_retention import eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

ROWS, COLUMNS, GAP, MARGIN = 5, 7, 0.25, 0.5
NEUTRAL_RAMP = [(lightness, 0.0, 0.0) for lightness in np.linspace(35.0, 95.0, 11)]


@cache
def reference_text() -> str:
    checker = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    xyy = np.array(list(checker.data.values()))
    lab = colour.XYZ_to_Lab(colour.xyY_to_XYZ(xyy), checker.illuminant)
    return cgats_text([*map(tuple, lab), *NEUTRAL_RAMP], illuminant="D50")


@cache
def photo_of_the_chart() -> bytes:
    definition = ChartDefinition.from_table(
        parse_cgats(reference_text()), name="studio", rows=ROWS, columns=COLUMNS, gap=GAP, margin=MARGIN
    )
    return render_custom_chart(definition, seed=5).image_bytes


def define(client: httpx.Client, text: str, rows: int = ROWS, columns: int = COLUMNS) -> httpx.Response:
    return client.post(
        "/api/v1/charts",
        files={"file": ("studio-card.cgats", text.encode(), "text/plain")},
        data={
            "name": "Studio card",
            "rows": str(rows),
            "columns": str(columns),
            "gap": str(GAP),
            "margin": str(MARGIN),
        },
    )


def chart_audit(client: httpx.Client) -> list[dict[str, Any]]:
    """The organisation's chart entries in its audit log, oldest first, once both are there."""
    items = client.get("/api/v1/auth/audit").raise_for_status().json()["items"]
    entries = [item for item in reversed(items) if item["action"] in ("chart.created", "chart.deleted")]
    return entries if len(entries) == 2 else []


def test_a_photo_of_an_organisations_own_chart_is_corrected_with_it(system: Any) -> None:
    account = system.sign_up("Custom chart studio")
    with system.client(account) as client:
        created = define(client, reference_text())
        assert created.status_code == 201, created.text
        chart = created.json()
        assert (chart["patch_count"], chart["colour_space"], chart["illuminant"]) == (35, "LAB", "D50")
        batch = upload(client, [("card.jpg", photo_of_the_chart())], chart_id=chart["id"])
        # Deleting the chart while its job runs changes nothing for the job: it carries the definition.
        assert client.delete(f"/api/v1/charts/{chart['id']}").status_code == 204
        job = wait_batch(client, batch["id"])["jobs"][0]
        assert job["state"] == "done", job
        measurements = client.get(job["files"]["measurements"]).raise_for_status().json()
        audited = eventually(lambda: chart_audit(client), "auth audits the chart's creation and deletion")
    assert [(entry["action"], entry["actor_id"], entry["details"]["chart_id"]) for entry in audited] == [
        ("chart.created", account["user"]["id"], chart["id"]),
        ("chart.deleted", account["user"]["id"], chart["id"]),
    ]
    assert {entry["organisation_id"] for entry in audited} == {account["organisation"]["id"]}
    assert job["chart_type"] == "custom"
    assert job["options"]["custom_chart"]["chart_id"] == chart["id"]
    assert measurements["chart_type"] == "custom"
    assert len(measurements["patches"]) == ROWS * COLUMNS
    assert job["delta_e2000_after"] < 2.0 < job["delta_e2000_before"]
    assert job["report"]["state"] == "ready"


def test_another_organisations_chart_and_a_broken_file_are_refused_with_codes(system: Any) -> None:
    owner = system.sign_up("Chart owner")
    other = system.sign_up("Someone else")
    with system.client(owner) as owners, system.client(other) as others:
        chart = define(owners, reference_text()).raise_for_status().json()
        shown = others.get(f"/api/v1/charts/{chart['id']}")
        uploaded = others.post(
            "/api/v1/jobs",
            files=[("files", ("card.jpg", photo_of_the_chart(), "image/jpeg"))],
            data={"chart_id": chart["id"]},
        )
        broken = define(owners, reference_text().replace("P7\t", "P7\tnot-a-number ", 1))
        mismatched = define(owners, reference_text(), rows=6)
        listed = others.get("/api/v1/jobs").raise_for_status().json()
    assert (shown.status_code, shown.json()["code"]) == (404, "chart_not_found")
    assert (uploaded.status_code, uploaded.json()["code"]) == (404, "chart_not_found")
    assert listed["total"] == 0, "a refused upload leaves no job behind"
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    assert (broken.json()["code"], broken.json()["line"]) == ("invalid_cgats", 16)
    assert (mismatched.status_code, mismatched.json()["code"]) == (422, "chart_patch_count_mismatch")
