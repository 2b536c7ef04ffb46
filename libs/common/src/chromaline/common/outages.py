"""Telling a dependency that is down (database, bus, blob store) from a fault of our own.

An error caused by a dependency that does not answer is transient: the client should retry later
(503 with ``Retry-After``), not report a bug (500). The error is recognised by what it, or any
error that caused it, is: a lost or refused database connection, a closed broker channel, a blob
store that cannot be reached, or :class:`DependencyUnavailableError` raised by our own code.
"""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc
import urllib3.exceptions
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

RETRY_AFTER_SECONDS = 5


class DependencyUnavailableError(Exception):
    """``dependency`` (``database``, ``bus`` or ``blobs``) cannot be used right now."""

    def __init__(self, dependency: str, detail: str | None = None) -> None:
        super().__init__(detail or f"the {dependency} is not available")
        self.dependency = dependency


_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
)
_BLOB_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ProtocolError,
)
_BUS_ERRORS: tuple[type[BaseException], ...] = tuple(CONNECTION_EXCEPTIONS)


def _causes(error: BaseException) -> list[BaseException]:
    """``error``, what caused it, and the driver's error that SQLAlchemy wrapped (``orig``)."""
    chain: list[BaseException] = []
    waiting: list[BaseException] = [error]
    while waiting:
        current = waiting.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        original = getattr(current, "orig", None)
        linked = (current.__cause__, current.__context__, original)
        waiting.extend(cause for cause in linked if isinstance(cause, BaseException))
    return chain


def unavailable_dependency(error: BaseException) -> str | None:
    """The dependency whose outage caused ``error``, or None when the error is not an outage."""
    for cause in _causes(error):
        if isinstance(cause, DependencyUnavailableError):
            return cause.dependency
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return "database"
        if isinstance(cause, _DATABASE_ERRORS):
            return "database"
        if isinstance(cause, _BUS_ERRORS):
            return "bus"
        if isinstance(cause, _BLOB_ERRORS):
            return "blobs"
    for cause in _causes(error):
        if isinstance(cause, ConnectionError | TimeoutError):
            return "dependency"
    return None
