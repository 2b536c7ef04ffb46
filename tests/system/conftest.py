"""The whole system, started as in production or in one process, driven through its public API.

``distributed`` starts each service as its own process (``chromaline-<service> serve``, the
containers' entry point) against the real RabbitMQ (own virtual host), PostgreSQL (own database)
and S3 server; ``standalone`` runs every service in this process on the embedded defaults
(in-process bus, embedded PostgreSQL, blobs in a folder). The scenarios run against both.

Every scenario runs signed in: ``System.client()`` carries the access token of a user registered
once per system (the admin of an organisation of their own); ``System.sign_up()`` makes others.
In the distributed system two partners (broker users with the permissions docs/partners.md
gives) may publish photos, and a third broker user with the same permissions is no partner.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import pytest

from chromaline.cli.processes import ServiceProcess, free_port, wait_ready
from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.testing.rabbitmq import RabbitAdmin, RabbitBroker
from chromaline.common.testing.services import missing_service

SERVICES = ("auth", "gateway", "detector", "corrector", "reporter")
PASSWORD = "system-test-password-4d2b"
TEST_SECRET = "system-test-signing-secret-7c1e"


def sign_up(base_url: str, organisation: str = "Studio") -> dict[str, Any]:
    """Register a new user, admin of a new organisation: the tokens, user and organisation."""
    registered = httpx.post(
        f"{base_url}/api/v1/auth/register",
        json={
            "email": f"{uuid.uuid4().hex[:12]}@example.org",
            "password": PASSWORD,
            "display_name": organisation,
            "organisation_name": organisation,
        },
        timeout=60,
    )
    assert registered.status_code == 201, registered.text
    account: dict[str, Any] = registered.json()
    return account


@dataclass
class System:
    """A running system: its gateway URL and, when distributed, its processes and stores."""

    mode: str
    base_url: str
    amqp_url: str | None = None
    database_url: str | None = None
    blob_url: str | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    partners: dict[str, str] = field(default_factory=dict)
    """Broker user → AMQP URL (with its password) for each partner, and for the ``stranger``."""
    account: dict[str, Any] | None = None
    platform_account: dict[str, Any] | None = None

    def sign_up(self, organisation: str = "Studio") -> dict[str, Any]:
        return sign_up(self.base_url, organisation)

    def platform_operator(self) -> dict[str, Any]:
        """A user made platform operator with ``chromaline platform grant`` (distributed system),
        signed in afresh so the access token carries the role; made once per system."""
        if self.platform_account is not None:
            return self.platform_account
        assert self.database_url is not None, "the CLI needs the system's database"
        account = self.sign_up("Platform")
        subprocess.run(
            [str(Path(sys.executable).parent / "chromaline"), "platform", "grant", account["user"]["email"]],
            env={
                **os.environ,
                "CHROMALINE_DATABASE_URL": self.database_url,
                "CHROMALINE_SIGNING_SECRET": TEST_SECRET,
            },
            check=True,
            capture_output=True,
            timeout=120,
        )
        refreshed = httpx.post(
            f"{self.base_url}/api/v1/auth/refresh",
            json={"refresh_token": account["refresh_token"]},
            timeout=60,
        )
        assert refreshed.status_code == 200, refreshed.text
        self.platform_account = {**account, **refreshed.json()}
        return self.platform_account

    def client(self, account: dict[str, Any] | None = None) -> httpx.Client:
        """A client signed in as ``account``, by default the system's first user."""
        if account is None:
            self.account = self.account or self.sign_up()
            account = self.account
        return httpx.Client(
            base_url=self.base_url,
            timeout=120,
            headers={"Authorization": f"Bearer {account['access_token']}"},
        )


