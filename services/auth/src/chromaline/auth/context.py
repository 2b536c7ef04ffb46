"""What the auth service's operations share: settings, password hashing, keys, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chromaline.auth.passwords import Passwords
from chromaline.auth.settings import AuthSettings
from chromaline.auth.signing_keys import KeyRing


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuthContext:
    settings: AuthSettings
    passwords: Passwords
    ring: KeyRing
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthContext:
        return cls(settings=settings, passwords=Passwords(settings), ring=KeyRing(settings))
