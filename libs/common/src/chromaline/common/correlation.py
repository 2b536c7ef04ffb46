"""The correlation and causation ids of the work in hand, carried through contextvars.

An HTTP request or a consumed event binds them; every event published while handling it
inherits the correlation id and names the handled event as its cause.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

import structlog

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("causation_id", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def current_causation_id() -> str | None:
    return _causation_id.get()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def bound(correlation_id: str, causation_id: str | None = None) -> Iterator[None]:
    """Bind the ids for the duration of a request or a handled event, logs included."""
    corr_token = _correlation_id.set(correlation_id)
    cause_token = _causation_id.set(causation_id)
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        try:
            yield
        finally:
            _causation_id.reset(cause_token)
            _correlation_id.reset(corr_token)
