"""The whole system in this process, on the real PostgreSQL, for the gateway's security tests.

The standalone wiring (auth reached in process, the in-memory bus), in a database of its own,
served by uvicorn on 127.0.0.1, with organisation A's resources and a caller of every kind:
anonymous, the admin of another organisation (``outsider``), a platform operator (admin of an
organisation of their own), A's viewer, member, operator and admin, and A's API keys by scope.
Each test module that asks for ``world`` gets one of its own.

The gateway app alone in process (``api_client``): callers named by the ``X-Test-Org`` header
(an admin of that organisation), its blobs in a folder.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from PIL import Image
from sqlalchemy.ext.asyncio import create_async_engine

from chromaline.auth.accounts import user_by_email
from chromaline.auth.platform import set_platform_operator
from chromaline.cli.processes import free_port, wait_ready
from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.filesystem import METADATA_DIR
from chromaline.common.cgats import parse_cgats
from chromaline.common.events.contracts import CustomChart
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.cgats import cgats_text
from chromaline.common.testing.postgres import fresh_database
from chromaline.gateway.access import Principal, authorize
from chromaline.gateway.service import SPEC, build_app
from chromaline.gateway.settings import GatewaySettings
from chromaline.gateway.testing import ApiClient

PASSWORD = "a long enough password"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Caller:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every request: the credential and, for added members, the organisation chosen."""

    @property
    def ws_query(self) -> str:
        authorization = self.headers.get("Authorization", "")
        organisation = self.headers.get("X-Organisation-ID")
        query = f"?access_token={authorization.removeprefix('Bearer ')}" if authorization else ""
        return query + (f"&organisation={organisation}" if organisation and query else "")


@dataclass
class World:
    """The running system, its callers and organisation A's resources."""

    url: str
    app: Any
    standalone: Standalone
    database_url: str
    callers: dict[str, Caller]
    organisation: str
    job_id: str
    batch_id: str
    profile_id: str
    pending_upload_id: str
    admin_tokens: dict[str, Any]
    server: BackgroundServer
    blob_root: Path
    webhook_id: str = ""
    chart_id: str = ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        async def run() -> list[Any]:
            engine = create_async_engine(self.database_url)
            try:
                async with engine.begin() as connection:
                    result = await connection.execute(sa.text(statement), params)
                    return list(result.all()) if result.returns_rows else []
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def new_profile(self) -> str:
        profile_id = str(uuid.uuid4())
        [(original,)] = self.sql("SELECT original FROM gateway.jobs WHERE id = :id", id=self.job_id)
        self.sql(
            "INSERT INTO gateway.profiles (id, organisation_id, name, source_job_id, blob, created_at) "
            "VALUES (:id, :org, 'p', :job, CAST(:blob AS jsonb), now())",
            id=profile_id,
            org=self.organisation,
            job=self.job_id,
            blob=json.dumps(original),
        )
        return profile_id

    def new_job(self, state: str = "failed") -> str:
        """A job of organisation A in ``state``, made in the gateway's table (by default a finished
        one, for probes that delete one; a ``queued`` one waits for the detector for good)."""
        job_id = str(uuid.uuid4())
        self.sql(
            "INSERT INTO gateway.jobs (id, organisation_id, filename, state, options, original, results, "
            "warnings, stage_times) VALUES (:id, :org, 'gone.png', :state, '{}'::jsonb, CAST(:original AS jsonb), "
            "'{}'::jsonb, '[]'::jsonb, '{}'::jsonb)",
            id=job_id,
            state=state,
            org=self.organisation,
            original=json.dumps({"bucket": "chromaline-originals", "key": f"nowhere/{job_id}.png"}),
        )
        return job_id

    def new_chart(self) -> str:
        """A custom chart of organisation A, made in the gateway's table."""
        chart_id = uuid.uuid4()
        text = cgats_text([(20.0 + 2 * index, index - 6.0, 6.0 - index) for index in range(12)])
        definition = CustomChart.from_reference(
            parse_cgats(text), name="c", rows=3, columns=4, gap=0.1, margin=0.5, chart_id=chart_id
        )
        self.sql(
            "INSERT INTO gateway.custom_charts (id, organisation_id, name, definition, filename, source, "
            "created_by) VALUES (:id, :org, 'c', CAST(:definition AS jsonb), 'c.txt', :source, 'someone')",
            id=str(chart_id),
            org=self.organisation,
            definition=definition.model_dump_json(),
            source=text,
        )
        return str(chart_id)

    def new_webhook(self) -> str:
        """A webhook of organisation A, to a closed port on 127.0.0.1 (deliveries only fail there)."""
        webhook_id = str(uuid.uuid4())
        self.sql(
            "INSERT INTO gateway.webhooks (id, organisation_id, owner_id, url, events, secret_salt) "
            "VALUES (:id, :org, 'someone', :url, ARRAY['job.finished'], 'salt')",
            id=webhook_id,
            org=self.organisation,
            url=f"http://127.0.0.1:{free_port()}/hook",
        )
        return webhook_id

    def blob_files(self) -> set[str]:
        """Every object in the blob store, as paths under its root (metadata files left out)."""
        return {
            str(path.relative_to(self.blob_root))
            for path in self.blob_root.rglob("*")
            if path.is_file() and METADATA_DIR not in path.relative_to(self.blob_root).parts
        }


