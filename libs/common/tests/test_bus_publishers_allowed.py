"""Who may put photos on the bus: our own broker user, listed others, and listed partners."""

from __future__ import annotations

import pytest

from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.bus.publishers import internal_publishers, is_known_publisher
from chromaline.common.settings import ServiceSettings


@pytest.mark.parametrize(
    ("bus_url", "own"),
    [
        ("amqp://chromaline:secret@rabbit:5672/prod", "chromaline"),
        ("amqp://rabbit:5672/", "guest"),
        ("memory://", LOCAL_USER),
    ],
)
def test_our_own_broker_user_comes_from_the_bus_url(bus_url: str, own: str) -> None:
    settings = ServiceSettings(bus_url=bus_url, internal_bus_users="relay, ")
    assert internal_publishers(settings) == {own, "relay"}


def test_partners_are_known_and_everyone_else_is_not() -> None:
    settings = ServiceSettings(bus_url="amqp://chromaline:x@rabbit/", partners="acme, globex")
    assert is_known_publisher("acme", settings)
    assert is_known_publisher("chromaline", settings)
    assert not is_known_publisher("initech", settings)
    assert not is_known_publisher(None, settings)
    assert not is_known_publisher("", settings)
