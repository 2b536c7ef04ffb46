"""Where password reset links go. Development logs them; a deployment plugs in its own sink."""

from __future__ import annotations

from typing import Protocol

from chromaline.common.events.contracts import PasswordResetRequested
from chromaline.common.logging import get_logger

log = get_logger(__name__)


class ResetLinkSink(Protocol):
    async def deliver(self, request: PasswordResetRequested) -> None: ...


class LogResetLinkSink:
    """Writes the link to the log, for development and tests, where no mail server exists."""

    async def deliver(self, request: PasswordResetRequested) -> None:
        log.info(
            "password_reset.link",
            user_id=str(request.user_id),
            email=request.email,
            reset_url=request.reset_url,
            expires_at=request.expires_at.isoformat(),
        )


SINKS: dict[str, type[ResetLinkSink]] = {"log": LogResetLinkSink}


def sink_named(name: str) -> ResetLinkSink:
    try:
        return SINKS[name]()
    except KeyError:
        raise ValueError(f"unknown reset sink {name!r}; one of {', '.join(SINKS)}") from None