def register(client: httpx.Client, organisation: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/register",
        json={
            "email": f"{uuid.uuid4().hex[:10]}@example.org",
            "password": PASSWORD,
            "display_name": organisation,
            "organisation_name": organisation,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def join(client: httpx.Client, admin: dict[str, Any], role: str) -> Caller:
    """Register someone, make them ``role`` in the admin's organisation, act there."""
    person = register(client, f"own-{role}")
    organisation = admin["organisation"]["id"]
    added = client.post(
        f"/api/v1/auth/organisations/{organisation}/members",
        json={"email": person["user"]["email"], "role": role},
        headers=bearer(admin["access_token"]),
    )
    assert added.status_code == 201, added.text
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]}).json()
    return Caller(role, {**bearer(refreshed["access_token"]), "X-Organisation-ID": organisation})


async def grant_platform_role(runtime: Any, email: str) -> None:
    async with runtime.session() as session, session.begin():
        user = await user_by_email(session, email)
        await set_platform_operator(session, user, True, actor_id=None, client_address="test")


def platform_operator(client: httpx.Client, server: BackgroundServer, system: Standalone) -> Caller:
    """A platform operator: admin of an organisation of their own, with the platform role granted."""
    person = register(client, "Platform")
    server.run(grant_platform_role(system.runtimes["auth"], person["user"]["email"]))
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": person["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    return Caller("platform", bearer(refreshed.json()["access_token"]))


def api_key(client: httpx.Client, admin: dict[str, Any], scope: str) -> Caller:
    created = client.post(
        "/api/v1/auth/api-keys",
        json={"name": scope, "scopes": [scope]},
        headers=bearer(admin["access_token"]),
    )
    assert created.status_code == 201, created.text
    return Caller(f"key_{scope}", {"X-API-Key": created.json()["key"]})


@pytest.fixture(scope="module")
def world(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("access")
    with fresh_database(postgres_url) as database_url:
        system = Standalone.build(
            {
                "bus_url": f"memory://access-{uuid.uuid4().hex[:8]}",
                "database_url": database_url,
                "blob_url": f"file://{root / 'blobs'}",
            }
        )
        gateway = system.runtimes["gateway"]
        gateway.settings = gateway.settings.model_copy(update={"webhook_allow_private_urls": True})
        auth = system.runtimes["auth"]
        auth.settings = auth.settings.model_copy(
            update={"reset_max_per_address": 1000, "sign_up_max_per_address": 1000}  # all from 127.0.0.1
        )
        app = system.gateway_app()
        port = free_port()
        with (
            BackgroundServer(app, "127.0.0.1", port) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            admin = register(client, "Organisation A")
            outsider = register(client, "Organisation B")
            callers = {
                "anonymous": Caller("anonymous"),
                "outsider": Caller("outsider", bearer(outsider["access_token"])),
                "platform": platform_operator(client, server, system),
                **{role: join(client, admin, role) for role in ("viewer", "member", "operator")},
                "admin": Caller("admin", bearer(admin["access_token"])),
                **{f"key_{scope}": api_key(client, admin, scope) for scope in ("read", "upload", "admin")},
            }
            uploaded = client.post(
                "/api/v1/jobs",
                files=[("files", ("a.png", png(), "image/png"))],
                headers=callers["admin"].headers,
            )
            assert uploaded.status_code == 202, uploaded.text
            batch = uploaded.json()
            world = World(
                url=url,
                app=app,
                standalone=system,
                database_url=database_url,
                callers=callers,
                organisation=admin["organisation"]["id"],
                job_id=batch["jobs"][0]["id"],
                batch_id=batch["id"],
                profile_id="",
                pending_upload_id=str(uuid.uuid4()),
                admin_tokens=admin,
                server=server,
                blob_root=root / "blobs",
            )
            world.profile_id = world.new_profile()
            world.webhook_id = world.new_webhook()
            world.chart_id = world.new_chart()
            world.sql(
                "INSERT INTO gateway.pending_uploads (id, organisation_id, filename, blob, options, expires_at) "
                "VALUES (:id, :org, 'late.png', CAST(:blob AS jsonb), '{}'::jsonb, now() + interval '1 hour')",
                id=world.pending_upload_id,
                org=world.organisation,
                blob=json.dumps({"bucket": "chromaline-originals", "key": "nowhere/late.png"}),
            )
            yield world


@pytest.fixture
def presigning_store(world: World, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    """The world's blob store handing out upload URLs as S3 would (the URL's path is
    ``/<bucket>/<key>``; a test writes through it with ``put_bytes``)."""
    store = world.standalone.blobs

    async def presign(bucket: str, key: str, expires: timedelta) -> str:
        return f"https://blobs.example/{bucket}/{key}?signature=test"

    monkeypatch.setattr(store, "presigned_put_url", presign)
    return store


@asynccontextmanager
async def _started_elsewhere(app: FastAPI) -> AsyncIterator[None]:
    yield


def caller_user_id(organisation: str) -> str:
    """The id of the admin ``api_client(organisation)`` calls as (auth's user ids are UUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chromaline-test-user:{organisation}"))


def _caller(request: Request) -> Principal:
    organisation = request.headers["X-Test-Org"]
    return Principal(
        caller_user_id(organisation),
        organisation,
        "admin",
        api_key_id=request.headers.get("X-Test-Api-Key"),
    )


@pytest.fixture
async def api_runtime(service_database_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://api-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{tmp_path}",
        webhook_allow_private_urls=True,
    )
    started = ServiceRuntime(SPEC, settings)
    await started.start(consume=False)
    yield started
    await started.stop()


@pytest.fixture
def api_client(api_runtime: ServiceRuntime) -> ApiClient:
    settings = api_runtime.settings
    assert isinstance(settings, GatewaySettings)
    app = build_app(api_runtime, settings, lifespan=_started_elsewhere)
    app.dependency_overrides[authorize] = _caller

    def for_organisation(organisation: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"X-Test-Org": organisation},
        )

    return for_organisation
