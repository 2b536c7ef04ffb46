"""Choose the bus adapter from the configured URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from chromaline.common.bus.base import EventBus
from chromaline.common.bus.memory import InMemoryBroker, MemoryBus
from chromaline.common.bus.rabbitmq import RabbitMqBus


def create_bus(url: str, *, service: str, exchange: str = "chromaline") -> EventBus:
    """``memory://[name]``: in-process, shared by the buses of this process with the same name and
    exchange; ``amqp://`` or ``amqps://``: RabbitMQ. The bus still has to be started."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        name = urlsplit(url).netloc
        return MemoryBus(service=service, broker=InMemoryBroker.named(f"{name}/{exchange}"))
    if scheme in ("amqp", "amqps"):
        return RabbitMqBus(url, service=service, exchange=exchange)
    raise ValueError(f"unsupported bus URL scheme {scheme!r}; expected memory://, amqp:// or amqps://")
