"""Webhooks: signatures receivers can check, retries with backoff, and no endpoint holding up another.

The gateway's runtime runs on the real PostgreSQL with its delivery worker; the receivers are a
small HTTP server on 127.0.0.1 (so private URLs are allowed here) whose paths answer 200, answer
500, or hang past the call's timeout.
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import select

from chromaline.common import public_urls
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import webhooks
from chromaline.gateway.access import Principal, authorize
from chromaline.gateway.models import Webhook, WebhookDelivery
from chromaline.gateway.notifications_api import MAX_PENDING_PINGS, MAX_WEBHOOKS_PER_ORGANISATION
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import create_jobs, fail_job, finish_job
from chromaline.gateway.webhook_signatures import sign, verify_signature

SECRET = "whsec_0123456789abcdef"
BODY = b'{"type":"job.finished","data":{"job":{"id":"x"}}}'
ORG_A = "org-a"
ORG_B = "org-b"
HANG_SECONDS = 10.0


def test_a_signature_verifies_with_its_secret() -> None:
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, BODY, now=1_700_000_010)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_another", BODY, 1_700_000_010),
        (SECRET, BODY.replace(b"finished", b"failed"), 1_700_000_010),
        (SECRET, BODY, 1_700_000_000 + 301),
        (SECRET, BODY, 1_700_000_000 - 301),
    ],
    ids=["wrong-secret", "tampered-body", "stale", "from-the-future"],
)
def test_a_signature_fails_when_anything_differs(secret: str, body: bytes, now: float) -> None:
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    assert not verify_signature(secret, header, body, tolerance=300, now=now)


@pytest.mark.parametrize(
    "header", ["", "t=1700000000", "v1=abc", "t=soon,v1=abc", "t=1700000000,v1="], ids=repr
)
def test_malformed_signature_headers_fail(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=1_700_000_000)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    replayed = header.replace("t=1700000000", "t=1700000100")
    assert not verify_signature(SECRET, replayed, BODY, now=1_700_000_100)


def test_a_second_v1_value_is_accepted() -> None:
    genuine = sign(SECRET, BODY, timestamp=1_700_000_000).split(",")[1]
    header = f"t=1700000000,v1={'0' * 64},{genuine}"
    assert verify_signature(SECRET, header, BODY, now=1_700_000_000)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "https://printer.local/hook",
        "ftp://93.184.216.34/hook",
        "https://user:pass@93.184.216.34/hook",
        "not a url",
        # IPv6 addresses that carry a private IPv4 one, for a gateway on the way to call.
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:7f00:1::]/hook",
        "http://[fec0::1]/hook",
        # IPv4 written in the forms the resolver takes besides the dotted quad.
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0/hook",
        "http://127\u30020\u30020\u30021/hook",
    ],
)
def test_urls_to_private_places_are_refused(url: str) -> None:
    with pytest.raises(public_urls.UnsafeUrlError):
        public_urls.check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com:abc/hook",
        "https://example.com:99999/hook",
        "https://example.com:0/hook",
        "http://[::1/hook",
        "http://[zz]/hook",
        "https://example.com/a\r\nX-Injected: 1",
        "https://example.com/\x1b[31m",
        "https://example.com/\u2028",
        "https://example.com/a b",
    ],
)
def test_malformed_urls_are_refused_even_where_private_ones_are_allowed(url: str) -> None:
    """Such URLs were stored, and their deliveries then failed before any attempt was counted,
    so they were tried again every half minute for ever (or the API answered 500)."""
    with pytest.raises(public_urls.UnsafeUrlError):
        public_urls.check_url(url, allow_private=True)


async def test_which_private_address_a_name_resolves_to_is_not_told(monkeypatch: pytest.MonkeyPatch) -> None:
    async def inside(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", inside)
    with pytest.raises(public_urls.UnsafeUrlError) as refused:
        await public_urls.checked_address("https://postgres/hook", allow_private=False)
    assert "10.20.30.40" not in str(refused.value)


async def test_a_call_that_cannot_be_made_counts_as_a_failed_attempt(tmp_path: Path) -> None:
    """A URL stored before it was checked as strictly as now raised outside the errors the call
    caught: the attempt was never recorded, and the delivery was claimed again for ever."""
    settings = _settings("postgresql+asyncpg://unused/unused", tmp_path, webhook_allow_private_urls=True)
    claimed = webhooks.ClaimedDelivery(
        uuid.uuid4(), uuid.uuid4(), "https://hooks.example.com:abc/chromaline", SECRET, "ping", BODY
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204))) as client:
        worker = webhooks.DeliveryWorker(lambda: pytest.fail("no database call"), settings, client)
        outcome = await worker._call(claimed)

    assert not outcome.delivered
    assert outcome.error is not None


def test_public_urls_pass_and_private_ones_pass_when_allowed() -> None:
    public_urls.check_url("https://93.184.216.34/hook", allow_private=False)
    public_urls.check_url("https://hooks.example.com/chromaline", allow_private=False)
    public_urls.check_url("http://127.0.0.1:9/hook", allow_private=True)


def test_secrets_are_derived_per_webhook_and_per_gateway_secret() -> None:
    first, second = webhooks.new_salt(), webhooks.new_salt()
    assert webhooks.webhook_secret("gateway", first) == webhooks.webhook_secret("gateway", first)
    assert webhooks.webhook_secret("gateway", first) != webhooks.webhook_secret("gateway", second)
    assert webhooks.webhook_secret("gateway", first) != webhooks.webhook_secret("rotated", first)


def test_retry_delays_follow_the_settings_and_repeat_the_last() -> None:
    settings = GatewaySettings(webhook_retry_delays_seconds=(10.0, 60.0, 300.0))
    assert [webhooks.retry_delay(settings, n).total_seconds() for n in (1, 2, 3, 4, 9)] == [
        10.0,
        60.0,
        300.0,
        300.0,
        300.0,
    ]


async def test_a_call_goes_to_the_address_that_was_checked_not_to_a_second_dns_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name was resolved once for the check and again by the HTTP client, so a DNS server
    answering a public address first and 127.0.0.1 next (rebinding) reached inside. The call now
    goes to the checked address, with the name kept in the Host header and the TLS server name."""
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])

    async def rebinding(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    settings = _settings("postgresql+asyncpg://unused/unused", tmp_path, webhook_allow_private_urls=False)
    claimed = webhooks.ClaimedDelivery(
        uuid.uuid4(), uuid.uuid4(), "https://hooks.example.com/chromaline", SECRET, "ping", BODY
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        worker = webhooks.DeliveryWorker(lambda: pytest.fail("no database call"), settings, client)
        outcome = await worker._call(claimed)

    assert outcome.delivered
    [request] = sent
    assert request.url.host == "93.184.216.34"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1: ``/ok`` answers 204, ``/fail`` 500, ``/hang`` nothing for a while."""

    port: int
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [request for request in list(self.received) if request.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(Received(self.path, dict(self.headers), body, time.monotonic()))
            if self.path == "/hang":
                state.release.wait(HANG_SECONDS)
            self.send_response(500 if self.path == "/fail" else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _settings(database_url: str, blobs: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "bus_url": f"memory://webhooks-{uuid.uuid4().hex[:8]}",
        "blob_url": f"file://{blobs}",
        "signing_secret": "a-test-signing-secret",
        "webhook_allow_private_urls": True,
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_delays_seconds": (0.3, 0.6),
        "webhook_max_attempts": 3,
        "webhook_poll_seconds": 0.05,
        "watchdog_interval_seconds": 3600.0,
        **overrides,
    }
    return GatewaySettings(**values)


@pytest.fixture
async def runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    started = ServiceRuntime(SPEC, _settings(service_database_url, tmp_path))
    await started.start(consume=False)
    try:
        yield started
    finally:
        await started.stop()


def _settings_of(runtime: ServiceRuntime) -> GatewaySettings:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    return settings


async def _add_webhook(runtime: ServiceRuntime, url: str, organisation: str = ORG_A) -> tuple[uuid.UUID, str]:
    """A webhook stored directly, and its secret."""
    webhook = Webhook(
        id=uuid.uuid4(),
        organisation_id=organisation,
        owner_id="u-admin",
        url=url,
        events=list(webhooks.EVENT_TYPES),
        secret_salt=webhooks.new_salt(),
    )
    async with runtime.session() as session, session.begin():
        session.add(webhook)
    secret = webhooks.webhook_secret(
        _settings_of(runtime).signing_secret.get_secret_value(), webhook.secret_salt
    )
    return webhook.id, secret


async def _deliveries(runtime: ServiceRuntime, webhook_id: uuid.UUID) -> list[WebhookDelivery]:
    async with runtime.session() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        return list((await session.execute(query.order_by(WebhookDelivery.created_at))).scalars())


async def _until(condition: Callable[[], Any], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_a_finished_job_is_posted_signed_to_the_organisations_webhook(
    runtime: ServiceRuntime, receiver: Receiver
) -> None:
    webhook_id, secret = await _add_webhook(runtime, receiver.url("/ok"))
    other_org_hook, _ = await _add_webhook(runtime, receiver.url("/ok?other"), organisation=ORG_B)
    [job_id] = await create_jobs(runtime, ORG_A, "studio.jpg", owner="u-alice")
    await finish_job(runtime, job_id)

    async def delivered() -> bool:
        return [d.status for d in await _deliveries(runtime, webhook_id)] == ["delivered"]

    await _until(delivered)
    [request] = receiver.on("/ok")
    assert verify_signature(secret, request.headers["X-Chromaline-Signature"], request.body)
    assert not verify_signature(secret, request.headers["X-Chromaline-Signature"], request.body + b" ")
    assert request.headers["X-Chromaline-Event"] == "job.finished"
    [delivery] = await _deliveries(runtime, webhook_id)
    assert request.headers["X-Chromaline-Delivery"] == str(delivery.id)
    payload = httpx.Response(200, content=request.body).json()
    assert payload["type"] == "job.finished"
    assert payload["organisation_id"] == ORG_A
    assert payload["data"]["job"]["id"] == str(job_id)
    assert payload["data"]["job"]["state"] == "done"
    assert (delivery.attempts, delivery.last_status_code) == (1, 204)
    assert await _deliveries(runtime, other_org_hook) == []


@pytest.mark.integration
async def test_a_failing_endpoint_is_retried_with_backoff_then_marked_failed(
    runtime: ServiceRuntime, receiver: Receiver
) -> None:
    webhook_id, _ = await _add_webhook(runtime, receiver.url("/fail"))
    [job_id] = await create_jobs(runtime, ORG_A, "broken.jpg", owner="u-alice")
    await fail_job(runtime, job_id)

    async def given_up() -> bool:
        return [d.status for d in await _deliveries(runtime, webhook_id)] == ["failed"]

    await _until(given_up)
    [delivery] = await _deliveries(runtime, webhook_id)
    assert delivery.event_type == "job.failed"
    assert delivery.attempts == 3
    assert [entry["attempt"] for entry in delivery.attempt_log] == [1, 2, 3]
    assert {entry["status_code"] for entry in delivery.attempt_log} == {500}
    assert delivery.last_error == "HTTP 500"
    calls = receiver.on("/fail")
    assert len(calls) == 3
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= 0.3
    assert gaps[1] >= 0.6
    await asyncio.sleep(1.0)
    assert len(receiver.on("/fail")) == 3, "a failed delivery is not tried again"


@pytest.mark.integration
async def test_dead_endpoints_do_not_delay_a_healthy_one(runtime: ServiceRuntime, receiver: Receiver) -> None:
    hanging, _ = await _add_webhook(runtime, receiver.url("/hang"))
    closed, _ = await _add_webhook(runtime, f"http://127.0.0.1:{_closed_port()}/hook")
    healthy, _ = await _add_webhook(runtime, receiver.url("/ok"))
    job_ids = await create_jobs(runtime, ORG_A, "a.jpg", "b.jpg", owner="u-alice")
    started = time.monotonic()
    for job_id in job_ids:
        await finish_job(runtime, job_id)

    async def healthy_done() -> bool:
        return [d.status for d in await _deliveries(runtime, healthy)] == ["delivered"] * 3

    await _until(healthy_done)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"the healthy webhook waited {elapsed:.1f} s behind the dead ones"
    hung = await _deliveries(runtime, hanging)
    assert len(hung) == 3
    assert all(d.attempts == 0 and d.status == "pending" for d in hung), "still waiting on the first call"
    assert len(receiver.on("/hang")) == 1, "one call at a time per webhook"
    refused = await _deliveries(runtime, closed)
    assert any(d.attempts >= 1 and "Connect" in (d.last_error or "") for d in refused)

    async def hang_timed_out() -> bool:
        logs = [d.attempt_log for d in await _deliveries(runtime, hanging)]
        return any(log and "no answer within" in str(log[0]["error"]) for log in logs)

    await _until(hang_timed_out)


@pytest.mark.integration
async def test_two_workers_never_send_the_same_delivery_twice(
    runtime: ServiceRuntime, receiver: Receiver
) -> None:
    webhook_ids = [(await _add_webhook(runtime, receiver.url(f"/ok?hook={n}")))[0] for n in range(6)]
    job_ids = await create_jobs(runtime, ORG_A, *[f"{n}.jpg" for n in range(4)], owner="u-alice")
    client = httpx.AsyncClient(timeout=2)
    other_replica = asyncio.create_task(
        webhooks.DeliveryWorker(runtime.session, _settings_of(runtime), client).run()
    )
    try:
        for job_id in job_ids:
            await finish_job(runtime, job_id)

        async def all_delivered() -> bool:
            statuses = [d.status for hook in webhook_ids for d in await _deliveries(runtime, hook)]
            return statuses == ["delivered"] * (6 * 5)

        await _until(all_delivered)
    finally:
        other_replica.cancel()
        await asyncio.gather(other_replica, return_exceptions=True)
        await client.aclose()
    delivery_ids = [request.headers["X-Chromaline-Delivery"] for request in receiver.received]
    assert len(delivery_ids) == 6 * 5, "4 job events and 1 batch event per webhook"
    assert len(set(delivery_ids)) == len(delivery_ids)


def _as(principals: dict[str, Principal]) -> Callable[[Request], Principal]:
    def principal(request: Request) -> Principal:
        return principals[request.headers["X-Test-Caller"]]

    return principal


@asynccontextmanager
async def _started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
    yield


def _app(runtime: ServiceRuntime, settings: GatewaySettings) -> FastAPI:
    """The gateway app on the started runtime, with callers named by ``X-Test-Caller``."""
    app = build_app(runtime, settings, lifespan=_started_elsewhere)
    app.dependency_overrides[authorize] = _as(
        {
            "alice": Principal("u-alice", ORG_A, "member"),
            "bob": Principal("u-bob", ORG_B, "admin"),
        }
    )
    return app


@pytest.fixture
def api(runtime: ServiceRuntime) -> FastAPI:
    return _app(runtime, _settings_of(runtime))


def _client(app: FastAPI, caller: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"X-Test-Caller": caller}
    )


@pytest.mark.integration
async def test_webhooks_through_the_api(api: FastAPI, runtime: ServiceRuntime, receiver: Receiver) -> None:
    async with _client(api, "alice") as alice, _client(api, "bob") as bob:
        created = await alice.post(
            "/api/v1/webhooks", json={"url": receiver.url("/ok"), "events": ["job.failed"]}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_")
        assert hook["events"] == ["job.failed"]
        listed = (await alice.get("/api/v1/webhooks")).json()["items"]
        assert [item["id"] for item in listed] == [hook["id"]]
        assert "secret" not in listed[0]

        pinged = await alice.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert pinged.status_code == 202

        async def ping_delivered() -> bool:
            items = (await alice.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
            return [item["status"] for item in items] == ["delivered"]

        await _until(ping_delivered)
        [request] = receiver.on("/ok")
        assert request.headers["X-Chromaline-Event"] == "ping"
        assert verify_signature(hook["secret"], request.headers["X-Chromaline-Signature"], request.body)

        [finished, failed] = await create_jobs(runtime, ORG_A, "fine.jpg", "bad.jpg", owner="u-alice")
        await finish_job(runtime, finished)
        await fail_job(runtime, failed)
        events = [
            item["event_type"]
            for item in (await alice.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).json()["items"]
        ]
        assert sorted(events) == ["job.failed", "ping"], "only the subscribed kinds are queued"

        for refused in (
            await bob.get(f"/api/v1/webhooks/{hook['id']}/deliveries"),
            await bob.post(f"/api/v1/webhooks/{hook['id']}/test"),
            await bob.delete(f"/api/v1/webhooks/{hook['id']}"),
        ):
            assert refused.status_code == 404
            assert refused.json()["code"] == "webhook_not_found"
        assert (await bob.get("/api/v1/webhooks")).json()["items"] == []

        unknown = await alice.post(
            "/api/v1/webhooks", json={"url": receiver.url("/ok"), "events": ["job.eaten"]}
        )
        assert unknown.status_code == 422

        assert (await alice.delete(f"/api/v1/webhooks/{hook['id']}")).status_code == 204
        assert (await alice.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).status_code == 404
        assert (await alice.get("/api/v1/webhooks")).json()["items"] == []


@pytest.mark.integration
async def test_webhooks_added_at_once_stay_within_the_limit(api: FastAPI, receiver: Receiver) -> None:
    async with _client(api, "alice") as alice:
        answers = await asyncio.gather(
            *(
                alice.post(
                    "/api/v1/webhooks", json={"url": receiver.url(f"/{index}"), "events": ["job.failed"]}
                )
                for index in range(MAX_WEBHOOKS_PER_ORGANISATION + 6)
            )
        )
        listed = (await alice.get("/api/v1/webhooks")).json()["items"]
    assert (
        sorted(answer.status_code for answer in answers) == [201] * MAX_WEBHOOKS_PER_ORGANISATION + [409] * 6
    )
    assert len(listed) == MAX_WEBHOOKS_PER_ORGANISATION


@pytest.mark.integration
async def test_a_webhook_has_a_bounded_number_of_pings_pending(api: FastAPI, receiver: Receiver) -> None:
    """Each ping is a delivery retried for hours, and every organisation's deliveries share each
    replica's few delivery slots: a member pinging a failing endpoint without end filled the
    delivery table and held every organisation's webhooks back."""
    async with _client(api, "alice") as alice:
        created = await alice.post(
            "/api/v1/webhooks", json={"url": receiver.url("/fail"), "events": ["job.failed"]}
        )
        hook = f"/api/v1/webhooks/{created.json()['id']}"
        answers = await asyncio.gather(*(alice.post(f"{hook}/test") for _ in range(MAX_PENDING_PINGS + 3)))
        deliveries = (await alice.get(f"{hook}/deliveries")).json()["items"]
    codes = sorted((answer.status_code, answer.json().get("code")) for answer in answers)
    assert codes == [(202, None)] * MAX_PENDING_PINGS + [(429, "too_many_pings")] * 3
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["Retry-After"]) > 0
    assert len(deliveries) == MAX_PENDING_PINGS


@pytest.mark.integration
async def test_pings_racing_the_webhooks_deletion_are_sent_or_not_found(
    api: FastAPI, receiver: Receiver
) -> None:
    async with _client(api, "alice") as alice:
        for _ in range(3):
            created = await alice.post(
                "/api/v1/webhooks", json={"url": receiver.url("/ok"), "events": ["job.failed"]}
            )
            hook = f"/api/v1/webhooks/{created.json()['id']}"
            answers = await asyncio.gather(
                alice.delete(hook), *(alice.post(f"{hook}/test") for _ in range(4))
            )
            assert {answer.status_code for answer in answers} <= {202, 204, 404}, [a.text for a in answers]


@pytest.mark.integration
async def test_private_urls_are_refused_unless_allowed(runtime: ServiceRuntime) -> None:
    strict = _app(runtime, _settings_of(runtime).model_copy(update={"webhook_allow_private_urls": False}))
    async with _client(strict, "alice") as alice:
        refused = await alice.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        metadata = await alice.post("/api/v1/webhooks", json={"url": "http://169.254.169.254/latest"})
        malformed = await alice.post("/api/v1/webhooks", json={"url": "http://[::1/hook"})
    for response in (refused, metadata, malformed):
        assert response.status_code == 422
        assert response.json()["code"] == "webhook_url_refused"
