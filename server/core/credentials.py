"""Reads credentials from call metadata and resolves them through an Authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from server.core.context import Caller, UnconfirmedCaller
from server.core.errors import Unauthenticated

API_KEY_PREFIX = "fk_"


class CredentialKind(Enum):
    BEARER_TOKEN = "bearer"  # noqa: S105 - a kind of credential, not a secret
    API_KEY = "api_key"


@dataclass(frozen=True)
class Credential:
    kind: CredentialKind
    secret: str


class Authenticator(Protocol):
    """Turns a credential into a Caller, or raises Unauthenticated with a reason."""

    async def authenticate(self, credential: Credential) -> Caller: ...

    def unconfirmed(self, credential: Credential) -> UnconfirmedCaller | None:
        """For an access token, the caller its verified claims name, whose account's state
        the handler reads (core/caller_state.py); None: use `authenticate`."""
        ...

    async def confirm(self, unconfirmed: UnconfirmedCaller) -> Caller:
        """The caller, its account's state read on its own."""
        ...


def extract_credential(metadata: dict[str, str]) -> Credential | None:
    """`authorization: Bearer <jwt | fk_…>` or `x-api-key: fk_…`; None when absent.

    A present but malformed authorization header is an error, not an anonymous call."""
    api_key = metadata.get("x-api-key", "").strip()
    if api_key:
        return Credential(CredentialKind.API_KEY, api_key)
    authorization = metadata.get("authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if not authorization:
        return None
    if scheme.lower() != "bearer" or not value:
        raise Unauthenticated("the authorization header must be 'Bearer <token>'", "TOKEN_INVALID")
    if value.startswith(API_KEY_PREFIX):
        return Credential(CredentialKind.API_KEY, value)
    return Credential(CredentialKind.BEARER_TOKEN, value)
