"""Who reaches what: every gateway route against every kind of caller, and forged credentials.

The system and its callers are the ``world`` of conftest.py. The route matrix is generated from the app's route table: a route without an access rule or a probe here
fails the first test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from chromaline.auth.settings import AuthSettings
from chromaline.cli.processes import free_port
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.cgats import cgats_text
from chromaline.gateway.access import ROUTE_RULES, Permission
from chromaline.gateway.rate_limit import UploadBuckets
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings

from .conftest import PASSWORD, Caller, World, bearer, png, register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@dataclass(frozen=True)
class Probe:
    """One request to a route, and what an admitted caller of organisation A gets."""

    send: Callable[[World, httpx.Client, Caller], httpx.Response]
    allowed: int
    outsider: int | None = None
    """What a caller of another organisation gets, when the route touches one of A's resources."""


def _get(path: str) -> Callable[[World, httpx.Client, Caller], httpx.Response]:
    def send(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
        return client.get(path.format(w=world), headers=caller.headers)

    return send


def _upload(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post(
        "/api/v1/jobs", files=[("files", ("b.png", png(), "image/png"))], headers=caller.headers
    )


def _stream(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.put(
        "/api/v1/uploads/stream", params={"filename": "c.png"}, content=png(), headers=caller.headers
    )


def _presign(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post("/api/v1/uploads/presigned", json={"filename": "d.png"}, headers=caller.headers)


def _confirm(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post(f"/api/v1/uploads/{world.pending_upload_id}/confirm", headers=caller.headers)


def _save_profile(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post("/api/v1/profiles", json={"job_id": world.job_id, "name": "x"}, headers=caller.headers)


def _rename_profile(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.patch(
        f"/api/v1/profiles/{world.profile_id}", json={"name": "renamed"}, headers=caller.headers
    )


def _delete_profile(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.delete(f"/api/v1/profiles/{world.new_profile()}", headers=caller.headers)


def _create_chart(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    text = cgats_text([(30.0 + index, index - 3.0, 3.0 - index) for index in range(6)])
    return client.post(
        "/api/v1/charts",
        files={"file": ("c.txt", text.encode(), "text/plain")},
        data={"name": "c", "rows": "2", "columns": "3"},
        headers=caller.headers,
    )


def _delete_chart(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.delete(f"/api/v1/charts/{world.new_chart()}", headers=caller.headers)


def _delete_job(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.delete(f"/api/v1/jobs/{world.new_job()}", headers=caller.headers)


def _replay(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post(
        f"/api/v1/admin/dead-letters/detector/{uuid.uuid4().hex}/replay", headers=caller.headers
    )


def _mark_read(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=caller.headers)


def _post(path: str) -> Callable[[World, httpx.Client, Caller], httpx.Response]:
    def send(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
        return client.post(path.format(w=world), headers=caller.headers)

    return send


def _put_preferences(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.put("/api/v1/notifications/preferences", json={"in_app": True}, headers=caller.headers)


def _put_organisation_settings(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.put(
        "/api/v1/organisation/settings", json={"guideline": "fadgi2016"}, headers=caller.headers
    )


def _create_webhook(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.post(
        "/api/v1/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/hook"}, headers=caller.headers
    )


def _delete_webhook(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
    return client.delete(f"/api/v1/webhooks/{world.new_webhook()}", headers=caller.headers)


def _auth(method: str, path: str) -> Callable[[World, httpx.Client, Caller], httpx.Response]:
    def send(world: World, client: httpx.Client, caller: Caller) -> httpx.Response:
        body = {"email": "nobody@example.org"} if method == "POST" else None
        return client.request(method, path, json=body, headers=caller.headers)

    return send


PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/"): Probe(_get("/"), 200),
    ("GET", "/healthz"): Probe(_get("/healthz"), 200),
    ("GET", "/readyz"): Probe(_get("/readyz"), 200),
    ("GET", "/metrics"): Probe(_get("/metrics"), 200),
    ("GET", "/api/v1/auth/{path:path}"): Probe(_auth("GET", "/api/v1/auth/.well-known/jwks.json"), 200),
    ("POST", "/api/v1/auth/{path:path}"): Probe(_auth("POST", "/api/v1/auth/password/reset-request"), 202),
    ("PUT", "/api/v1/auth/{path:path}"): Probe(_auth("PUT", "/api/v1/auth/no-such-thing"), 404),
    ("PATCH", "/api/v1/auth/{path:path}"): Probe(_auth("PATCH", "/api/v1/auth/no-such-thing"), 404),
    ("DELETE", "/api/v1/auth/{path:path}"): Probe(_auth("DELETE", "/api/v1/auth/no-such-thing"), 404),
    ("POST", "/api/v1/jobs"): Probe(_upload, 202),
    ("PUT", "/api/v1/uploads/stream"): Probe(_stream, 202),
    ("POST", "/api/v1/uploads/presigned"): Probe(_presign, 501),
    ("POST", "/api/v1/uploads/{upload_id}/confirm"): Probe(_confirm, 409, outsider=404),
    ("GET", "/api/v1/jobs"): Probe(_get("/api/v1/jobs"), 200),
    ("GET", "/api/v1/jobs/{job_id}"): Probe(_get("/api/v1/jobs/{w.job_id}"), 200, outsider=404),
    ("DELETE", "/api/v1/jobs/{job_id}"): Probe(_delete_job, 202, outsider=404),
    ("GET", "/api/v1/batches/{batch_id}"): Probe(_get("/api/v1/batches/{w.batch_id}"), 200, outsider=404),
    ("GET", "/api/v1/jobs/{job_id}/files/{name}"): Probe(
        _get("/api/v1/jobs/{w.job_id}/files/original"), 200, outsider=404
    ),
    ("GET", "/api/v1/batches/{batch_id}/archive"): Probe(
        _get("/api/v1/batches/{w.batch_id}/archive"), 200, outsider=404
    ),
    ("POST", "/api/v1/profiles"): Probe(_save_profile, 409, outsider=404),
    ("GET", "/api/v1/profiles"): Probe(_get("/api/v1/profiles"), 200),
    ("PATCH", "/api/v1/profiles/{profile_id}"): Probe(_rename_profile, 200, outsider=404),
    ("DELETE", "/api/v1/profiles/{profile_id}"): Probe(_delete_profile, 204, outsider=404),
    ("GET", "/api/v1/profiles/{profile_id}/{name}"): Probe(
        _get("/api/v1/profiles/{w.profile_id}/profile.json"), 200, outsider=404
    ),
    ("POST", "/api/v1/charts"): Probe(_create_chart, 201),
    ("GET", "/api/v1/charts"): Probe(_get("/api/v1/charts"), 200),
    ("GET", "/api/v1/charts/{chart_id}"): Probe(_get("/api/v1/charts/{w.chart_id}"), 200, outsider=404),
    ("GET", "/api/v1/charts/{chart_id}/cgats"): Probe(
        _get("/api/v1/charts/{w.chart_id}/cgats"), 200, outsider=404
    ),
    ("DELETE", "/api/v1/charts/{chart_id}"): Probe(_delete_chart, 204, outsider=404),
    ("GET", "/api/v1/stats"): Probe(_get("/api/v1/stats"), 200),
    ("GET", "/api/v1/notifications"): Probe(_get("/api/v1/notifications"), 200),
    ("POST", "/api/v1/notifications/{notification_id}/read"): Probe(_mark_read, 404),
    ("POST", "/api/v1/notifications/read-all"): Probe(_post("/api/v1/notifications/read-all"), 200),
    ("GET", "/api/v1/notifications/preferences"): Probe(_get("/api/v1/notifications/preferences"), 200),
    ("PUT", "/api/v1/notifications/preferences"): Probe(_put_preferences, 200),
    ("GET", "/api/v1/organisation/settings"): Probe(_get("/api/v1/organisation/settings"), 200),
    ("PUT", "/api/v1/organisation/settings"): Probe(_put_organisation_settings, 200),
    ("GET", "/api/v1/webhooks"): Probe(_get("/api/v1/webhooks"), 200),
    ("POST", "/api/v1/webhooks"): Probe(_create_webhook, 201),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Probe(_delete_webhook, 204, outsider=404),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Probe(
        _get("/api/v1/webhooks/{w.webhook_id}/deliveries"), 200, outsider=404
    ),
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): Probe(
        _post("/api/v1/webhooks/{w.webhook_id}/test"), 202, outsider=404
    ),
    ("GET", "/api/v1/admin/dead-letters"): Probe(_get("/api/v1/admin/dead-letters"), 200),
    ("POST", "/api/v1/admin/dead-letters/{queue}/{letter_id}/replay"): Probe(_replay, 404),
}
WEBSOCKET_PROBES = {
    "/api/v1/jobs/{job_id}/events": "/api/v1/jobs/{w.job_id}/events",
    "/api/v1/batches/{batch_id}/events": "/api/v1/batches/{w.batch_id}/events",
}

CALLERS = (
    "anonymous",
    "outsider",
    "platform",
    "viewer",
    "member",
    "operator",
    "admin",
    "key_read",
    "key_upload",
    "key_admin",
)

ADMITTED: dict[Permission, frozenset[str]] = {
    "public": frozenset(CALLERS),
    "metrics": frozenset(CALLERS),
    "read": frozenset(CALLERS) - {"anonymous"},
    "upload": frozenset({"outsider", "platform", "member", "operator", "admin", "key_upload", "key_admin"}),
    "write": frozenset({"outsider", "platform", "member", "operator", "admin", "key_admin"}),
    "admin": frozenset({"outsider", "platform", "admin", "key_admin"}),
    "platform": frozenset({"platform"}),
}
"""The policy, stated apart from the code: who each kind of rule lets in (metrics as the world
runs them, with no metrics token; the outsider is the
admin of organisation B, so the role lets them in and the organisation keeps them out; the
platform operator is the admin of organisation P, with the platform role no organisation role gives)."""
OTHER_ORGANISATIONS = frozenset({"outsider", "platform"})


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """The routes, with those of included routers (which FastAPI keeps nested) in their place."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _flat_routes(included.routes) if included is not None else (route,)


def _routes(app: Any) -> list[tuple[str, str]]:
    keys = []
    for route in _flat_routes(app.routes):
        if isinstance(route, APIWebSocketRoute):
            keys.append(("WEBSOCKET", route.path))
        elif isinstance(route, APIRoute):
            keys.extend((method, route.path) for method in sorted(route.methods or ()))
    return keys


def test_every_route_has_an_access_rule_and_a_probe(world: World) -> None:
    routes = _routes(world.app)
    assert routes, "no routes found"
    missing_rules = [route for route in routes if route not in ROUTE_RULES]
    assert not missing_rules, f"routes without an access rule in chromaline.gateway.access: {missing_rules}"
    probed = set(PROBES) | {("WEBSOCKET", path) for path in WEBSOCKET_PROBES}
    assert not [route for route in routes if route not in probed], "routes without a probe in this test"


def _expected(rule: Permission, probe: Probe, caller: str) -> int:
    if caller not in ADMITTED[rule]:
        return 401 if caller == "anonymous" else 403
    if caller in OTHER_ORGANISATIONS and probe.outsider is not None:
        return probe.outsider
    return probe.allowed


@pytest.mark.parametrize("caller", CALLERS)
def test_the_route_matrix(world: World, caller: str) -> None:
    who = world.callers[caller]
    wrong = []
    with world.client() as client:
        for route in _routes(world.app):
            if route[0] == "WEBSOCKET":
                continue
            rule = ROUTE_RULES[route]
            expected = _expected(rule, PROBES[route], caller)
            response = PROBES[route].send(world, client, who)
            if response.status_code != expected:
                wrong.append(f"{route}: {response.status_code} (expected {expected}) {response.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_lists_show_only_the_callers_organisation(world: World) -> None:
    with world.client() as client:
        for path, known in (
            ("/api/v1/jobs", world.job_id),
            ("/api/v1/profiles", world.profile_id),
            ("/api/v1/charts", world.chart_id),
        ):
            own = {
                item["id"]
                for item in client.get(path, headers=world.callers["viewer"].headers).json()["items"]
            }
            other = {
                item["id"]
                for item in client.get(path, headers=world.callers["outsider"].headers).json()["items"]
            }
            assert known in own, path
            assert not own & other, path
        own_stats = client.get("/api/v1/stats", headers=world.callers["viewer"].headers).json()
        other_stats = client.get("/api/v1/stats", headers=world.callers["outsider"].headers).json()
    own_total = len(
        world.sql(
            "SELECT id FROM gateway.jobs WHERE organisation_id = :org AND state <> 'deleted'",
            org=world.organisation,
        )
    )
    assert sum(own_stats["jobs"].values()) == own_total, "deleted jobs are no jobs, in stats too"
    assert sum(other_stats["jobs"].values()) < len(world.sql("SELECT id FROM gateway.jobs"))
    assert own_stats["queue_depths"] == {}, "queue depths are for platform operators"
    with world.client() as client:
        platform_stats = client.get("/api/v1/stats", headers=world.callers["platform"].headers).json()
    assert set(platform_stats["queue_depths"]) == {
        "gateway",
        "detector",
        "corrector",
        "reporter",
        "reporter.requests",
    }


def test_webhooks_and_notifications_stay_in_their_organisation(world: World) -> None:
    admin_id = world.admin_tokens["user"]["id"]
    notice_id = str(uuid.uuid4())
    world.sql(
        "INSERT INTO gateway.notifications (id, user_id, organisation_id, kind, title, body) "
        "VALUES (:id, :user, :org, 'job.finished', 'a.png is ready', 'ready')",
        id=notice_id,
        user=admin_id,
        org=world.organisation,
    )
    with world.client() as client:

        def ids(path: str, caller: str) -> set[str]:
            answer = client.get(path, headers=world.callers[caller].headers)
            assert answer.status_code == 200, answer.text
            return {item["id"] for item in answer.json()["items"]}

        assert world.webhook_id in ids("/api/v1/webhooks", "member")
        assert world.webhook_id not in ids("/api/v1/webhooks", "outsider")
        assert notice_id in ids("/api/v1/notifications", "admin")
        for other in ("member", "operator", "outsider"):
            assert notice_id not in ids("/api/v1/notifications", other)
            refused = client.post(
                f"/api/v1/notifications/{notice_id}/read", headers=world.callers[other].headers
            )
            assert refused.status_code == 404
        marked = client.post(
            f"/api/v1/notifications/{notice_id}/read", headers=world.callers["admin"].headers
        )
        assert marked.status_code == 200
        assert marked.json()["read_at"] is not None


def _websocket_outcome(world: World, path: str, caller: Caller) -> str:
    url = world.url.replace("http://", "ws://") + path.format(w=world) + caller.ws_query
    try:
        with connect(url, open_timeout=10) as socket_:
            try:
                json.loads(socket_.recv(timeout=10))
                return "followed"
            except ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
    except InvalidStatus as refused:
        return f"refused {refused.response.status_code}"


@pytest.mark.parametrize("path", sorted(WEBSOCKET_PROBES))
def test_websockets_follow_only_the_callers_organisation(world: World, path: str) -> None:
    outcomes = {
        name: _websocket_outcome(world, WEBSOCKET_PROBES[path], caller)
        for name, caller in world.callers.items()
        if "Authorization" in caller.headers or name == "anonymous"
    }
    expected = {
        name: "refused 403"
        if name not in ADMITTED[ROUTE_RULES[("WEBSOCKET", path)]]
        else ("closed 4404" if name in OTHER_ORGANISATIONS else "followed")
        for name in outcomes
    }
    assert outcomes == expected


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_key(world: World) -> tuple[str, Ed25519PrivateKey]:
    [(kid, pem)] = world.sql(
        "SELECT kid, private_key FROM auth.signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
    )
    secret = world.standalone.runtimes["auth"].settings.signing_secret.get_secret_value().encode()
    key = serialization.load_pem_private_key(pem.encode(), password=secret)
    assert isinstance(key, Ed25519PrivateKey)
    return str(kid), key


def _claims(world: World, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    organisation = world.organisation
    claims: dict[str, Any] = {
        "sub": world.admin_tokens["user"]["id"],
        "org": organisation,
        "role": "admin",
        "orgs": {organisation: "admin"},
        "iss": "chromaline-auth",
        "aud": "chromaline",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=10),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    claims.update(changes)
    return claims


def _hs256_with_public_key(world: World, kid: str, key: Ed25519PrivateKey) -> str:
    """HMAC-signed with the public key as the secret: the classic algorithm confusion."""
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {
        name: int(value.timestamp()) if isinstance(value, datetime) else value
        for name, value in _claims(world).items()
    }
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())}"


def _unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none`` and no signature at all."""
    numeric = {
        name: int(value.timestamp()) if isinstance(value, datetime) else value
        for name, value in claims.items()
    }
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(numeric).encode())}."


def _tampered(token: str, **changes: Any) -> str:
    """``token`` with claims changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _forged_credentials(world: World) -> tuple[str, dict[str, dict[str, str]]]:
    """A genuine access token (admin of A, signed with the current key), and credentials forged
    or gone stale in every way we know of, each as the headers that present it."""
    kid, key = _signing_key(world)
    now = datetime.now(UTC)

    def signed(claims: dict[str, Any], with_key: Any = key, algorithm: str = "EdDSA") -> str:
        return jwt.encode(claims, with_key, algorithm=algorithm, headers={"kid": kid})

    genuine = signed(_claims(world))
    tokens = {
        "alg none": _unsigned(_claims(world), kid),
        "HS256 keyed with the public key": _hs256_with_public_key(world, kid, key),
        "another key": signed(_claims(world), Ed25519PrivateKey.generate()),
        "expired": signed(
            _claims(
                world,
                iat=now - timedelta(hours=2),
                nbf=now - timedelta(hours=2),
                exp=now - timedelta(minutes=5),
            )
        ),
        "not yet valid": signed(
            _claims(world, nbf=now + timedelta(minutes=10), exp=now + timedelta(minutes=20))
        ),
        "tampered claims": _tampered(genuine, role="operator"),
        "platform claim added": _tampered(genuine, platform=True),
        "wrong audience": signed(_claims(world, aud="someone-else")),
        "a refresh token": world.admin_tokens["refresh_token"],
    }
    forged = {name: bearer(token) for name, token in tokens.items()}
    forged["made-up API key"] = {"X-API-Key": f"clk_{uuid.uuid4().hex}"}
    forged["API key longer than any"] = {"X-API-Key": f"clk_{'a' * 300}"}
    return genuine, forged


def test_forged_or_stale_tokens_are_refused(world: World) -> None:
    genuine, forged = _forged_credentials(world)
    with world.client() as client:
        assert client.get("/api/v1/jobs", headers=bearer(genuine)).status_code == 200
        statuses = {
            name: client.get("/api/v1/jobs", headers=headers).status_code for name, headers in forged.items()
        }
    assert statuses == dict.fromkeys(forged, 401)


def test_every_route_refuses_every_forged_credential(world: World) -> None:
    _, forged = _forged_credentials(world)
    wrong = []
    with world.client() as client:
        for name, headers in forged.items():
            caller = Caller(name, headers)
            for route in _routes(world.app):
                if route[0] == "WEBSOCKET":
                    continue
                probe = PROBES[route]
                expected = probe.allowed if ROUTE_RULES[route] in ("public", "metrics") else 401
                response = probe.send(world, client, caller)
                if response.status_code != expected:
                    wrong.append(f"{name} {route}: {response.status_code} (expected {expected})")
    assert not wrong, "\n".join(wrong)


def test_a_revoked_api_key_stops_working_at_once(world: World) -> None:
    with world.client() as client:
        created = client.post(
            "/api/v1/auth/api-keys",
            json={"name": "soon revoked", "scopes": ["read"]},
            headers=bearer(world.admin_tokens["access_token"]),
        ).json()
        key = {"Authorization": f"Bearer {created['key']}"}
        assert client.get("/api/v1/jobs", headers=key).status_code == 200
        revoked = client.delete(
            f"/api/v1/auth/api-keys/{created['id']}", headers=bearer(world.admin_tokens["access_token"])
        )
        assert revoked.status_code == 204
        assert client.get("/api/v1/jobs", headers=key).status_code == 401


def test_refresh_reuse_and_sign_in_throttling_through_the_gateway(world: World) -> None:
    with world.client() as client:
        person = register(client, "Organisation C")
        rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]})
        assert rotated.status_code == 200
        reused = client.post("/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]})
        assert (reused.status_code, reused.json()["code"]) == (401, "refresh_token_reused")
        family = client.post("/api/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]})
        assert family.status_code == 401

        email = person["user"]["email"]
        settings = world.standalone.runtimes["auth"].settings
        assert isinstance(settings, AuthSettings)
        limit = settings.throttle_max_failures_per_account
        for _ in range(limit):
            failed = client.post("/api/v1/auth/login", json={"email": email, "password": "wrong guess!"})
            assert failed.status_code == 401
        held = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert held.status_code == 429
        assert held.json()["code"] == "too_many_attempts"
        assert int(held.headers["Retry-After"]) > 0


def test_acting_for_an_organisation_needs_a_membership_there(world: World) -> None:
    outsider = world.callers["outsider"].headers
    with world.client() as client:
        elsewhere = client.get("/api/v1/jobs", headers={**outsider, "X-Organisation-ID": world.organisation})
        as_member = client.get("/api/v1/jobs", headers=world.callers["member"].headers)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "not_a_member")
    assert world.job_id in {item["id"] for item in as_member.json()["items"]}


def test_security_headers(world: World) -> None:
    with world.client() as client:
        response = client.get("/api/v1/jobs", headers=world.callers["viewer"].headers)
        over_https = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_uploads_beyond_the_burst_answer_429(world: World) -> None:
    access = world.app.state.access
    original = access.uploads
    access.uploads = UploadBuckets(world.standalone.runtimes["gateway"], rate_per_second=0.001, burst=1)
    try:
        with world.client() as client:
            first = _upload(world, client, world.callers["member"])
            second = _upload(world, client, world.callers["member"])
            other = _upload(world, client, world.callers["key_upload"])
    finally:
        access.uploads = original
    assert first.status_code == 202
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0
    assert other.status_code == 202, "each user and each key has a bucket of its own"


def test_a_profile_is_named_only_by_id_within_the_callers_organisation(world: World) -> None:
    [(profile_blob,)] = world.sql("SELECT blob FROM gateway.profiles WHERE id = :id", id=world.profile_id)
    with world.client() as client:
        smuggled = client.post(
            "/api/v1/uploads/presigned",
            json={"filename": "d.png", "options": {"profile": profile_blob}},
            headers=world.callers["outsider"].headers,
        )
        by_id_elsewhere = client.post(
            "/api/v1/uploads/presigned",
            json={"filename": "d.png", "profile_id": world.profile_id},
            headers=world.callers["outsider"].headers,
        )
        streamed_elsewhere = client.put(
            "/api/v1/uploads/stream",
            params={"filename": "c.png", "profile_id": world.profile_id},
            content=png(),
            headers=world.callers["outsider"].headers,
        )
    assert (smuggled.status_code, smuggled.json()["code"]) == (422, "invalid_request")
    assert (by_id_elsewhere.status_code, by_id_elsewhere.json()["code"]) == (404, "profile_not_found")
    assert (streamed_elsewhere.status_code, streamed_elsewhere.json()["code"]) == (404, "profile_not_found")


def _closed_schema_problems(document: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> list[str]:
    """Object schemas reachable from ``schema`` that admit fields they do not name."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _closed_schema_problems(document, document["components"]["schemas"][name], seen)
    problems = []
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and schema.get("additionalProperties") is not False
    ):
        problems.append(str(schema.get("title", schema)))
    for key in ("properties",):
        for child in schema.get(key, {}).values():
            problems += _closed_schema_problems(document, child, seen)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for child in schema.get(key, []):
            problems += _closed_schema_problems(document, child, seen)
    if isinstance(schema.get("items"), dict):
        problems += _closed_schema_problems(document, schema["items"], seen)
    return problems


def test_every_request_body_refuses_unknown_fields(world: World) -> None:
    documents = {"gateway": world.app.openapi(), "auth": world.standalone.auth_app().openapi()}
    open_bodies = []
    for service, document in documents.items():
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                content = operation.get("requestBody", {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                if schema is not None:
                    problems = _closed_schema_problems(document, schema, set())
                    open_bodies += [f"{service} {method.upper()} {path}: {name}" for name in problems]
    assert not open_bodies, "request bodies admitting unknown fields:\n" + "\n".join(open_bodies)


def test_only_a_platform_operator_names_another(world: World) -> None:
    with world.client() as client:
        person = register(client, "Organisation D")
        email = person["user"]["email"]
        by_admin = client.post(
            "/api/v1/auth/platform/operators", json={"email": email}, headers=world.callers["admin"].headers
        )
        me_before = client.get("/api/v1/auth/me", headers=bearer(person["access_token"])).json()
        granted = client.post(
            "/api/v1/auth/platform/operators",
            json={"email": email},
            headers=world.callers["platform"].headers,
        )
        refreshed = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]}
        ).json()
        letters = client.get("/api/v1/admin/dead-letters", headers=bearer(refreshed["access_token"]))
        me_after = client.get("/api/v1/auth/me", headers=bearer(refreshed["access_token"])).json()
        revoked = client.delete(
            f"/api/v1/auth/platform/operators/{person['user']['id']}",
            headers=world.callers["platform"].headers,
        )
    assert (by_admin.status_code, by_admin.json()["code"]) == (403, "not_a_platform_operator")
    assert me_before["platform_operator"] is False
    assert granted.status_code == 201, granted.text
    assert letters.status_code == 200
    assert me_after["platform_operator"] is True
    assert revoked.status_code == 204
    actions = world.sql(
        "SELECT action FROM auth.audit_log WHERE user_id = :user ORDER BY id", user=person["user"]["id"]
    )
    assert [action for (action,) in actions][-2:] == [
        "platform.operator_granted",
        "platform.operator_revoked",
    ]


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 65536
        sent += 65536


@pytest.mark.parametrize(
    ("method", "path", "caller"),
    [
        ("POST", "/api/v1/auth/register", "anonymous"),
        ("POST", "/api/v1/auth/login", "anonymous"),
        ("POST", "/api/v1/webhooks", "admin"),
        ("POST", "/api/v1/uploads/presigned", "member"),
    ],
)
def test_a_body_over_the_limit_is_refused_before_it_is_read(
    world: World, method: str, path: str, caller: str
) -> None:
    limit = world.standalone.runtimes["gateway"].settings.max_request_body_bytes
    headers = {**world.callers[caller].headers, "Content-Type": "application/json"}
    declared = _declare_a_huge_body(world, method, path, headers)
    assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]
    assert b'"code":"body_too_large"' in declared
    with world.client() as client:
        streamed = client.request(method, path, content=_chunks(limit * 4), headers=headers)
    assert streamed.status_code == 413, streamed.text
    assert streamed.headers["content-type"] == "application/problem+json"
    assert streamed.json()["code"] == "body_too_large"


def _declare_a_huge_body(world: World, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Declare a 1 GiB body, send none of it, and read what the server answers within 30 s (the
    standalone world may be busy correcting other tests' photos in its worker threads)."""
    host, port = world.url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {1024**3}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"body_too_large" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    return answer


def test_metrics_need_the_metrics_token_once_one_is_set(world: World) -> None:
    access = world.app.state.access
    access.metrics_token = "scrape-secret-for-tests"
    try:
        with world.client() as client:
            answers = {
                name: client.get("/metrics", headers=headers).status_code
                for name, headers in {
                    "none": {},
                    "admin": world.callers["admin"].headers,
                    "wrong": bearer("not-the-token"),
                    "token": bearer("scrape-secret-for-tests"),
                }.items()
            }
    finally:
        access.metrics_token = None
    assert answers == {"none": 401, "admin": 401, "wrong": 401, "token": 200}


def test_in_production_metrics_are_not_served_without_a_token(world: World) -> None:
    access = world.app.state.access
    access.metrics_without_token = False
    try:
        with world.client() as client:
            refused = client.get("/metrics", headers=world.callers["admin"].headers)
    finally:
        access.metrics_without_token = True
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert "# HELP" not in refused.text


def test_production_settings_close_metrics_without_a_token() -> None:
    settings = GatewaySettings(environment="production", signing_secret="a real secret for this test only")
    assert build_app(ServiceRuntime(SPEC, settings), settings).state.access.metrics_without_token is False
    development = GatewaySettings()
    assert (
        build_app(ServiceRuntime(SPEC, development), development).state.access.metrics_without_token is True
    )
