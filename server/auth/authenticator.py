"""Resolves each call's credential (JWT or API key) to a Caller, checking the database so a
disabled user, a revoked session or a revoked key stops working at once."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import store
from server.auth.tokens import AccessClaims, AccessTokens, digest
from server.core.caller_state import caller_from_state
from server.core.context import AuthMethod, Caller, UnconfirmedCaller
from server.core.credentials import Credential, CredentialKind
from server.core.errors import Unauthenticated
from server.core.timestamps import utcnow

VERIFIED_TOKENS_KEPT = 10_000
API_KEY_TOUCH_EVERY = timedelta(minutes=1)


class VerifiedTokens:
    """Access tokens whose signature and claims were verified, with their claims, until they
    expire: a client sends the same token on every call for its whole lifetime, and PyJWT's
    verification costs more than the rest of authentication. Only what a token says is kept,
    never whether its user or session may still use it (checked on every call)."""

    def __init__(self, tokens: AccessTokens, capacity: int = VERIFIED_TOKENS_KEPT) -> None:
        self._tokens = tokens
        self._capacity = capacity
        self._verified: dict[str, tuple[AccessClaims, float]] = {}

    def verify(self, token: str) -> AccessClaims:
        found = self._verified.get(token)
        if found is not None:
            claims, expires = found
            if time.time() < expires:  # PyJWT's own rule: expired once exp <= now
                return claims
            del self._verified[token]
        claims = self._tokens.verify(token)
        if self._capacity > 0:
            if len(self._verified) >= self._capacity:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (claims, claims.expire_time.timestamp())
        return claims


class DatabaseAuthenticator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tokens: AccessTokens,
        verified_tokens_kept: int = VERIFIED_TOKENS_KEPT,
    ) -> None:
        self._sessions = sessions
        self._tokens = VerifiedTokens(tokens, verified_tokens_kept)

    async def authenticate(self, credential: Credential) -> Caller:
        if credential.kind is CredentialKind.API_KEY:
            return await self._api_key(credential.secret)
        return await self._access_token(credential.secret)

    async def _access_token(self, token: str) -> Caller:
        claims = self._tokens.verify(token)
        return await self.confirm(UnconfirmedCaller(claims.user_id, claims.session_id))

    def unconfirmed(self, credential: Credential) -> UnconfirmedCaller | None:
        """For an access token: its verified claims, the account's state not yet read (the
        handler reads it with its own first statement); None for other credentials."""
        if credential.kind is not CredentialKind.BEARER_TOKEN:
            return None
        claims = self._tokens.verify(credential.secret)
        return UnconfirmedCaller(claims.user_id, claims.session_id)

    async def confirm(self, unconfirmed: UnconfirmedCaller) -> Caller:
        """The caller, once its account's state is read on its own."""
        state = await store.caller_state(
            self._sessions, unconfirmed.user_id, unconfirmed.session_id
        )
        return caller_from_state(unconfirmed.user_id, unconfirmed.session_id, state)

    async def _api_key(self, secret: str) -> Caller:
        async with self._sessions() as db:
            found = await store.api_key_with_user(db, digest(secret))
            if found is None:
                raise Unauthenticated("the API key is not valid", "KEY_INVALID")
            key, user = found
            if user.disabled:
                raise Unauthenticated("the account is disabled", "USER_DISABLED")
            if key.revoke_time is not None:
                raise Unauthenticated("the API key has been revoked", "KEY_REVOKED")
            if key.expire_time is not None and key.expire_time <= utcnow():
                raise Unauthenticated("the API key has expired", "KEY_EXPIRED")
            if key.last_used_time is None or utcnow() - key.last_used_time > API_KEY_TOUCH_EVERY:
                await store.touch_api_key(db, key.id, API_KEY_TOUCH_EVERY)
                await db.commit()
            return Caller(
                user_id=user.id,
                roles=frozenset({user.role}),
                auth_method=AuthMethod.API_KEY,
                api_key_id=str(key.id),
                scopes=frozenset(key.scopes),
            )
