"""Webhook signatures: how the gateway signs a delivery, and how a receiver checks it.

Every delivery carries ``X-Chromaline-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
HMAC-SHA256 under the webhook's secret of ``"<t>.<raw request body>"``. The timestamp is signed
with the body, so a receiver that refuses old timestamps also refuses replays. This module needs
only the standard library, so partners may copy its two functions as they are (see docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Chromaline-Signature"
EVENT_HEADER = "X-Chromaline-Event"
DELIVERY_HEADER = "X-Chromaline-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Chromaline-Signature`` value for ``body`` sent at ``timestamp`` (now by default)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={_digest(secret, at, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret`` within ``tolerance`` seconds of now.

    ``body`` must be the raw bytes received, before any JSON parsing. Several ``v1`` values are
    accepted (any one matching suffices), so signing with two secrets during a change stays valid.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
