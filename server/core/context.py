"""Who is calling and which call this is, set once per RPC by the call interceptor."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum

from server.core.errors import Unauthenticated


class AuthMethod(Enum):
    JWT = "jwt"
    API_KEY = "api_key"
    CLIENT_CERTIFICATE = "client_certificate"
    """A service identity of a mutual-TLS client certificate (core/service_identity.py)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated principal."""

    user_id: uuid.UUID
    roles: frozenset[str] = frozenset()
    auth_method: AuthMethod = AuthMethod.JWT
    session_id: str | None = None
    api_key_id: str | None = None
    scopes: frozenset[str] | None = None
    """What an API key may do (server/core/scopes.py); None: everything (a signed-in user)."""
    service: str | None = None
    """A service's identity (SPIFFE ID or DNS name); then `user_id` names no user."""
    service_role: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class UnconfirmedCaller:
    """Whom a verified access token names, before its account's state is read: the handler
    of a method declared `state_read_by_handler` reads that state with its own first
    statement and confirms the caller (`CallContext.confirm`; core/caller_state.py)."""

    user_id: uuid.UUID
    session_id: uuid.UUID | None


@dataclass
class CallContext:
    request_id: str
    method: str
    peer: str = ""
    client_address: str = ""
    user_agent: str = ""
    caller: Caller | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    unconfirmed: UnconfirmedCaller | None = None
    """Set instead of `caller` for a `state_read_by_handler` method called with an access
    token, until the handler confirms it. (Should a handler not, the interceptor reads the
    state before anything is answered.)"""

    def require_caller(self) -> Caller:
        if self.caller is None:
            if self.unconfirmed is not None:
                raise RuntimeError("the caller was not confirmed (see CallContext.confirm)")
            raise Unauthenticated("authentication required", "CREDENTIALS_MISSING")
        return self.caller

    def confirm(self, caller: Caller) -> Caller:
        """The caller the handler confirmed with its own read of the account's state."""
        self.caller = caller
        self.unconfirmed = None
        return caller


_current: ContextVar[CallContext | None] = ContextVar("forge_call_context", default=None)


def current_call() -> CallContext:
    """The context of the RPC being served; raises outside an RPC (a bug)."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("no RPC is being served in this task")
    return ctx


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx is not None else None


def bind_call(ctx: CallContext) -> None:
    _current.set(ctx)
