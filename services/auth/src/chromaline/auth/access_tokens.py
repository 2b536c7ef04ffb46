"""Access tokens: short-lived EdDSA JWTs naming the user, the current organisation and its role.

Claims: ``sub`` (user id), ``org`` and ``role`` (the organisation the token acts for and the
user's role there), ``orgs`` (every membership, so the gateway can switch organisation on
``X-Organisation-ID`` without asking), ``platform`` (true for a platform operator, see
:mod:`chromaline.auth.platform`; absent otherwise), ``iss``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt import PyJWK

from chromaline.auth.models import SigningKey
from chromaline.auth.settings import AuthSettings
from chromaline.auth.signing_keys import ALGORITHM, CLOCK_SKEW, KeyRing

REQUIRED_CLAIMS = ("sub", "org", "role", "iss", "aud", "iat", "nbf", "exp", "jti")


class InvalidAccessToken(Exception):
    pass


@dataclass(frozen=True)
class AccessGrant:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str
    memberships: dict[str, str]
    """Organisation id → role, for every organisation the user belongs to."""
    platform_operator: bool = False


def issue_access_token(
    grant: AccessGrant, key: SigningKey, ring: KeyRing, settings: AuthSettings, now: datetime
) -> str:
    claims: dict[str, Any] = {
        "sub": str(grant.user_id),
        "org": str(grant.organisation_id),
        "role": grant.role,
        "orgs": grant.memberships,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=settings.access_token_seconds),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    if grant.platform_operator:
        claims["platform"] = True
    return jwt.encode(claims, ring.private_key(key), algorithm=ALGORITHM, headers={"kid": key.kid})


def verify_access_token(token: str, public_keys: list[dict[str, Any]], settings: AuthSettings) -> AccessGrant:
    """The grant in ``token`` once its EdDSA signature (by a published key), times, issuer and
    audience check out; anything else raises :class:`InvalidAccessToken`."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidAccessToken(f"algorithm {header.get('alg')!r} refused")
        jwk = next((key for key in public_keys if key.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise InvalidAccessToken("unknown signing key")
        claims = jwt.decode(
            token,
            PyJWK(jwk).key,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=CLOCK_SKEW,
            options={"require": list(REQUIRED_CLAIMS)},
        )
        if claims.get("typ") != "access":
            raise InvalidAccessToken("not an access token")
        return AccessGrant(
            user_id=uuid.UUID(claims["sub"]),
            organisation_id=uuid.UUID(claims["org"]),
            role=str(claims["role"]),
            memberships={str(org): str(role) for org, role in dict(claims.get("orgs", {})).items()},
            platform_operator=claims.get("platform") is True,
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
        raise InvalidAccessToken(str(error)) from error
