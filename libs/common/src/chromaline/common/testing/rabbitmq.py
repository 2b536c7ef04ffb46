"""Pytest fixtures for tests against a real RabbitMQ.

``amqp_url`` finds a broker once per test session (see :mod:`chromaline.common.testing.services`
for the order). ``isolated_amqp_url`` gives each test a virtual host of its own, deleted afterwards
with everything in it, when ``rabbitmqctl`` can reach the broker; otherwise tests share the URL's
virtual host and keep apart through unique exchange and queue names (``rabbit_bus_factory`` and
``unique_name`` provide them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import pytest

from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.testing.services import docker_engine_answers, missing_service, port_answers

URL_VARIABLE = "CHROMALINE_TEST_AMQP_URL"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5672
LOCAL_URL = f"amqp://guest:guest@{LOCAL_HOST}:{LOCAL_PORT}/"
CONTAINER_IMAGE = "rabbitmq:3.10"
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _Exec(Protocol):
    def __call__(self, arguments: Sequence[str]) -> str: ...


@dataclass(frozen=True)
class RabbitAdmin:
    """``rabbitmqctl`` for the broker the tests use, run on this host or inside its container."""

    run: _Exec

    def add_vhost(self, vhost: str, user: str) -> None:
        self.run(["add_vhost", vhost])
        self.run(["set_permissions", "-p", vhost, user, ".*", ".*", ".*"])

    def delete_vhost(self, vhost: str) -> None:
        self.run(["delete_vhost", vhost])

    def close_connections(self, vhost: str, reason: str) -> int:
        """Close, as the broker would on trouble, every client connection to ``vhost``; returns how many."""
        listing = self.run(["list_connections", "pid", "vhost", "--quiet", "--no-table-headers"])
        pids = [
            pid
            for pid, _, connection_vhost in (line.partition("\t") for line in listing.splitlines())
            if connection_vhost == vhost
        ]
        for pid in pids:
            self.run(["close_connection", pid, reason])
        return len(pids)


@dataclass(frozen=True)
class RabbitBroker:
    url: str
    admin: RabbitAdmin | None


def _run_local(arguments: Sequence[str]) -> str:
    completed = subprocess.run(
        ["rabbitmqctl", *arguments], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout


def _local_admin(url: str) -> RabbitAdmin | None:
    """``rabbitmqctl`` on this host, when it controls the broker ``url`` points to."""
    if urlsplit(url).hostname not in _LOCAL_HOSTS or shutil.which("rabbitmqctl") is None:
        return None
    try:
        _run_local(["list_vhosts", "--quiet"])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return None
    return RabbitAdmin(run=_run_local)


def _container_admin(container: Any) -> RabbitAdmin:
    def run(arguments: Sequence[str]) -> str:
        exit_code, output = container.exec(["rabbitmqctl", *arguments])
        text = bytes(output).decode()
        if exit_code != 0:
            raise subprocess.CalledProcessError(exit_code, ["rabbitmqctl", *arguments], text)
        return text

    return RabbitAdmin(run=run)


@pytest.fixture(scope="session")
def rabbitmq_broker() -> Iterator[RabbitBroker]:
    """The broker for this session and, when reachable, the means to administer it."""
    explicit = os.environ.get(URL_VARIABLE)
    if explicit:
        yield RabbitBroker(explicit, _local_admin(explicit))
        return
    if docker_engine_answers():
        try:
            from testcontainers.community.rabbitmq import RabbitMqContainer
        except ImportError:
            pass
        else:
            with RabbitMqContainer(CONTAINER_IMAGE) as container:
                params = container.get_connection_params()
                url = f"amqp://{container.username}:{container.password}@{params.host}:{params.port}/"
                yield RabbitBroker(url, _container_admin(container))
            return
    if not port_answers(LOCAL_HOST, LOCAL_PORT):
        missing_service("RabbitMQ", f"set {URL_VARIABLE}, run Docker, or serve {LOCAL_HOST}:{LOCAL_PORT}")
    yield RabbitBroker(LOCAL_URL, _local_admin(LOCAL_URL))


@pytest.fixture(scope="session")
def amqp_url(rabbitmq_broker: RabbitBroker) -> str:
    """An ``amqp://`` URL of the session's broker."""
    return rabbitmq_broker.url


@pytest.fixture
def rabbitmq_admin(rabbitmq_broker: RabbitBroker) -> RabbitAdmin:
    """``rabbitmqctl`` for the session's broker; skips the test when it cannot be reached."""
    if rabbitmq_broker.admin is None:
        missing_service("rabbitmqctl", "the test must administer the broker (close its connections)")
    return rabbitmq_broker.admin


def _with_vhost(url: str, vhost: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(vhost, safe="")).geturl()


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


@pytest.fixture
def isolated_amqp_url(rabbitmq_broker: RabbitBroker) -> Iterator[str]:
    """The broker's URL on a virtual host of this test's own, when the broker can be administered."""
    admin = rabbitmq_broker.admin
    if admin is None:
        yield rabbitmq_broker.url
        return
    vhost = f"chromaline-test-{uuid.uuid4().hex[:12]}"
    admin.add_vhost(vhost, unquote(urlsplit(rabbitmq_broker.url).username or "guest"))
    try:
        yield _with_vhost(rabbitmq_broker.url, vhost)
    finally:
        admin.delete_vhost(vhost)


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses, for exchanges and queues on a shared virtual host."""
    return f"t{uuid.uuid4().hex[:12]}"


RabbitBusFactory = Callable[..., Awaitable[RabbitMqBus]]


@pytest.fixture
async def rabbit_bus_factory(isolated_amqp_url: str, unique_name: str) -> AsyncIterator[RabbitBusFactory]:
    """Start :class:`RabbitMqBus` instances on this test's exchange; all are closed afterwards.

    Call it as ``await rabbit_bus_factory(service="detector", shutdown_grace=...)``.
    """
    started: list[RabbitMqBus] = []

    async def start_bus(service: str = "test", **options: Any) -> RabbitMqBus:
        bus = RabbitMqBus(isolated_amqp_url, service=service, exchange=f"{unique_name}.events", **options)
        await bus.start()
        started.append(bus)
        return bus

    yield start_bus
    for bus in started:
        await bus.close()
