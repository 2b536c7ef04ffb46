"""Organisations share nothing: another organisation's user finds none of the first one's work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .test_pipeline import chart_photo, upload, wait_batch

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


def _follow(system: Any, path: str, account: dict[str, Any]) -> str:
    """``done`` when the WebSocket followed the job to its end, ``closed <code>`` when it was closed."""
    url = system.base_url.replace("http://", "ws://") + f"{path}?access_token={account['access_token']}"
    with connect(url, open_timeout=30) as websocket:
        try:
            for message in websocket:
                view = json.loads(message)
                if view["state"] in ("done", "failed") and (view["report"] or {}).get("state") != "pending":
                    return "done"
        except ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"
    return "closed without an end"


def test_a_second_organisation_sees_none_of_the_first_ones_jobs_files_profiles_or_events(system: Any) -> None:
    owner = system.sign_up("First")
    with system.client(owner) as client:
        batch = upload(client, [("own.jpg", chart_photo(30))])
        job = wait_batch(client, batch["id"])["jobs"][0]
        assert job["state"] == "done", job
        saved = client.post("/api/v1/profiles", json={"job_id": job["id"], "name": "own"})
        assert saved.status_code == 201, saved.text
        profile = saved.json()

    other = system.sign_up("Second")
    with system.client(other) as client:
        assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
        assert client.get(f"/api/v1/batches/{batch['id']}").status_code == 404
        assert client.get(f"/api/v1/batches/{batch['id']}/archive").status_code == 404
        assert {name: client.get(url).status_code for name, url in job["files"].items()} == dict.fromkeys(
            job["files"], 404
        )
        assert job["id"] not in {item["id"] for item in client.get("/api/v1/jobs").json()["items"]}
        assert profile["id"] not in {item["id"] for item in client.get("/api/v1/profiles").json()["items"]}
        assert client.get(profile["files"]["json"]).status_code == 404
        assert client.patch(f"/api/v1/profiles/{profile['id']}", json={"name": "mine"}).status_code == 404
        assert client.delete(f"/api/v1/profiles/{profile['id']}").status_code == 404
        assert sum(client.get("/api/v1/stats").json()["jobs"].values()) == 0

    events = f"/api/v1/jobs/{job['id']}/events"
    assert _follow(system, events, other) == "closed 4404"
    assert _follow(system, events, owner) == "done"
