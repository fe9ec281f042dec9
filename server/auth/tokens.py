"""Access tokens (JWT), refresh tokens, API keys and one-time tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.core import lean_imports
from server.core.errors import Unauthenticated
from server.core.timestamps import utcnow

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "fk_live_"
API_KEY_SHOWN_PREFIX_CHARS = len(API_KEY_PREFIX) + 4
REFRESH_TOKEN_PREFIX = "frt_"


def digest(secret: str) -> bytes:
    """How every bearer secret is stored: SHA-256 (they are random, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).digest()


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


class RefreshRotation:
    """The token that replaces a refresh token on rotation: an HMAC of the presented token
    under a key derived from the server secret.

    Why derived rather than random: a token presented again within the grace window (two
    tabs refreshing at once, a retry after a lost response) must get the pair already issued
    for it, yet tokens are stored only as hashes. Deriving the successor lets the server
    recompute it from the presented token alone, with nothing new stored (no plain or
    encrypted copy of the issued token, no extra column). Only a holder of the presented
    token can compute it, and only with the server secret; a database dump (hashes only)
    yields neither. Every chain still starts from a random token at sign-in, so chains are
    independent; a leaked server secret already allows forging access tokens, so deriving
    from it adds no exposure."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"forge refresh rotation v1", hashlib.sha256).digest()

    def successor(self, refresh_token: str) -> str:
        mac = hmac.new(self._key, refresh_token.encode(), hashlib.sha256).digest()
        # Same shape as new_refresh_token(): the prefix and 43 url-safe characters.
        return REFRESH_TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def new_one_time_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewApiKey:
    secret: str
    prefix: str
    secret_hash: bytes


def new_api_key() -> NewApiKey:
    secret = API_KEY_PREFIX + secrets.token_hex(16)
    return NewApiKey(secret, secret[:API_KEY_SHOWN_PREFIX_CHARS], digest(secret))


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    roles: tuple[str, ...]
    expire_time: datetime


class AccessTokens:
    def __init__(self, secret: bytes, issuer: str, audience: str, ttl: timedelta) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl

    def issue(
        self, user_id: uuid.UUID, roles: list[str], session_id: uuid.UUID
    ) -> tuple[str, datetime]:
        lean_imports.load_pyjwt()  # on first use, with its HMAC algorithms only
        import jwt

        now = utcnow()
        expires = now + self.ttl
        claims = {
            "sub": str(user_id),
            "iat": now,
            "exp": expires,
            "iss": self._issuer,
            "aud": self._audience,
            "jti": secrets.token_hex(8),
            "roles": roles,
            "sid": str(session_id),
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM), expires

    def verify(self, token: str) -> AccessClaims:
        lean_imports.load_pyjwt()  # on first use, with its HMAC algorithms only
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],  # pinned: never trust the token's own `alg`
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("the access token has expired", "TOKEN_EXPIRED") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated("the access token is not valid", "TOKEN_INVALID") from error
        try:
            user_id = uuid.UUID(claims["sub"])
            session_id = uuid.UUID(claims["sid"]) if claims.get("sid") else None
        except (ValueError, TypeError) as error:
            raise Unauthenticated("the access token is not valid", "TOKEN_INVALID") from error
        roles = claims.get("roles", [])
        return AccessClaims(
            user_id=user_id,
            session_id=session_id,
            roles=tuple(r for r in roles if isinstance(r, str)),
            expire_time=datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo),
        )
