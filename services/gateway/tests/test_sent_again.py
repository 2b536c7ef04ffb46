"""A photo sent again from a job's result page (corners marked by hand, or another chart of the
photo chosen) names the job it came from, so that the two can be told apart and linked; only a
job of the sender's own organisation may be named."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Caller, World, png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _send_again(client: httpx.Client, caller: Caller, filename: str, source: str) -> httpx.Response:
    """Upload a photo as sent again from the job ``source``."""
    return client.post(
        "/api/v1/jobs",
        files=[("files", (filename, png(), "image/png"))],
        data={"sent_again_from": source},
        headers=caller.headers,
    )


def test_a_photo_sent_again_names_the_job_it_came_from(world: World) -> None:
    member = world.callers["member"]
    source = world.new_job()
    with world.client() as client:
        sent = _send_again(client, member, "again.png", source)
        assert sent.status_code == 202, sent.text
        job_id = sent.json()["jobs"][0]["id"]
        view = client.get(f"/api/v1/jobs/{job_id}", headers=member.headers).json()
        earlier = client.get(f"/api/v1/jobs/{source}", headers=member.headers).json()
    assert view["sent_again_from"] == source
    assert earlier["sent_again_from"] is None


def test_a_job_of_another_organisation_cannot_be_named(world: World) -> None:
    outsider = world.callers["outsider"]
    source = world.new_job()
    with world.client() as client:
        refused = _send_again(client, outsider, "borrowed.png", source)
        listed = client.get("/api/v1/jobs", params={"q": "borrowed"}, headers=outsider.headers).json()
    assert (refused.status_code, refused.json()["code"]) == (404, "job_not_found")
    assert listed["items"] == [], "nothing was stored for the refused upload"