def _plain_postgres(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _create_database(url: str, name: str) -> None:
    connection = await asyncpg.connect(_plain_postgres(url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(url: str, name: str) -> None:
    connection = await asyncpg.connect(_plain_postgres(url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def add_partner_user(admin: RabbitAdmin, amqp_url: str, vhost: str, name: str) -> str:
    """A broker user limited as docs/partners.md sets a partner up; its AMQP URL."""
    password = secrets.token_hex(16)
    own = name.replace(".", r"\.")
    admin.run(["add_user", name, password])
    admin.run(
        [
            "set_permissions",
            "-p",
            vhost,
            name,
            f"^{own}\\..*",
            f"^(chromaline|{own}\\..*)$",
            f"^(chromaline|{own}\\..*)$",
        ]
    )
    admin.run(
        [
            "set_topic_permissions",
            "-p",
            vhost,
            name,
            "chromaline",
            r"^image\.uploaded$",
            r"^(image\.corrected|report\.ready|processing\.failed|chart\.not_found)$",
        ]
    )
    parts = urlsplit(amqp_url)
    return parts._replace(
        netloc=f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    ).geturl()


@pytest.fixture(scope="module")
def distributed_system(
    rabbitmq_broker: RabbitBroker, postgres_url: str, s3_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    admin = rabbitmq_broker.admin
    if admin is None:
        missing_service("rabbitmqctl", "system tests run on a virtual host of their own")
    vhost = f"chromaline-system-{uuid.uuid4().hex[:10]}"
    user = urlsplit(rabbitmq_broker.url).username or "guest"
    admin.add_vhost(vhost, user)
    amqp_url = urlsplit(rabbitmq_broker.url)._replace(path=f"/{vhost}").geturl()
    database = f"chromaline_system_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(postgres_url, database))
    database_url = _with_database(postgres_url, database)
    logs = tmp_path_factory.mktemp("service-logs")
    suffix = uuid.uuid4().hex[:6]
    partners = {
        name: add_partner_user(admin, amqp_url, vhost, name)
        for name in (f"acme-{suffix}", f"globex-{suffix}", f"stranger-{suffix}")
    }
    env = {
        **os.environ,
        "CHROMALINE_ENVIRONMENT": "test",
        "CHROMALINE_SIGNING_SECRET": TEST_SECRET,
        "CHROMALINE_BUS_URL": amqp_url,
        "CHROMALINE_DATABASE_URL": database_url,
        "CHROMALINE_BLOB_URL": s3_url,
        # every test user signs up from 127.0.0.1
        "CHROMALINE_AUTH_SIGN_UP_MAX_PER_ADDRESS": "1000",
        "CHROMALINE_LOG_FORMAT": "json",
        "CHROMALINE_PARTNERS": ",".join(name for name in partners if not name.startswith("stranger-")),
    }
    processes = {name: ServiceProcess(name, free_port(), env, logs / f"{name}.log") for name in SERVICES}
    env["CHROMALINE_GATEWAY_AUTH_URL"] = processes["auth"].url
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready()
        yield System(
            mode="distributed",
            base_url=processes["gateway"].url,
            amqp_url=amqp_url,
            database_url=database_url,
            blob_url=s3_url,
            processes=processes,
            partners=partners,
        )
    finally:
        for process in processes.values():
            process.stop()
        asyncio.run(_drop_database(postgres_url, database))
        admin.delete_vhost(vhost)
        for name in partners:
            admin.run(["delete_user", name])


@pytest.fixture(scope="module")
def standalone_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("standalone")
    overrides: dict[str, Any] = {
        "bus_url": f"memory://system-{uuid.uuid4().hex[:8]}",
        "database_url": f"embedded://{root / 'postgres'}",
        "blob_url": f"file://{root / 'blobs'}",
    }
    system = Standalone.build(overrides)
    auth = system.runtimes["auth"]
    auth.settings = auth.settings.model_copy(update={"sign_up_max_per_address": 1000})  # all from 127.0.0.1
    port = free_port()
    with BackgroundServer(system.gateway_app(), "127.0.0.1", port):
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield System(mode="standalone", base_url=url)


@pytest.fixture(scope="module", params=["distributed", "standalone"])
def system(request: pytest.FixtureRequest) -> System:
    """Each scenario runs against both the distributed and the one-process system."""
    return request.getfixturevalue(f"{request.param}_system")  # type: ignore[no-any-return]
