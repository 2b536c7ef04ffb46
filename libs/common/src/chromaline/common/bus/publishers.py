"""Who may put photos on the bus: our own services and the configured partners.

The publisher is the AMQP ``user_id`` RabbitMQ checked against the publishing connection (see
:func:`chromaline.common.bus.base.current_publisher`), never anything in the message body.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from chromaline.common.bus.memory import LOCAL_USER
from chromaline.common.settings import ServiceSettings


def _names(listing: str) -> set[str]:
    return {name.strip() for name in listing.split(",") if name.strip()}


def internal_publishers(settings: ServiceSettings) -> frozenset[str]:
    """Our services' broker users: the one this service connects as, and any configured others."""
    url = urlsplit(settings.bus_url)
    if url.username:
        own = unquote(url.username)
    else:
        own = "guest" if url.scheme in ("amqp", "amqps") else LOCAL_USER
    return frozenset({own, *_names(settings.internal_bus_users)})


def is_known_publisher(publisher: str | None, settings: ServiceSettings) -> bool:
    if publisher is None:
        return False
    return publisher in internal_publishers(settings) or publisher in _names(settings.partners)
