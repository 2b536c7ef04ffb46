"""How test fixtures find the real services they need.

Order: an explicit env var URL; a container through testcontainers when a Docker engine answers;
the services running on 127.0.0.1. When none answers the test is skipped, unless
``CHROMALINE_REQUIRE_SERVICES=1`` (CI sets it), which turns a missing service into a failure.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def services_required() -> bool:
    return os.environ.get("CHROMALINE_REQUIRE_SERVICES", "") == "1"


def missing_service(name: str, why: str) -> NoReturn:
    message = f"{name} not available: {why}"
    if services_required():
        pytest.fail(message + " (CHROMALINE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def docker_engine_answers() -> bool:
    """True when a Docker engine is reachable, so testcontainers can start services."""
    socket_path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    if not os.path.exists(socket_path):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True
