"""Ed25519 signing keys: made, rotated, published as a JWKS, and kept encrypted at rest.

The newest unretired key signs. Rotation retires it and makes a new one; a retired key's public
half stays in the JWKS until every token it signed has expired, so nobody is signed out by a
rotation. Private keys are stored as PKCS#8 PEM encrypted with the signing secret and decrypted
once per process.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.auth.models import SigningKey
from chromaline.auth.settings import AuthSettings
from chromaline.common.db.locks import hold_transaction_lock

ALGORITHM = "EdDSA"
CLOCK_SKEW = timedelta(seconds=60)
"""Leeway granted to clocks that disagree, when tokens are checked and when old keys are dropped."""


class KeyRing:
    """Decrypted private keys by kid, so each key is decrypted once per process."""

    def __init__(self, settings: AuthSettings) -> None:
        self._password = settings.signing_secret.get_secret_value().encode()
        self._keys: dict[str, Ed25519PrivateKey] = {}

    def encrypt(self, key: Ed25519PrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        ).decode()

    def private_key(self, row: SigningKey) -> Ed25519PrivateKey:
        key = self._keys.get(row.kid)
        if key is None:
            loaded = serialization.load_pem_private_key(row.private_key.encode(), password=self._password)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise TypeError(f"signing key {row.kid} is not an Ed25519 key")
            key = self._keys[row.kid] = loaded
        return key


def new_signing_key(ring: KeyRing, now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
    public: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public.update(kid=kid, alg=ALGORITHM, use="sig")
    return SigningKey(
        kid=kid, private_key=ring.encrypt(private), public_jwk=public, created_at=now, retired_at=None
    )


async def signing_key(session: AsyncSession) -> SigningKey | None:
    """The key that signs new tokens: the newest one not retired."""
    query = (
        sa.select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def rotate_signing_keys(
    session: AsyncSession, ring: KeyRing, settings: AuthSettings, now: datetime, *, force: bool = False
) -> SigningKey | None:
    """Make a new signing key when there is none, the current one is too old, or ``force``; drop the
    keys retired long enough ago that no token they signed is still valid. Returns the new key."""
    await hold_transaction_lock(session, "chromaline.auth.keys")
    current = await signing_key(session)
    made = None
    if current is None or force or current.created_at <= now - timedelta(days=settings.signing_key_days):
        made = new_signing_key(ring, now)
        session.add(made)
        if current is not None:
            current.retired_at = now
    last_valid = now - timedelta(seconds=settings.access_token_seconds) - CLOCK_SKEW
    await session.execute(sa.delete(SigningKey).where(SigningKey.retired_at < last_valid))
    return made


async def key_to_sign_with(
    session: AsyncSession, ring: KeyRing, settings: AuthSettings, now: datetime
) -> SigningKey:
    """The current signing key, made first if there is none yet."""
    current = await signing_key(session)
    if current is None:
        await rotate_signing_keys(session, ring, settings, now)
        current = await signing_key(session)
    assert current is not None
    return current


async def published_keys(session: AsyncSession) -> list[dict[str, Any]]:
    """The public JWKs of every key whose tokens may still be valid, newest first."""
    rows = (await session.execute(sa.select(SigningKey).order_by(SigningKey.created_at.desc()))).scalars()
    return [dict(row.public_jwk) for row in rows]
