"""What a signed-in caller's account and session say about this call, and the Caller it
makes (or the refusal).

The call interceptor verifies an access token's signature and claims; whether its user is
still enabled and its session still open is read from the database on every call, so that
a disabled user or a revoked session is refused at once, by every server process. Usually
the interceptor reads it (one statement); for the methods a service declares
`state_read_by_handler`, the handler reads it in the same statement as its own first read
(one round trip instead of two) and confirms the caller with it (`CallContext.confirm`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from server.core.context import AuthMethod, Caller
from server.core.errors import Unauthenticated


@dataclass(frozen=True)
class CallerState:
    disabled: bool
    role: str
    session_revoked: bool


def state_of(disabled: bool, role: str, session_revoked: bool | None) -> CallerState:
    """From the three columns of `server/db/caller_state.py` (`session_revoked` is NULL for
    a token without a session, or a session that is not the user's)."""
    return CallerState(bool(disabled), role, bool(session_revoked))


def caller_from_state(
    user_id: uuid.UUID, session_id: uuid.UUID | None, state: CallerState | None
) -> Caller:
    """The caller an access token names, or UNAUTHENTICATED when its user or session may no
    longer call (`state` None: the user is gone)."""
    if state is None:
        raise Unauthenticated("the access token is not valid", "TOKEN_INVALID")
    if state.disabled:
        raise Unauthenticated("the account is disabled", "USER_DISABLED")
    if state.session_revoked:
        raise Unauthenticated("the session has ended; sign in again", "SESSION_REVOKED")
    return Caller(
        user_id=user_id,
        roles=frozenset({state.role}),
        auth_method=AuthMethod.JWT,
        session_id=str(session_id) if session_id else None,
    )
