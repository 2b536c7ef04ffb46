"""Random secrets handed to clients, and the digests stored in their place."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """SHA-256 of a long random secret: enough to store it, as guessing it is hopeless anyway."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, expected: str) -> bool:
    return hmac.compare_digest(digest(secret), expected)
